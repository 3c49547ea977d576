import assert from 'node:assert/strict';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CRD_DIR } from '../../crds/generate.js';
import { invalidExamples, validExamples } from '../support/examples.js';
import { sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { cleanUp } from './sandpit-processes.js';

const NS = 'crd-tests';

describe('cluster: the Sandbox CRDs on a real API server', function () {
  this.timeout(120_000);
  let cp: ControlPlane;

  before(async () => {
    cp = await sharedControlPlane();
    await cp.kubectl([
      'apply',
      '--server-side',
      '--force-conflicts',
      '-f',
      join(CRD_DIR, 'sandboxes.yaml'),
      '-f',
      join(CRD_DIR, 'sandboxnodes.yaml'),
    ]);
    await cp.kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd/sandboxes.sandpit.dev',
      'crd/sandboxnodes.sandpit.dev',
    ]);
    await cp.kubectl(['create', 'namespace', NS]).catch(() => undefined);
  });

  // The examples created here for real have no nodeSelector: left behind, a later test's
  // controller would schedule them onto its node and its agent would try to run them.
  after(async () => {
    if (cp) await cleanUp(cp, [NS], []);
  });

  it('accepts every example, in a server-side dry run and for real', async () => {
    for (const ex of await validExamples()) {
      const dry = await cp.kubectl(['-n', NS, 'apply', '--dry-run=server', '-f', ex.path]);
      assert.match(dry.stdout, /created \(server dry run\)/, ex.file);
      await cp.kubectl(['-n', NS, 'apply', '-f', ex.path]);
      const name = (ex.object.metadata as { name: string }).name;
      const { stdout } = await cp.kubectl(['-n', NS, 'get', 'sandbox', name, '-o', 'json']);
      const stored = JSON.parse(stdout) as { spec: { restartPolicy: string; resources: { pids: number } } };
      assert.ok(
        ['Always', 'OnFailure', 'Never'].includes(stored.spec.restartPolicy),
        `${ex.file}: defaults applied by the server`,
      );
      assert.ok(stored.spec.resources.pids >= 16);
    }
  });

  it('rejects every invalid example with a message naming the field and the rule', async () => {
    const examples = await invalidExamples();
    assert.ok(examples.length >= 10);
    for (const ex of examples) {
      assert.ok(ex.expect, `${ex.file} needs an "# expect: field | message" line`);
      const res = await cp.kubectlResult(['-n', NS, 'apply', '--dry-run=server', '-f', ex.path]);
      assert.notEqual(res.code, 0, `${ex.file} was accepted`);
      assert.ok(
        res.stderr.includes(`${ex.expect.field}:`),
        `${ex.file}: field ${ex.expect.field} not named in: ${res.stderr}`,
      );
      assert.ok(res.stderr.includes(ex.expect.message), `${ex.file}: "${ex.expect.message}" not in: ${res.stderr}`);
    }
  });

  it('kubectl explain prints field descriptions', async () => {
    const { stdout } = await cp.kubectl(['explain', 'sandbox.spec.containers']);
    assert.match(stdout, /A container of the sandbox/);
    assert.match(stdout, /imagePullPolicy\s+<string>/);
    assert.match(stdout, /When to pull the image/);
    const node = await cp.kubectl(['explain', 'sandboxnode.status.cgroupMode']);
    assert.match(node.stdout, /cgroup layout of the node/);
  });

  it('kubectl get sbx shows the printer columns, filled from the status', async () => {
    const name = 'columns';
    await cp.kubectl(['-n', NS, 'apply', '-f', '-'], {
      input: stringify({
        apiVersion: 'sandpit.dev/v1alpha1',
        kind: 'Sandbox',
        metadata: { name },
        spec: { containers: [{ name: 'main', image: 'localhost:5000/sandpit/busybox:stable' }] },
      }),
    });
    const status = {
      status: {
        phase: 'Running',
        nodeName: 'node-a',
        sandboxIP: '10.88.0.7',
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'ContainersRunning',
            message: 'all containers are running',
            lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
          },
        ],
      },
    };
    await cp.kubectl([
      '-n',
      NS,
      'patch',
      'sandbox',
      name,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify(status),
    ]);
    const { stdout } = await cp.kubectl(['-n', NS, 'get', 'sbx', name]);
    const [header, row] = stdout.trim().split('\n');
    assert.deepEqual(header!.split(/\s+/), ['NAME', 'PHASE', 'NODE', 'IP', 'READY', 'AGE']);
    assert.deepEqual(row!.split(/\s+/).slice(0, 5), [name, 'Running', 'node-a', '10.88.0.7', 'True']);
    const wide = await cp.kubectl(['-n', NS, 'get', 'sbx', name, '-o', 'wide']);
    assert.match(wide.stdout.split('\n')[0]!, /REASON\s+HOST-IP/);
  });

  it('rejects a change to an immutable field', async () => {
    const manifest = (nodeName: string) =>
      stringify({
        apiVersion: 'sandpit.dev/v1alpha1',
        kind: 'Sandbox',
        metadata: { name: 'pinned' },
        spec: { nodeName, containers: [{ name: 'main', image: 'localhost:5000/sandpit/busybox:stable' }] },
      });
    await cp.kubectl(['-n', NS, 'apply', '-f', '-'], { input: manifest('node-a') });
    const res = await cp.kubectlResult(['-n', NS, 'apply', '-f', '-'], { input: manifest('node-b') });
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /spec\.nodeName: .*nodeName is immutable/);
    const hostUsers = await cp.kubectlResult([
      '-n',
      NS,
      'patch',
      'sandbox',
      'pinned',
      '--type=merge',
      '-p',
      '{"spec":{"hostUsers":false}}',
    ]);
    assert.notEqual(hostUsers.code, 0);
    assert.match(hostUsers.stderr, /hostUsers is immutable/);
    const shared = await cp.kubectlResult([
      '-n',
      NS,
      'patch',
      'sandbox',
      'pinned',
      '--type=merge',
      '-p',
      '{"spec":{"shareProcessNamespace":false}}',
    ]);
    assert.notEqual(shared.code, 0);
    assert.match(shared.stderr, /shareProcessNamespace is immutable/);
    const mode = await cp.kubectlResult([
      '-n',
      NS,
      'patch',
      'sandbox',
      'pinned',
      '--type=merge',
      '-p',
      '{"spec":{"network":{"mode":"None"}}}',
    ]);
    assert.notEqual(mode.code, 0);
    assert.match(mode.stderr, /network\.mode is immutable/);
    // The refused patches changed nothing.
    const kept = JSON.parse((await cp.kubectl(['-n', NS, 'get', 'sandbox', 'pinned', '-o', 'json'])).stdout) as {
      spec: { shareProcessNamespace: boolean; hostUsers: boolean; network: { mode: string } };
    };
    assert.deepEqual(
      [kept.spec.shareProcessNamespace, kept.spec.hostUsers, kept.spec.network.mode],
      [true, true, 'Bridge'],
    );
  });

  it('server-side apply merges the container list by name across field managers', async () => {
    const manifest = (containers: { name: string; image: string }[]) =>
      stringify({
        apiVersion: 'sandpit.dev/v1alpha1',
        kind: 'Sandbox',
        metadata: { name: 'ssa' },
        spec: { containers },
      });
    const image = 'localhost:5000/sandpit/busybox:stable';
    await cp.kubectl(['-n', NS, 'apply', '--server-side', '--field-manager=team-a', '-f', '-'], {
      input: manifest([{ name: 'app', image }]),
    });
    await cp.kubectl(['-n', NS, 'apply', '--server-side', '--field-manager=team-b', '-f', '-'], {
      input: manifest([{ name: 'sidecar', image }]),
    });
    const names = async () =>
      (
        JSON.parse((await cp.kubectl(['-n', NS, 'get', 'sandbox', 'ssa', '-o', 'json'])).stdout) as {
          spec: { containers: { name: string; image: string }[] };
        }
      ).spec.containers;
    assert.deepEqual((await names()).map((c) => c.name).sort(), ['app', 'sidecar']);
    // team-a changes its own container; team-b's entry is untouched.
    await cp.kubectl(['-n', NS, 'apply', '--server-side', '--field-manager=team-a', '-f', '-'], {
      input: manifest([{ name: 'app', image: `${image}-v2` }]),
    });
    const after = await names();
    assert.deepEqual(after.map((c) => [c.name, c.image]).sort(), [
      ['app', `${image}-v2`],
      ['sidecar', image],
    ]);
  });
});
