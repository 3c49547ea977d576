import assert from 'node:assert/strict';
import { RuntimeService } from '../../node-agent/runtime/index.js';
import { cleanupRuntime, sandbox, sh, startRuntime, testConfig, waitFor } from './runtime-env.js';

/* Node tier: the runtime behind the agent API seam (apply/remove/get/list/onChange). */

describe('runtime service seam (node tier)', function () {
  this.timeout(60_000);
  const config = testConfig();
  let svc: RuntimeService;
  before(async () => {
    svc = new RuntimeService(await startRuntime(config));
  });
  after(async () => {
    await cleanupRuntime(svc?.runtime, config);
  });

  it('applies level-based: same generation is a no-op, paused freezes, a new spec recreates', async () => {
    const seen: string[] = [];
    const off = svc.onChange((o) => seen.push(`${o.ref.name}:${o.status.phase}`));
    const sb = sandbox('svc', { restartPolicy: 'Always', containers: [sh('main', 'sleep 30')] });
    (sb.metadata as { generation?: number }).generation = 1;
    const uid = sb.metadata.uid as string;
    const first = await svc.apply(sb);
    assert.equal(first.status.phase, 'Running');
    const pid1 = svc.runtime.get(svc.runtime.list()[0]!.id)!.pid1!.pid;
    await svc.apply(sb);
    assert.equal(svc.runtime.list()[0]!.pid1!.pid, pid1, 'same generation changes nothing');

    const paused = { ...sb, metadata: { ...sb.metadata, generation: 2 }, spec: { ...sb.spec, paused: true } };
    assert.equal((await svc.apply(paused)).status.phase, 'Paused');
    assert.equal(svc.runtime.list()[0]!.pid1!.pid, pid1, 'pausing keeps the sandbox');

    const changed = { ...paused, metadata: { ...sb.metadata, generation: 3 }, spec: { ...sb.spec, containers: [sh('main', 'sleep 31')] } };
    const obs = await svc.apply(changed as typeof sb);
    assert.equal(obs.generation, 3);
    assert.notEqual(svc.runtime.list()[0]!.pid1!.pid, pid1, 'a changed spec recreates the sandbox');
    assert.equal(svc.get(uid)?.status.phase, 'Running');
    assert.ok(seen.includes('svc:Running') && seen.includes('svc:Paused'));

    await svc.remove(uid);
    assert.equal(svc.get(uid), undefined);
    assert.deepEqual(svc.list(), []);
    await waitFor('no cgroups', () => svc.runtime.cgroups.listSandboxes().length === 0);
    off();
  });
});
