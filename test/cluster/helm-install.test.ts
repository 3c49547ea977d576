import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import {
  CHART,
  adoptCrds,
  createNamespace,
  freshName,
  helm,
  helmOk,
  parseDocs,
  type K8sObject,
} from './helm-support.js';

/**
 * The chart's whole life against the real API server: install (helm 4), rights of
 * each ServiceAccount, the node-restriction policy with real node-bound tokens,
 * upgrade, uninstall, and a reinstall, upgrade and uninstall with helm 3.
 * There is no kubelet: the Deployment and DaemonSet exist but run no pods.
 */
describe('cluster: helm install, upgrade and uninstall against the real API server', function () {
  this.timeout(120_000);
  // Not "sandpit": other cluster tests of this run apply controllers/manifests/,
  // whose cluster-scoped objects are named sandpit-controller and sandpit-agent.
  const release = 'sandpit-it';
  const ns = freshName('sp-release');
  const userNs = freshName('sp-user');
  const suffix = ns.slice(-6);
  const nodeA = `sp-node-a-${suffix}`;
  const nodeB = `sp-node-b-${suffix}`;
  const controllerSA = `${release}-controller`;
  const agentSA = `${release}-agent`;
  let cp: ControlPlane;
  const crdUids: Record<string, string> = {};
  let sandboxUid = '';

  const uid = async (args: string[]) => (await cp.kubectl([...args, '-o', 'jsonpath={.metadata.uid}'])).stdout;
  const crdNames = ['sandboxes.sandpit.dev', 'sandboxnodes.sandpit.dev'];

  /** A kubeconfig that authenticates with the given bearer token. */
  async function tokenKubeconfig(name: string, token: string): Promise<string> {
    const admin = cp.kubeConfig();
    const cluster = admin.getCurrentCluster()!;
    const path = join(cp.dir, `helm-${name}-${suffix}.kubeconfig`);
    await writeFile(
      path,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: cluster.server, 'certificate-authority-data': cluster.caData } }],
        users: [{ name, user: { token } }],
        contexts: [{ name: 'c', context: { cluster: 'c', user: name, namespace: ns } }],
        'current-context': 'c',
      }),
      { mode: 0o600 },
    );
    return path;
  }

  before(async () => {
    cp = await sharedControlPlane();
    await createNamespace(cp, ns, { 'pod-security.kubernetes.io/enforce': 'privileged' });
    await createNamespace(cp, userNs);
    // Other tests of this run may have applied crds/*.yaml with kubectl: adopt them.
    await adoptCrds(cp, release, ns);
  });

  it('installs with helm 4 and creates every object of the release', async () => {
    const out = await helmOk(cp, ['install', release, CHART, '--namespace', ns]);
    assert.match(out, /STATUS: deployed/);
    const manifest = parseDocs(await helmOk(cp, ['get', 'manifest', release, '--namespace', ns]));
    assert.ok(manifest.length >= 20, `${manifest.length} objects`);
    const kinds = new Set(manifest.map((o) => o.kind));
    for (const k of [
      'CustomResourceDefinition',
      'Deployment',
      'DaemonSet',
      'ServiceAccount',
      'ClusterRole',
      'Role',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
      'PodDisruptionBudget',
      'Service',
    ]) {
      assert.ok(kinds.has(k), `release has a ${k}`);
    }
    const got = await cp.kubectlResult(['get', '-n', ns, '-f', '-', '-o', 'name'], {
      input: manifest.map((o) => stringify(o)).join('---\n'),
    });
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout.trim().split('\n').length, manifest.length, 'each object exists');
    for (const crd of crdNames) crdUids[crd] = await uid(['get', 'crd', crd]);
    await cp.kubectl(['wait', '--for=condition=Established', '--timeout=30s', ...crdNames.map((c) => `crd/${c}`)]);
    // The Deployment and DaemonSet are accepted as rendered (no kubelet runs them here).
    const deploy = JSON.parse(
      (await cp.kubectl(['-n', ns, 'get', 'deployment', controllerSA, '-o', 'json'])).stdout,
    ) as { spec: { replicas: number } };
    assert.equal(deploy.spec.replicas, 2);
  });

  it('gives each ServiceAccount the rights it needs and nothing more (kubectl auth can-i)', async () => {
    type Check = [verb: string, resource: string, namespace: string | null, expected: boolean];
    const other = userNs;
    const controller: Check[] = [
      ['get', 'sandboxes.sandpit.dev', other, true],
      ['list', 'sandboxes.sandpit.dev', null, true],
      ['watch', 'sandboxes.sandpit.dev', null, true],
      ['patch', 'sandboxes.sandpit.dev', other, true],
      ['update', 'sandboxes.sandpit.dev/finalizers', other, true],
      ['patch', 'sandboxes.sandpit.dev/status', other, true],
      ['create', 'sandboxes.sandpit.dev', other, false],
      ['delete', 'sandboxes.sandpit.dev', other, false],
      ['list', 'sandboxnodes.sandpit.dev', null, true],
      ['patch', 'sandboxnodes.sandpit.dev/status', null, true],
      ['create', 'sandboxnodes.sandpit.dev', null, false],
      ['delete', 'sandboxnodes.sandpit.dev', null, false],
      ['get', 'nodes', null, false],
      ['create', 'events.events.k8s.io', other, true],
      ['delete', 'events.events.k8s.io', other, false],
      ['list', 'certificatesigningrequests.certificates.k8s.io', null, true],
      ['update', 'certificatesigningrequests.certificates.k8s.io/approval', null, true],
      ['create', 'certificatesigningrequests.certificates.k8s.io', null, false],
      ['sign', 'signers.certificates.k8s.io/sandpit.dev/agent-serving', null, true],
      ['sign', 'signers.certificates.k8s.io/kubernetes.io/kube-apiserver-client', null, false],
      ['approve', 'signers.certificates.k8s.io/kubernetes.io/kubelet-serving', null, false],
      ['get', 'secrets', other, false],
      ['list', 'secrets', ns, false],
      ['create', 'secrets', ns, true],
      ['get', 'secrets/sandpit-ca', ns, true],
      ['update', 'secrets/sandpit-ca', ns, false],
      ['get', 'secrets/some-other-secret', ns, false],
      ['create', 'secrets', other, false],
      ['update', 'configmaps/sandpit-ca-bundle', ns, true],
      ['update', 'configmaps/kube-root-ca.crt', ns, false],
      ['create', 'leases.coordination.k8s.io', ns, true],
      ['update', 'leases.coordination.k8s.io/sandpit-controller', ns, true],
      ['update', 'leases.coordination.k8s.io/some-node', ns, false],
      ['watch', 'leases.coordination.k8s.io', ns, true],
      ['create', 'leases.coordination.k8s.io', other, false],
      ['get', 'pods', ns, false],
      ['create', 'pods', ns, false],
      ['delete', 'customresourcedefinitions.apiextensions.k8s.io', null, false],
      ['patch', 'validatingadmissionpolicies.admissionregistration.k8s.io', null, false],
      ['impersonate', 'serviceaccounts', ns, false],
      ['escalate', 'clusterroles.rbac.authorization.k8s.io', null, false],
    ];
    const agent: Check[] = [
      ['get', 'sandboxes.sandpit.dev', other, true],
      ['watch', 'sandboxes.sandpit.dev', null, true],
      ['patch', 'sandboxes.sandpit.dev/status', other, true],
      ['update', 'sandboxes.sandpit.dev/status', other, true],
      ['patch', 'sandboxes.sandpit.dev', other, false],
      ['update', 'sandboxes.sandpit.dev/finalizers', other, false],
      ['create', 'sandboxes.sandpit.dev', other, false],
      ['delete', 'sandboxes.sandpit.dev', other, false],
      ['create', 'sandboxnodes.sandpit.dev', null, true],
      ['patch', 'sandboxnodes.sandpit.dev/status', null, true],
      ['patch', 'sandboxnodes.sandpit.dev', null, false],
      ['delete', 'sandboxnodes.sandpit.dev', null, false],
      ['create', 'certificatesigningrequests.certificates.k8s.io', null, true],
      ['list', 'certificatesigningrequests.certificates.k8s.io', null, false],
      ['update', 'certificatesigningrequests.certificates.k8s.io/approval', null, false],
      ['sign', 'signers.certificates.k8s.io/sandpit.dev/agent-serving', null, false],
      ['get', 'configmaps/sandpit-ca-bundle', ns, true],
      ['update', 'configmaps/sandpit-ca-bundle', ns, false],
      ['get', 'configmaps', ns, false],
      ['get', 'nodes', null, false],
      ['create', 'events.events.k8s.io', other, true],
      ['delete', 'events.events.k8s.io', other, false],
      ['create', 'leases.coordination.k8s.io', ns, true],
      ['update', 'leases.coordination.k8s.io', ns, true],
      ['list', 'leases.coordination.k8s.io', ns, false],
      ['delete', 'leases.coordination.k8s.io', ns, false],
      ['create', 'leases.coordination.k8s.io', other, false],
      ['get', 'secrets', ns, false],
      ['get', 'secrets/sandpit-ca', ns, false],
      ['get', 'secrets', other, false],
      ['get', 'pods', ns, false],
      ['create', 'pods', ns, false],
    ];
    const check = async (sa: string, [verb, resource, namespace, expected]: Check) => {
      // "res/status" is a subresource, "res/name" an object name.
      const slash = resource.indexOf('/');
      const [res, rest] = slash < 0 ? [resource, undefined] : [resource.slice(0, slash), resource.slice(slash + 1)];
      const sub = rest === 'status' || rest === 'finalizers' || rest === 'approval';
      if (res.startsWith('signers.')) {
        // A signer's name has a slash in it, which kubectl auth can-i cannot express: ask with a SubjectAccessReview.
        const review = await cp.kubectl(['create', '-o', 'json', '-f', '-'], {
          input: JSON.stringify({
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SubjectAccessReview',
            spec: {
              user: `system:serviceaccount:${ns}:${sa}`,
              groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'],
              resourceAttributes: { group: 'certificates.k8s.io', resource: 'signers', name: rest, verb },
            },
          }),
        });
        const allowed = (JSON.parse(review.stdout) as { status: { allowed?: boolean } }).status.allowed === true;
        return allowed === expected ? '' : `${sa} ${verb} signer ${rest}: expected ${expected ? 'yes' : 'no'}`;
      }
      const args = [
        'auth',
        'can-i',
        verb,
        sub || !rest ? res : `${res}/${rest}`,
        `--as=system:serviceaccount:${ns}:${sa}`,
      ];
      if (sub) args.push(`--subresource=${rest}`);
      if (namespace) args.push('-n', namespace);
      else args.push('--all-namespaces');
      const r = await cp.kubectlResult(args);
      return r.stdout.trim() === (expected ? 'yes' : 'no')
        ? ''
        : `${sa} ${verb} ${resource} in ${namespace ?? 'all namespaces'}: expected ${expected ? 'yes' : 'no'}, got ${r.stdout.trim() || r.stderr}`;
    };
    const failures = (
      await Promise.all([...controller.map((c) => check(controllerSA, c)), ...agent.map((c) => check(agentSA, c))])
    ).filter(Boolean);
    assert.deepEqual(failures, []);

    // And nothing beyond that: the complete rule list of each account in its namespace.
    const resourcesOf = async (sa: string) => {
      const out = (await cp.kubectl(['auth', 'can-i', '--list', '-n', ns, `--as=system:serviceaccount:${ns}:${sa}`]))
        .stdout;
      return out
        .split('\n')
        .map((line) => /^(\S+)\s+\[\]\s+\[([^\]]*)\]\s+\[([^\]]*)\]$/.exec(line.trim()))
        .filter((m): m is RegExpExecArray => m !== null && !m[1]!.startsWith('selfsubject'))
        .map((m) => `${m[1]}${m[2] ? ` (${m[2]})` : ''}: ${m[3]}`)
        .sort();
    };
    const streamsProxy = [
      `services/proxy (https:${release}-controller:streams): get create`,
      `services/proxy (${release}-controller): get create`,
    ];
    assert.deepEqual(
      await resourcesOf(controllerSA),
      [
        'certificatesigningrequests.certificates.k8s.io/approval: update',
        'certificatesigningrequests.certificates.k8s.io/status: update',
        'certificatesigningrequests.certificates.k8s.io: get list watch',
        'configmaps (sandpit-ca-bundle): get update patch',
        'configmaps: create',
        'events.events.k8s.io: create patch',
        'leases.coordination.k8s.io (sandpit-controller): update patch',
        'leases.coordination.k8s.io: get list watch create',
        'sandboxes.sandpit.dev/finalizers: update',
        'sandboxes.sandpit.dev/status: get update patch',
        'sandboxes.sandpit.dev: get list watch update patch',
        'sandboxnodes.sandpit.dev/status: get update patch',
        'sandboxnodes.sandpit.dev: get list watch',
        'secrets (sandpit-ca): get',
        'secrets: create',
        'signers.certificates.k8s.io (sandpit.dev/agent-serving): approve sign',
        // kubectl sandpit: checking callers (system:auth-delegator), and the streams Service
        // port every authenticated user may proxy to.
        'tokenreviews.authentication.k8s.io: create',
        'subjectaccessreviews.authorization.k8s.io: create',
        ...streamsProxy,
      ].sort(),
    );
    assert.deepEqual(
      await resourcesOf(agentSA),
      [
        'certificatesigningrequests.certificates.k8s.io: create get',
        'configmaps (sandpit-ca-bundle): get',
        'events.events.k8s.io: create patch',
        'leases.coordination.k8s.io: get create update patch',
        'sandboxes.sandpit.dev/status: get update patch',
        'sandboxes.sandpit.dev: get list watch',
        'sandboxnodes.sandpit.dev/status: get update patch',
        'sandboxnodes.sandpit.dev: get create',
        ...streamsProxy,
      ].sort(),
    );
  });

  it('lets an agent write only its own node’s sandboxes, SandboxNode and Lease (admission policy, node-bound tokens)', async () => {
    for (const node of [nodeA, nodeB]) {
      await cp.kubectl(['apply', '-f', '-'], {
        input: stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: node } }),
      });
      // Stand-ins for the DaemonSet's pods on each node: their projected tokens carry the node's name.
      await cp.kubectl(['apply', '-n', ns, '-f', '-'], {
        input: stringify({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: `agent-${node}` },
          spec: {
            nodeName: node,
            serviceAccountName: agentSA,
            containers: [{ name: 'agent', image: 'ghcr.io/sandpit-dev/sandpit-agent:0.1.0' }],
          },
        }),
      });
    }
    const podToken = async (node: string) =>
      (
        await cp.kubectl([
          '-n',
          ns,
          'create',
          'token',
          agentSA,
          '--bound-object-kind=Pod',
          `--bound-object-name=agent-${node}`,
        ])
      ).stdout.trim();
    const agentA = await tokenKubeconfig('agent-a', await podToken(nodeA));
    const agentAByNode = await tokenKubeconfig(
      'agent-a-node',
      (
        await cp.kubectl([
          '-n',
          ns,
          'create',
          'token',
          agentSA,
          '--bound-object-kind=Node',
          `--bound-object-name=${nodeA}`,
        ])
      ).stdout.trim(),
    );
    const agentUnbound = await tokenKubeconfig(
      'agent-unbound',
      (await cp.kubectl(['-n', ns, 'create', 'token', agentSA])).stdout.trim(),
    );
    const controller = await tokenKubeconfig(
      'controller',
      (await cp.kubectl(['-n', ns, 'create', 'token', controllerSA])).stdout.trim(),
    );

    // Three sandboxes; the controller (its own token, its own rights) binds two of them.
    for (const name of ['sbx-a', 'sbx-b', 'sbx-free']) {
      await cp.kubectl(['apply', '-n', userNs, '-f', '-'], {
        input: stringify({
          apiVersion: 'sandpit.dev/v1alpha1',
          kind: 'Sandbox',
          metadata: { name },
          spec: { containers: [{ name: 'main', image: 'busybox' }] },
        }),
      });
    }
    const statusPatch = (status: object) => JSON.stringify({ status });
    const patchStatus = (kubeconfig: string, name: string, status: object) =>
      cp.kubectlResult(
        ['-n', userNs, 'patch', 'sandbox', name, '--subresource=status', '--type=merge', '-p', statusPatch(status)],
        { kubeconfig },
      );
    for (const [name, node] of [
      ['sbx-a', nodeA],
      ['sbx-b', nodeB],
    ] as const) {
      const bound = await patchStatus(controller, name, { nodeName: node, phase: 'Pending' });
      assert.equal(bound.code, 0, `the controller binds ${name}: ${bound.stderr}`);
    }
    const running = { phase: 'Running', observedGeneration: 1, sandboxIP: '10.88.0.2' };

    const own = await patchStatus(agentA, 'sbx-a', running);
    assert.equal(own.code, 0, `agent of ${nodeA} writes its own sandbox: ${own.stderr}`);
    const ownByNodeToken = await patchStatus(agentAByNode, 'sbx-a', { ...running, sandboxIP: '10.88.0.3' });
    assert.equal(ownByNodeToken.code, 0, `a Node-bound token works too: ${ownByNodeToken.stderr}`);

    const foreign = await patchStatus(agentA, 'sbx-b', running);
    assert.notEqual(foreign.code, 0);
    assert.match(
      foreign.stderr,
      new RegExp(
        `the sandpit agent on ${nodeA} may only write sandboxes bound to its own node; ${userNs}/sbx-b is bound to ${nodeB}`,
      ),
    );

    const grab = await patchStatus(agentA, 'sbx-free', { nodeName: nodeA, ...running });
    assert.notEqual(grab.code, 0, 'an agent cannot bind an unbound sandbox to itself');
    assert.match(grab.stderr, /sbx-free is bound to no node/);

    const spec = await cp.kubectlResult(
      ['-n', userNs, 'patch', 'sandbox', 'sbx-a', '--type=merge', '-p', '{"spec":{"paused":true}}'],
      { kubeconfig: agentA },
    );
    assert.notEqual(spec.code, 0);
    assert.match(spec.stderr, /forbidden.*cannot patch resource "sandboxes"/i, 'RBAC: no spec writes');

    const unbound = await patchStatus(agentUnbound, 'sbx-a', running);
    assert.notEqual(unbound.code, 0);
    assert.match(unbound.stderr, /credentials must be a ServiceAccount token bound to a pod on a node/);

    const sandboxNode = (name: string) =>
      stringify({ apiVersion: 'sandpit.dev/v1alpha1', kind: 'SandboxNode', metadata: { name }, spec: {} });
    const ownNode = await cp.kubectlResult(['create', '-f', '-'], { input: sandboxNode(nodeA), kubeconfig: agentA });
    assert.equal(ownNode.code, 0, ownNode.stderr);
    const otherNode = await cp.kubectlResult(['create', '-f', '-'], { input: sandboxNode(nodeB), kubeconfig: agentA });
    assert.notEqual(otherNode.code, 0);
    assert.match(
      otherNode.stderr,
      new RegExp(`the sandpit agent on ${nodeA} may only write SandboxNode ${nodeA}, not ${nodeB}`),
    );

    const lease = (name: string) =>
      stringify({
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace: ns },
        spec: { holderIdentity: name, leaseDurationSeconds: 40 },
      });
    const ownLease = await cp.kubectlResult(['create', '-f', '-'], { input: lease(nodeA), kubeconfig: agentA });
    assert.equal(ownLease.code, 0, ownLease.stderr);
    const otherLease = await cp.kubectlResult(['create', '-f', '-'], { input: lease(nodeB), kubeconfig: agentA });
    assert.notEqual(otherLease.code, 0);
    assert.match(
      otherLease.stderr,
      new RegExp(`the sandpit agent on ${nodeA} may only renew its own node Lease, not ${ns}/${nodeB}`),
    );

    const status = JSON.parse((await cp.kubectl(['-n', userNs, 'get', 'sandbox', 'sbx-b', '-o', 'json'])).stdout) as {
      status: { phase: string };
    };
    assert.equal(status.status.phase, 'Pending', 'the foreign sandbox is untouched');
  });

  it('upgrades CRDs with the release (unlike a crds/ folder) and keeps them and the sandboxes', async () => {
    sandboxUid = await uid(['-n', userNs, 'get', 'sandbox', 'sbx-a']);
    // Upgrade 1: a visible change to the CRDs (an extra annotation) and to the workloads.
    await helmOk(cp, [
      'upgrade',
      release,
      CHART,
      '--namespace',
      ns,
      '--set',
      'crds.annotations.sandpit\\.dev/upgrade-check=r2',
      '--set',
      'controller.logLevel=debug',
      '--set',
      'agent.network.subnet=10.99.0.0/24',
    ]);
    const annotation = async (key: string) =>
      (
        await cp.kubectl([
          'get',
          'crd',
          'sandboxes.sandpit.dev',
          '-o',
          `jsonpath={.metadata.annotations.${key.replace(/\./g, '\\.')}}`,
        ])
      ).stdout;
    assert.equal(await annotation('sandpit.dev/upgrade-check'), 'r2', 'helm upgrade changed the CRD');
    // Upgrade 2: the same values again.
    await helmOk(cp, ['upgrade', release, CHART, '--namespace', ns, '--reuse-values']);
    assert.equal(await annotation('helm.sh/resource-policy'), 'keep');
    for (const crd of crdNames) assert.equal(await uid(['get', 'crd', crd]), crdUids[crd], `${crd} kept (same uid)`);
    assert.equal(await uid(['-n', userNs, 'get', 'sandbox', 'sbx-a']), sandboxUid, 'the sandbox survives');
    const phase = (await cp.kubectl(['-n', userNs, 'get', 'sandbox', 'sbx-a', '-o', 'jsonpath={.status.phase}']))
      .stdout;
    assert.equal(phase, 'Running', 'and so does its status');
    const env = (
      await cp.kubectl([
        '-n',
        ns,
        'get',
        'daemonset',
        agentSA,
        '-o',
        'jsonpath={.spec.template.spec.containers[0].env}',
      ])
    ).stdout;
    assert.match(env, /"name":"SANDPIT_SUBNET","value":"10\.99\.0\.0\/24"/);
    const history = (await helmOk(cp, ['history', release, '--namespace', ns, '-o', 'json'])) as string;
    assert.equal((JSON.parse(history) as unknown[]).length, 3);
  });

  it('uninstalls everything but the CRDs and the sandboxes', async () => {
    const manifest = parseDocs(await helmOk(cp, ['get', 'manifest', release, '--namespace', ns]));
    for (const crd of manifest.filter((o) => o.kind === 'CustomResourceDefinition')) {
      // Guard: never delete the shared CRDs other tests of this run rely on.
      assert.equal(
        crd.metadata.annotations?.['helm.sh/resource-policy'],
        'keep',
        'refusing to uninstall a release that would delete the CRDs',
      );
    }
    const out = await helmOk(cp, ['uninstall', release, '--namespace', ns]);
    assert.match(out, /kept due to the resource policy|uninstalled/);
    for (const crd of crdNames) assert.equal(await uid(['get', 'crd', crd]), crdUids[crd], `${crd} kept`);
    assert.equal(await uid(['-n', userNs, 'get', 'sandbox', 'sbx-a']), sandboxUid, 'sandbox kept');
    const gone = manifest.filter((o: K8sObject) => o.kind !== 'CustomResourceDefinition');
    const left = await Promise.all(
      gone.map(async (o) =>
        (await cp.kubectlResult(['get', '-n', ns, o.kind, o.metadata.name])).code === 0
          ? `${o.kind}/${o.metadata.name}`
          : '',
      ),
    );
    assert.deepEqual(left.filter(Boolean), [], 'every other object is deleted');
  });

  it('reinstalls over the kept CRDs with helm 3, then upgrades and uninstalls with helm 3, keeping them', async () => {
    const install = await helm(cp, ['install', release, CHART, '--namespace', ns], { version: 3 });
    assert.equal(install.code, 0, install.stderr);
    for (const crd of crdNames)
      assert.equal(await uid(['get', 'crd', crd]), crdUids[crd], `${crd} adopted, not recreated`);
    const owner = (
      await cp.kubectl([
        'get',
        'crd',
        'sandboxes.sandpit.dev',
        '-o',
        'jsonpath={.metadata.annotations.meta\\.helm\\.sh/release-name}',
      ])
    ).stdout;
    assert.equal(owner, release);
    await helmOk(cp, ['upgrade', release, CHART, '--namespace', ns, '--set', 'controller.replicas=3'], { version: 3 });
    const replicas = (
      await cp.kubectl(['-n', ns, 'get', 'deployment', controllerSA, '-o', 'jsonpath={.spec.replicas}'])
    ).stdout;
    assert.equal(replicas, '3');
    await helmOk(cp, ['uninstall', release, '--namespace', ns], { version: 3 });
    for (const crd of crdNames) assert.equal(await uid(['get', 'crd', crd]), crdUids[crd], `${crd} kept by helm 3 too`);
    assert.equal(await uid(['-n', userNs, 'get', 'sandbox', 'sbx-a']), sandboxUid);
    const vap = await cp.kubectlResult(['get', 'validatingadmissionpolicy', `${release}-agent-node-restriction`]);
    assert.notEqual(vap.code, 0, 'the admission policy went with the release');
  });
});
