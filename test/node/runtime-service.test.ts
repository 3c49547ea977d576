import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { Sandbox } from '../../crds/sandbox.js';
import { runWindow } from '../../node-agent/api/streams/logselect.js';
import { inWindow, parseCriLine } from '../../node-agent/process/cri-log.js';
import { RuntimeService } from '../../node-agent/runtime/service.js';
import { mountsUnder } from '../../node-agent/runtime/mounts.js';
import type { SandboxObservation } from '../../node-agent/contracts.js';
import {
  applied,
  cleanupRuntime,
  idOf,
  logText,
  sandbox,
  sh,
  startRuntime,
  testConfig,
  waitFor,
} from './runtime-env.js';

/* Node tier: the runtime behind the agent API seam (apply/remove/get/list/onChange). */

const condition = (o: SandboxObservation | undefined, type: string) =>
  o?.status.conditions?.find((c) => c.type === type);
const waiting = (o: SandboxObservation | undefined) =>
  o?.status.containerStatuses?.map((c) => [c.name, c.state?.waiting?.reason]);

describe('node: runtime service seam', function () {
  this.timeout(60_000);
  const config = testConfig();
  let svc: RuntimeService;
  const seen: SandboxObservation[] = [];
  before(async () => {
    // A short retry back-off, so the test sees attempts come and go (the agent uses kubelet's 10 s to 5 min).
    svc = new RuntimeService(await startRuntime(config), undefined, { retryBackoff: { initialMs: 300, maxMs: 1_000 } });
    svc.onChange((o) => seen.push(o));
  });
  after(async () => {
    await cleanupRuntime(svc?.runtime, config);
  });

  const nothingLeft = () => {
    assert.deepEqual(svc.runtime.list(), [], 'no record');
    assert.deepEqual(svc.runtime.cgroups.listSandboxes(), [], 'no cgroup');
    assert.deepEqual(mountsUnder(config.stateRoot), [], 'no mount');
    assert.deepEqual(readdirSync(config.stateRoot), [], 'no state dir');
  };

  it('applies level-based and in the background: accepted at once, same generation is a no-op, paused freezes, a sandbox-level edit recreates and says why', async () => {
    const names: string[] = [];
    const off = svc.onChange((o) => names.push(`${o.ref.name}:${o.status.phase}`));
    const sb = sandbox('svc', { restartPolicy: 'Always', containers: [sh('main', 'sleep 30')] });
    (sb.metadata as { generation?: number }).generation = 1;
    const uid = sb.metadata.uid as string;
    const accepted = await svc.apply(sb);
    assert.equal(accepted.generation, 1);
    assert.equal(accepted.status.phase, 'Pending', 'the PUT is answered before the create ends');
    const first = await applied(svc, sb);
    assert.equal(first.status.phase, 'Running');
    const pid1 = svc.runtime.get(svc.runtime.list()[0]!.id)!.pid1!.pid;
    await svc.apply(sb);
    assert.equal(svc.runtime.list()[0]!.pid1!.pid, pid1, 'same generation changes nothing');

    const paused = { ...sb, metadata: { ...sb.metadata, generation: 2 }, spec: { ...sb.spec, paused: true } };
    assert.equal((await svc.apply(paused)).status.phase, 'Paused', 'pausing is done on the spot');
    assert.equal(svc.runtime.list()[0]!.pid1!.pid, pid1, 'pausing keeps the sandbox');

    const notices: string[] = [];
    const offNotice = svc.onNotice((ref, n) => notices.push(`${ref.name}:${n.type}/${n.reason}: ${n.note}`));
    const changed = {
      ...paused,
      metadata: { ...sb.metadata, generation: 3 },
      spec: { ...sb.spec, hostname: 'renamed' },
    };
    const obs = await applied(svc, changed as typeof sb);
    offNotice();
    assert.equal(obs.generation, 3);
    assert.notEqual(svc.runtime.list()[0]!.pid1!.pid, pid1, 'a new hostname recreates the sandbox');
    assert.deepEqual(notices, [
      'svc:Normal/SandboxChanged: Sandbox spec changed (spec.hostname), it will be killed and re-created',
    ]);
    assert.equal(svc.get(uid)?.status.phase, 'Running');
    assert.ok(names.includes('svc:Running') && names.includes('svc:Paused'));

    await svc.remove(uid);
    assert.equal(svc.get(uid), undefined);
    assert.deepEqual(svc.list(), []);
    await waitFor('no cgroups', () => svc.runtime.cgroups.listSandboxes().length === 0);
    off();
  });

  it('reports a pull failure as ErrImagePull, then ImagePullBackOff while it waits, retries, and a delete during the back-off leaves nothing', async () => {
    const sb = sandbox('nopull', {
      restartPolicy: 'Always',
      containers: [sh('ok', 'sleep 30'), { name: 'gone', image: 'dir:/nonexistent/rootfs', command: ['/bin/true'] }],
    });
    const uid = sb.metadata.uid as string;
    seen.length = 0;
    const failed = await applied(svc, sb);
    assert.equal(failed.status.reason, 'ErrImagePull');
    assert.deepEqual(waiting(failed), [
      ['ok', 'ContainerCreating'],
      ['gone', 'ErrImagePull'],
    ]);
    assert.match(
      failed.status.containerStatuses?.[1]?.state?.waiting?.message ?? '',
      /dir:\/nonexistent\/rootfs is not an unpacked directory/,
    );
    assert.equal(condition(failed, 'ImagesReady')?.reason, 'ErrImagePull');
    assert.equal(condition(failed, 'Ready')?.status, 'False');
    assert.equal(condition(failed, 'Reconciling')?.status, 'True', 'a retry may fix it');
    assert.equal(condition(failed, 'Stalled'), undefined);
    nothingLeft();
    const backOff = await waitFor('ImagePullBackOff', () =>
      svc.get(uid)?.status.reason === 'ImagePullBackOff' ? svc.get(uid) : undefined,
    );
    assert.match(backOff!.status.message ?? '', /Back-off pulling image "dir:\/nonexistent\/rootfs"/);
    // A second attempt happens and fails the same way: ErrImagePull is reported again.
    await waitFor(
      'a retry',
      () => seen.filter((o) => o.ref.uid === uid && o.status.reason === 'ErrImagePull').length >= 2,
    );
    assert.equal(svc.list().length, 1, 'the node lists it while it waits (the controller does not re-send it)');
    await svc.remove(uid);
    assert.equal(svc.get(uid), undefined);
    const after = seen.length;
    // Deliberate: longer than the back-off (at most 1 s here), so a retry the delete failed to cancel would show.
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(seen.slice(after).filter((o) => o.ref.uid === uid).length, 0, 'no attempt after the delete');
    nothingLeft();
  });

  it('a delete while the create is under way waits for it and leaves nothing; a new generation during it is what gets built', async () => {
    const sb = sandbox('racing', { restartPolicy: 'Always', containers: [sh('main', 'sleep 30')] });
    (sb.metadata as { generation?: number }).generation = 1;
    const uid = sb.metadata.uid as string;
    assert.equal((await svc.apply(sb)).status.phase, 'Pending');
    await svc.remove(uid);
    assert.equal(svc.get(uid), undefined);
    nothingLeft();

    const again = sandbox('racing2', { restartPolicy: 'Always', containers: [sh('main', 'sleep 30')] });
    (again.metadata as { generation?: number }).generation = 1;
    await svc.apply(again);
    const next = {
      ...again,
      metadata: { ...again.metadata, generation: 2 },
      spec: { ...again.spec, containers: [sh('main', 'sleep 32')] },
    };
    const obs = await applied(svc, next as typeof again);
    assert.equal(obs.status.phase, 'Running');
    assert.equal(svc.runtime.list().length, 1, 'one sandbox, of the new generation');
    assert.equal(svc.runtime.list()[0]!.generation, 2);
    await svc.remove(again.metadata.uid as string);
    nothingLeft();
  });

  it('stops on what no retry fixes (CreateContainerConfigError: Stalled) until a new generation, which then runs', async () => {
    const bad = sandbox('nonroot', {
      restartPolicy: 'Always',
      containers: [sh('main', 'sleep 30', { securityContext: { runAsNonRoot: true } })],
    });
    (bad.metadata as { generation?: number }).generation = 1;
    const uid = bad.metadata.uid as string;
    seen.length = 0;
    const failed = await applied(svc, bad);
    assert.deepEqual(waiting(failed), [['main', 'CreateContainerConfigError']]);
    assert.match(
      failed.status.message ?? '',
      /container main: .*runAsNonRoot is set but the container would run as UID 0/,
    );
    assert.match(failed.status.message ?? '', /set securityContext.runAsUser/, 'with the hint');
    assert.equal(condition(failed, 'Stalled')?.reason, 'CreateContainerConfigError');
    assert.equal(condition(failed, 'Reconciling'), undefined);
    nothingLeft();
    // Deliberate: time for a retry to happen if one wrongly would; a config error is not retried.
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(seen.filter((o) => o.ref.uid === uid && o.status.reason).length, 1, 'not retried');

    const fixed = {
      ...bad,
      metadata: { ...bad.metadata, generation: 2 },
      spec: {
        ...bad.spec,
        containers: [sh('main', 'sleep 30', { securityContext: { runAsNonRoot: true, runAsUser: 1000 } })],
      },
    };
    assert.equal((await applied(svc, fixed as typeof bad)).status.phase, 'Running');
    await svc.remove(uid);
    nothingLeft();
  });

  it('reports a container that cannot start (its workingDir is a file of the image) as RunContainerError, Stalled', async () => {
    const sb = sandbox('filecwd', {
      restartPolicy: 'Always',
      containers: [sh('main', 'sleep 30', { workingDir: '/bin/sh' })],
    });
    const failed = await applied(svc, sb);
    assert.deepEqual(waiting(failed), [['main', 'RunContainerError']], JSON.stringify(failed.status));
    assert.equal(condition(failed, 'Stalled')?.reason, 'RunContainerError');
    nothingLeft();
    await svc.remove(sb.metadata.uid as string);
  });

  it('restarts only the container whose definition changed: same sandbox, others untouched, the old run behind --previous', async () => {
    const sb = sandbox('edit', {
      restartPolicy: 'Always',
      containers: [sh('web', 'echo old-web; exec sleep 30'), sh('side', 'echo side; exec sleep 30')],
    });
    (sb.metadata as { generation?: number }).generation = 1;
    const uid = sb.metadata.uid as string;
    await applied(svc, sb);
    const id = idOf(sb);
    const rec = svc.runtime.get(id)!;
    await waitFor('old-web logged', () => logText(svc.runtime, rec, 'web').includes('old-web'));
    const pid1 = rec.pid1!.pid;
    const netns = readlinkSync(`/proc/${pid1}/ns/net`);
    const sidePid = await waitFor('side forked', () => svc.runtime.workloadPid(id, 'side'));
    const oldWebPid = await waitFor('web forked', () => svc.runtime.workloadPid(id, 'web'));

    const notices: string[] = [];
    const offNotice = svc.onNotice((_ref, n) => notices.push(`${n.type}/${n.reason}: ${n.note}`));
    const edited = Sandbox.parse({
      ...sb,
      metadata: { ...sb.metadata, generation: 2 },
      spec: {
        ...sb.spec,
        containers: [
          sh('web', 'echo new-web; exec sleep 30', { env: [{ name: 'V', value: '2' }] }),
          sb.spec.containers[1]!,
        ],
      },
    });
    const accepted = await svc.apply(edited);
    assert.equal(accepted.status.phase, 'Running', 'while the edit is under way the sandbox answers as it runs');
    const obs = await applied(svc, edited);
    offNotice();
    assert.equal(obs.generation, 2);
    assert.deepEqual(notices, ['Normal/Killing: Container web definition changed (command, env), will be restarted']);

    const now = svc.runtime.get(id)!;
    assert.equal(now, rec, 'the same sandbox record');
    assert.equal(now.pid1!.pid, pid1, 'the same PID 1');
    assert.equal(readlinkSync(`/proc/${pid1}/ns/net`), netns, 'the same network namespace');
    assert.equal(svc.runtime.workloadPid(id, 'side'), sidePid, 'the other container keeps running');
    const web = await waitFor('web running again', () =>
      svc.get(uid)?.status.containerStatuses?.find((c) => c.name === 'web' && c.state?.running),
    );
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
    const lines = readFileSync(svc.runtime.logPath(id, 'web'), 'utf8')
      .split('\n')
      .map(parseCriLine)
      .filter((l) => l !== undefined);
    const run = (previous: boolean) =>
      lines.filter((l) => inWindow(l, runWindow(web, previous, undefined))).map((l) => l.text);
    assert.deepEqual(run(true), ['old-web']);
    assert.deepEqual(run(false), ['new-web']);

    // An edit whose image cannot be had leaves the running container alone, and says why in a Warning.
    const running = svc.runtime.workloadPid(id, 'web');
    const failed: string[] = [];
    const offFailed = svc.onNotice((_ref, n) => failed.push(`${n.type}/${n.reason}: ${n.note}`));
    const badImage = Sandbox.parse({
      ...edited,
      metadata: { ...sb.metadata, generation: 3 },
      spec: {
        ...edited.spec,
        containers: [{ ...edited.spec.containers[0]!, image: 'dir:/nonexistent-rootfs' }, edited.spec.containers[1]!],
      },
    });
    await svc.apply(badImage);
    await waitFor('the failed edit reported', () => failed.some((f) => f.startsWith('Warning/Failed: ')));
    offFailed();
    assert.equal(svc.runtime.workloadPid(id, 'web'), running, 'the old run keeps running');
    assert.equal(svc.get(uid)?.generation, 2);
    assert.equal(svc.get(uid)?.status.phase, 'Running');

    // An edit the sandbox cannot take in place recreates it, and says which field forced it.
    const notices2: string[] = [];
    const off2 = svc.onNotice((_ref, n) => notices2.push(`${n.type}/${n.reason}: ${n.note}`));
    await applied(
      svc,
      Sandbox.parse({
        ...edited,
        metadata: { ...sb.metadata, generation: 4 },
        spec: { ...edited.spec, volumes: [{ name: 'scratch', emptyDir: {} }] },
      }),
    );
    off2();
    assert.ok(
      notices2.includes('Normal/SandboxChanged: Sandbox spec changed (spec.volumes), it will be killed and re-created'),
      notices2.join('; '),
    );
    assert.notEqual(svc.runtime.get(id)!.pid1!.pid, pid1, 'a new volume needs a new sandbox');
    await svc.remove(uid);
    nothingLeft();
  });
});
