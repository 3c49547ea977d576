import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  logText,
  ROOTFS,
  runToCompletion,
  sandbox,
  SCALE,
  sh,
  startTestRuntime,
  waitFor,
  type TestRuntime,
} from './runtime-env.js';

/* Node tier: exit codes, restarts, stop, pause, cgroup limits, sharing between containers. */

const SIGTERM_BIT = 1n << 14n; // signal 15, in the SigCgt mask of /proc/<pid>/status

/** A shell among `pids` has a SIGTERM handler: it has run its `trap ... TERM`. */
const shellTrapsTerm = (pids: number[]) =>
  pids.some((pid) => {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'sh') return false;
      const caught = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      return caught !== undefined && (BigInt(`0x${caught}`) & SIGTERM_BIT) !== 0n;
    } catch {
      return false; // exited between the listing and the read
    }
  });

describe('node: runtime lifecycle and cgroups', function () {
  this.timeout(60_000 * SCALE); // the emulated cgroup v2 VM is many times slower
  let env: TestRuntime;
  before(async () => {
    // Sandbox PID 1s start cold here (no warm pool), so that path stays tested too.
    env = await startTestRuntime({ warmSandboxes: 0 });
  });
  after(async () => {
    await env.cleanup();
  });

  it('records exit codes and signals', async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('codes', {
        restartPolicy: 'Never',
        containers: [
          sh('three', 'exit 3'),
          sh('killed', 'kill -9 $$$$') /* $$ is kubelet's escape for $ */,
          { name: 'missing', image: `dir:${ROOTFS}`, command: ['/no/such/binary'] },
        ],
      }),
    );
    const [three, killed, missing] = rec.containers;
    assert.deepEqual([three!.state?.terminated?.exitCode, three!.state?.terminated?.reason], [3, 'Error']);
    assert.deepEqual([killed!.state?.terminated?.exitCode, killed!.state?.terminated?.signal], [137, 9]);
    assert.equal(missing!.state?.terminated?.exitCode, 127);
    assert.equal(rec.phase, 'Failed');
  });

  it('restarts with back-off per restartPolicy and keeps the last state', async () => {
    const rec = await env.rt.create(
      sandbox('restarts', { restartPolicy: 'OnFailure', containers: [sh('flaky', 'echo run; exit 2')] }),
    );
    await waitFor('three restarts', () => rec.containers[0]!.restartCount >= 3);
    const c = rec.containers[0]!;
    assert.equal(c.lastState?.terminated?.exitCode, 2);
    assert.match(logText(env.rt, rec, 'flaky'), /run\nrun\nrun/);
    await env.rt.delete(rec.id);

    const ok = await env.rt.create(
      sandbox('onfailure-ok', { restartPolicy: 'OnFailure', containers: [sh('fine', 'exit 0')] }),
    );
    await waitFor('exit', () => ok.containers[0]!.state?.terminated);
    // Deliberate: time for a restart to happen if one wrongly would; none may.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(ok.containers[0]!.restartCount, 0);
    assert.equal(ok.phase, 'Succeeded');
  });

  it('stops with SIGTERM, then SIGKILL after the grace period', async () => {
    const rec = await env.rt.create(
      sandbox('stop', {
        restartPolicy: 'Always',
        containers: [
          sh('polite', 'trap "echo got TERM; exit 0" TERM; while :; do sleep 0.05; done'),
          sh('stubborn', 'trap "echo ignoring TERM" TERM; while :; do sleep 0.05; done'),
        ],
      }),
    );
    await waitFor('both shells trap TERM', () =>
      ['polite', 'stubborn'].every((c) => shellTrapsTerm(env.rt.cgroups.pids(`${rec.id}/c-${c}`))),
    );
    await env.rt.stop(rec.id, 1);
    const [polite, stubborn] = rec.containers;
    assert.equal(polite!.state?.terminated?.exitCode, 0);
    assert.equal(stubborn!.state?.terminated?.exitCode, 137);
    assert.match(logText(env.rt, rec, 'polite'), /got TERM/);
    assert.match(logText(env.rt, rec, 'stubborn'), /ignoring TERM/);
    assert.equal(
      env.rt.cgroups.pids(`${rec.id}/c-polite`).length + env.rt.cgroups.pids(`${rec.id}/c-stubborn`).length,
      0,
    );
  });

  it('OOM-kills a memory hog at the memory limit and reports OOMKilled', async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('oom', {
        restartPolicy: 'Never',
        resources: { memory: '16Mi' },
        containers: [sh('hog', 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived ${#x}')],
      }),
    );
    const t = rec.containers[0]!.state?.terminated;
    assert.equal(t?.reason, 'OOMKilled');
    assert.equal(t?.exitCode, 137);
    assert.doesNotMatch(logText(env.rt, rec, 'hog'), /survived/);
  });

  it('stops a fork bomb at the pids limit', async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('forkbomb', {
        restartPolicy: 'Never',
        resources: { pids: 24 },
        containers: [sh('bomb', 'echo start; while :; do sleep 5 & done')],
      }),
    );
    // ash gives up when fork fails; the limit, not the host, ended the bomb.
    assert.match(logText(env.rt, rec, 'bomb'), /can't fork: Resource temporarily unavailable/);
    assert.equal(rec.containers[0]!.state?.terminated?.exitCode, 2);
    await waitFor(
      'leftover sleeps killed with the container',
      () => env.rt.cgroups.pids(`${rec.id}/c-bomb`).length === 0,
    );
  });

  it('gives CPU requests their weight as kubelet does: the sandbox by its total, each container by its own, best effort the least', async () => {
    const { layout, parent } = env.rt.cgroups;
    // cgroup v1: cpu.shares, 1024 per core requested (2 at the least); cgroup v2: the cpu.weight runc derives from them.
    const v1 = layout.v1.cpu;
    const weight = (rel: string) =>
      Number(
        readFileSync(
          v1 ? join(v1, parent, rel, 'cpu.shares') : join(layout.unified!, parent, rel, 'cpu.weight'),
          'utf8',
        ),
      );
    const expect = (shares: number, cgroupV2Weight: number) => (v1 ? shares : cgroupV2Weight);
    const spec = (asks: string) => ({
      restartPolicy: 'Never' as const,
      containers: [
        sh('asks', 'sleep 30', { resources: { requests: { cpu: asks } } }),
        sh('limited', 'sleep 30', { resources: { limits: { cpu: '250m' } } }), // the limit stands in for the request
        sh('besteffort', 'sleep 30'),
      ],
    });
    const rec = await env.rt.create(sandbox('cpu-weight', spec('500m')));
    const plain = await env.rt.create(
      sandbox('cpu-besteffort', { restartPolicy: 'Never', containers: [sh('main', 'sleep 30')] }),
    );
    try {
      assert.equal(weight(rec.id), expect(768, 30), 'the sandbox: 500m + 250m');
      assert.equal(weight(`${rec.id}/c-asks`), expect(512, 20));
      assert.equal(weight(`${rec.id}/c-limited`), expect(256, 10));
      assert.equal(weight(`${rec.id}/c-besteffort`), expect(2, 1));
      assert.equal(weight(plain.id), expect(2, 1), 'a sandbox that requests nothing is best effort');
      // An edited request restarts the container with its new weight, and the sandbox's follows.
      await env.rt.restartContainer(rec.id, 'asks', sandbox('cpu-weight', spec('1')));
      assert.equal(weight(`${rec.id}/c-asks`), expect(1024, 39));
      assert.equal(weight(rec.id), expect(1280, 49), 'the sandbox: 1 + 250m');
    } finally {
      await env.rt.delete(rec.id);
      await env.rt.delete(plain.id);
    }
  });

  it('pauses (freezes) and resumes a sandbox', async () => {
    const rec = await env.rt.create(
      sandbox('pause', {
        restartPolicy: 'Never',
        containers: [sh('ticker', 'while :; do echo t >> /tmp/ticks; sleep 0.02; done')],
      }),
    );
    const ticks = join(env.rt.store.containerDir(rec.id, 'ticker'), 'upper/tmp/ticks');
    const count = () => (existsSync(ticks) ? readFileSync(ticks, 'utf8').length : 0);
    await waitFor('ticks', () => count() > 10);
    env.rt.pause(rec.id, true);
    assert.equal(rec.phase, 'Paused');
    const frozenAt = count();
    // Deliberate: the ticker writes every 20 ms when it runs; 300 ms frozen must add nothing.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(count(), frozenAt, 'no progress while frozen');
    env.rt.pause(rec.id, false);
    await waitFor('progress after thaw', () => count() > frozenAt);
    const usage = env.rt.status(rec.id).usage!;
    assert.ok(Number(usage.memory) > 0 && usage.pids! >= 3);
    await env.rt.delete(rec.id);
  });

  it('lets two containers share localhost, IPC and /dev/shm but not their filesystems', async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('pair', {
        restartPolicy: 'Never',
        containers: [
          sh(
            'server',
            'readlink /proc/self/ns/net /proc/self/ns/ipc; echo secret > /root/private; echo hello-from-server | nc -l -p 7777; echo shm > /dev/shm/shared',
          ),
          sh(
            'client',
            'readlink /proc/self/ns/net /proc/self/ns/ipc; for i in 1 2 3 4 5 6 7 8 9 10; do nc 127.0.0.1 7777 </dev/null && break; sleep 0.1; done; while [ ! -e /dev/shm/shared ]; do sleep 0.05; done; cat /dev/shm/shared; [ -e /root/private ] && echo SEES-SERVER-FS; echo done',
          ),
        ],
      }),
    );
    const server = logText(env.rt, rec, 'server').split('\n');
    const client = logText(env.rt, rec, 'client');
    assert.ok(client.includes(server[0]!) && client.includes(server[1]!), 'same net and ipc namespaces');
    assert.match(client, /hello-from-server/);
    assert.match(client, /^shm$/m);
    assert.doesNotMatch(client, /SEES-SERVER-FS/);
  });
});
