import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';

describe('cluster: the local control plane', function () {
  this.timeout(180_000);
  let cp: ControlPlane;

  before(async () => {
    cp = await sharedControlPlane();
  });

  it('serves the pinned upstream kube-apiserver version', async () => {
    const { stdout } = await cp.kubectl(['version', '-o', 'json']);
    const version = JSON.parse(stdout) as { serverVersion: { gitVersion: string; major: string } };
    assert.match(version.serverVersion.gitVersion, /^v1\.34\.\d+$/);
  });

  it('enforces RBAC: a fresh ServiceAccount may not list secrets, admin may', async () => {
    const kubeconfig = await cp.serviceAccountKubeconfig('cp-rbac', 'nobody');
    const denied = await cp.kubectlResult(['-n', 'cp-rbac', 'get', 'secrets'], { kubeconfig });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /forbidden/i);
    assert.match(denied.stderr, /system:serviceaccount:cp-rbac:nobody/);
    const allowed = await cp.kubectlResult(['-n', 'cp-rbac', 'get', 'secrets']);
    assert.equal(allowed.code, 0, allowed.stderr);
  });

  it('authenticates minted ServiceAccount tokens (TokenReview sees the identity)', async () => {
    const kubeconfig = await cp.serviceAccountKubeconfig('cp-rbac', 'whoami');
    const { stdout } = await cp.kubectl(['auth', 'whoami', '-o', 'json'], { kubeconfig });
    const review = JSON.parse(stdout) as { status: { userInfo: { username: string; groups: string[] } } };
    assert.equal(review.status.userInfo.username, 'system:serviceaccount:cp-rbac:whoami');
    assert.ok(review.status.userInfo.groups.includes('system:serviceaccounts'));
  });

  it('refuses anonymous and bad-token requests to resources', async () => {
    const ca = await readFile(join(cp.dir, 'pki', 'ca.crt'));
    const status = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const url = new URL('/api/v1/namespaces/default/configmaps', cp.server);
        const req = request({ host: url.hostname, port: url.port, path: url.pathname, ca, headers }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    assert.equal(await status({}), 403, 'anonymous is authenticated as system:anonymous and denied by RBAC');
    assert.equal(await status({ authorization: 'Bearer not-a-token' }), 401);
  });

  it('serves the ValidatingAdmissionPolicy API (admission plugin enabled)', async () => {
    const { stdout } = await cp.kubectl(['api-resources', '--api-group=admissionregistration.k8s.io', '-o', 'name']);
    assert.match(stdout, /validatingadmissionpolicies/);
    assert.match(stdout, /validatingadmissionpolicybindings/);
  });

  it('is reachable through client-node with the admin kubeconfig', async () => {
    const core = cp.kubeConfig().makeApiClient(CoreV1Api);
    const ns = await core.readNamespace({ name: 'default' });
    assert.equal(ns.metadata?.name, 'default');
  });
});
