import assert from 'node:assert/strict';
import { RuntimeService } from '../../node-agent/runtime/index.js';
import { readFileSync, readlinkSync } from 'node:fs';
import { Sandbox } from '../../crds/sandbox.js';
import { inWindow, parseCriLine, runWindow } from '../../node-agent/api/streams/logselect.js';
import { cleanupRuntime, idOf, logText, sandbox, sh, startRuntime, testConfig, waitFor } from './runtime-env.js';

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

  it('applies level-based: same generation is a no-op, paused freezes, a sandbox-level edit recreates and says why', async () => {
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

    const notices: string[] = [];
    const offNotice = svc.onNotice((ref, n) => notices.push(`${ref.name}:${n.type}/${n.reason}: ${n.note}`));
    const changed = { ...paused, metadata: { ...sb.metadata, generation: 3 }, spec: { ...sb.spec, hostname: 'renamed' } };
    const obs = await svc.apply(changed as typeof sb);
    offNotice();
    assert.equal(obs.generation, 3);
    assert.notEqual(svc.runtime.list()[0]!.pid1!.pid, pid1, 'a new hostname recreates the sandbox');
    assert.deepEqual(notices, ['svc:Normal/SandboxChanged: Sandbox spec changed (spec.hostname), it will be killed and re-created']);
    assert.equal(svc.get(uid)?.status.phase, 'Running');
    assert.ok(seen.includes('svc:Running') && seen.includes('svc:Paused'));

    await svc.remove(uid);
    assert.equal(svc.get(uid), undefined);
    assert.deepEqual(svc.list(), []);
    await waitFor('no cgroups', () => svc.runtime.cgroups.listSandboxes().length === 0);
    off();
  });

  it('restarts only the container whose definition changed: same sandbox, others untouched, the old run behind --previous', async () => {
    const sb = sandbox('edit', {
      restartPolicy: 'Always',
      containers: [sh('web', 'echo old-web; exec sleep 30'), sh('side', 'echo side; exec sleep 30')],
    });
    (sb.metadata as { generation?: number }).generation = 1;
    const uid = sb.metadata.uid as string;
    await svc.apply(sb);
    const id = idOf(sb);
    const rec = svc.runtime.get(id)!;
    await waitFor('old-web logged', () => logText(svc.runtime, rec, 'web').includes('old-web'));
    const pid1 = rec.pid1!.pid;
    const netns = readlinkSync(`/proc/${pid1}/ns/net`);
    const sidePid = await waitFor('side forked', () => svc.runtime.workloadPid(id, 'side'));
    const oldWebPid = await waitFor('web forked', () => svc.runtime.workloadPid(id, 'web'));

    const notices: string[] = [];
    const offNotice = svc.onNotice((_ref, n) => notices.push(`${n.type}/${n.reason}: ${n.note}`));
    const edited = Sandbox.parse({ ...sb, metadata: { ...sb.metadata, generation: 2 }, spec: { ...sb.spec, containers: [sh('web', 'echo new-web; exec sleep 30', { env: [{ name: 'V', value: '2' }] }), sb.spec.containers[1]!] } });
    const obs = await svc.apply(edited);
    offNotice();
    assert.equal(obs.generation, 2);
    assert.deepEqual(notices, ['Normal/Killing: Container web definition changed (command, env), will be restarted']);

    const now = svc.runtime.get(id)!;
    assert.equal(now, rec, 'the same sandbox record');
    assert.equal(now.pid1!.pid, pid1, 'the same PID 1');
    assert.equal(readlinkSync(`/proc/${pid1}/ns/net`), netns, 'the same network namespace');
    assert.equal(svc.runtime.workloadPid(id, 'side'), sidePid, 'the other container keeps running');
    const web = await waitFor('web running again', () => svc.get(uid)?.status.containerStatuses?.find((c) => c.name === 'web' && c.state?.running));
    assert.notEqual(await waitFor('new web forked', () => svc.runtime.workloadPid(id, 'web')), oldWebPid);
    assert.equal(web.restartCount, 1, 'a changed container counts a restart, as kubelet counts one');
    assert.equal(svc.get(uid)?.status.containerStatuses?.find((c) => c.name === 'side')?.restartCount, 0);
    assert.equal(web.lastState?.terminated?.reason, 'Error', 'the old run ended by SIGTERM');
    assert.equal(svc.get(uid)?.status.phase, 'Running');
    const v = await svc.runtime.exec(id, 'web', ['/bin/sh', '-c', 'echo $V']);
    let out = '';
    v.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await v.exited;
    await waitFor('exec output', () => out.includes('2'));

    // What the agent's log stream serves (node-agent/api/streams): the current run, and the previous one.
    await waitFor('new-web logged', () => logText(svc.runtime, rec, 'web').includes('new-web'));
    const lines = readFileSync(svc.runtime.logPath(id, 'web'), 'utf8').split('\n').map(parseCriLine).filter((l) => l !== undefined);
    const run = (previous: boolean) => lines.filter((l) => inWindow(l, runWindow(web, previous, undefined))).map((l) => l.text);
    assert.deepEqual(run(true), ['old-web']);
    assert.deepEqual(run(false), ['new-web']);

    // An edit whose image cannot be had leaves the running container alone: the apply fails, nothing was stopped.
    const running = svc.runtime.workloadPid(id, 'web');
    const badImage = Sandbox.parse({ ...edited, metadata: { ...sb.metadata, generation: 3 }, spec: { ...edited.spec, containers: [{ ...edited.spec.containers[0]!, image: 'dir:/nonexistent-rootfs' }, edited.spec.containers[1]!] } });
    await assert.rejects(svc.apply(badImage));
    assert.equal(svc.runtime.workloadPid(id, 'web'), running, 'the old run keeps running');
    assert.equal(svc.get(uid)?.generation, 2);

    // An edit the sandbox cannot take in place recreates it, and says which field forced it.
    const notices2: string[] = [];
    const off2 = svc.onNotice((_ref, n) => notices2.push(`${n.type}/${n.reason}: ${n.note}`));
    await svc.apply(Sandbox.parse({ ...edited, metadata: { ...sb.metadata, generation: 4 }, spec: { ...edited.spec, volumes: [{ name: 'scratch', emptyDir: {} }] } }));
    off2();
    assert.deepEqual(notices2, ['Normal/SandboxChanged: Sandbox spec changed (spec.volumes), it will be killed and re-created']);
    assert.notEqual(svc.runtime.get(id)!.pid1!.pid, pid1, 'a new volume needs a new sandbox');
    await svc.remove(uid);
  });
});
