import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import { V1_CONTROLLERS } from '../../node-agent/cgroups/layout.js';
import {
  cleanupRuntime,
  sandbox,
  sh,
  startRuntime,
  startTestRuntime,
  testConfig,
  waitFor,
  type TestRuntime,
} from './runtime-env.js';

/* Node tier: exec joins a running container's namespaces, cgroup and identity. */

const collect = (s: Socket | null) => {
  let text = '';
  s?.on('data', (d: Buffer) => (text += d.toString()));
  return () => text;
};

/** The workload has written /tmp/marker (seen through its root from the host). */
const markerWritten = (pid: number | undefined) => pid !== undefined && existsSync(`/proc/${pid}/root/tmp/marker`);

describe('node: runtime exec', function () {
  this.timeout(60_000);
  let env: TestRuntime;
  before(async () => {
    env = await startTestRuntime();
  });
  after(async () => {
    await env.cleanup();
  });

  it('runs a command in the container without a TTY, with stdin, stdout, stderr and the exit code', async () => {
    const rec = await env.rt.create(
      sandbox('exec', {
        restartPolicy: 'Never',
        hostname: 'exec-box',
        containers: [
          sh('main', 'echo in-container > /tmp/marker; sleep 30', {
            securityContext: { runAsUser: 1000, runAsGroup: 1000 },
          }),
        ],
      }),
    );
    await waitFor('marker', () => markerWritten(env.rt.workloadPid(rec.id, 'main')));
    const s = await env.rt.exec(
      rec.id,
      'main',
      [
        '/bin/sh',
        '-c',
        'cat /tmp/marker; hostname; id -u; sed "s/^/cg /" /proc/self/cgroup; grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status; read line; echo "got $line"; echo oops >&2; [ -t 0 ] && echo TTY; exit 5',
      ],
      { stdin: true },
    );
    const out = collect(s.stdout);
    const err = collect(s.stderr);
    s.stdin!.end('hello\n');
    const exit = await s.exited;
    await s.drained; // all the command wrote has been read
    assert.equal(exit.exitCode, 5);
    assert.match(out(), /^in-container$/m);
    assert.match(out(), /^exec-box$/m);
    assert.match(out(), /^1000$/m);
    // Inside the sandbox's cgroup namespace every hierarchy sandpit keeps (the
    // v2 unified one and/or the v1 hierarchies of its controllers, as on a
    // hybrid host) shows the container's leaf. Others (name=systemd, blkio...)
    // are not sandpit's and show wherever the agent runs.
    const ours = (l: string) =>
      /^cg 0::/.test(l) || V1_CONTROLLERS.some((c) => l.split(':')[1]!.split(',').includes(c));
    const cgroups = out()
      .split('\n')
      .filter((l) => l.startsWith('cg ') && ours(l));
    assert.equal(cgroups.length, env.rt.cgroups.hierarchies().length, `one line per hierarchy sandpit keeps: ${out()}`);
    for (const l of cgroups)
      assert.match(l, /^cg \d+:[^:]*:\/c-main$/, `exec joined the container cgroup in every hierarchy: ${l}`);
    assert.match(out(), /Seccomp:\s+2/);
    assert.match(out(), /NoNewPrivs:\s+1/);
    assert.match(out(), /got hello/);
    assert.doesNotMatch(out(), /TTY/);
    assert.match(err(), /oops/);
    await env.rt.delete(rec.id);
  });

  it('allocates a TTY from the container devpts when asked', async () => {
    const rec = await env.rt.create(
      sandbox('exec-tty', { restartPolicy: 'Never', containers: [sh('main', 'sleep 30')] }),
    );
    await waitFor('running', () => env.rt.workloadPid(rec.id, 'main'));
    const s = await env.rt.exec(
      rec.id,
      'main',
      ['/bin/sh', '-c', '[ -t 0 ] && echo is-a-tty; tty; ps -o pid,tty,comm | grep " ps"'],
      { tty: true },
    );
    const out = collect(s.stdout);
    const exit = await s.exited;
    await s.drained; // the terminal closed: all the command wrote has been read
    assert.equal(exit.exitCode, 0);
    assert.match(out(), /is-a-tty/);
    assert.match(out(), /\/dev\/pts\/0/);
    s.stdout.destroy();
    await env.rt.delete(rec.id);
  });

  it('ends a terminal session when its command does, even while other sandboxes are being started', async () => {
    // A launch on another launcher thread meanwhile must not inherit the terminal: it would hold it open and the
    // session's output would never end (until that other process did).
    const rec = await env.rt.create(
      sandbox('exec-tty-busy', { restartPolicy: 'Never', containers: [sh('main', 'sleep 30')] }),
    );
    await waitFor('running', () => env.rt.workloadPid(rec.id, 'main'));
    const others: Promise<{ id: string }>[] = [];
    const sessions = [];
    for (let i = 0; i < 6; i++) {
      others.push(
        env.rt.create(sandbox(`exec-tty-other-${i}`, { restartPolicy: 'Never', containers: [sh('main', 'sleep 30')] })),
      );
      sessions.push(await env.rt.exec(rec.id, 'main', ['/bin/sh', '-c', 'echo hi'], { tty: true }));
    }
    const created = await Promise.all(others);
    try {
      for (const s of sessions) {
        const out = collect(s.stdout);
        assert.equal((await s.exited).exitCode, 0);
        const ended = await Promise.race([
          s.drained.then(() => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), 5000)),
        ]);
        assert.ok(ended, `the terminal of exec ${s.pid} closed when its command exited (${JSON.stringify(out())})`);
        s.stdout.destroy();
      }
    } finally {
      for (const o of created) await env.rt.delete(o.id);
      await env.rt.delete(rec.id);
    }
  });

  it('execs into a container the agent re-adopted after a restart', async () => {
    const config = testConfig();
    const first = await startRuntime(config);
    let second: Awaited<ReturnType<typeof startRuntime>> | undefined;
    try {
      const rec = await first.create(
        sandbox('exec-readopt', {
          restartPolicy: 'Never',
          containers: [
            sh('main', 'echo before-restart > /tmp/marker; sleep 30', { securityContext: { runAsUser: 1000 } }),
          ],
        }),
      );
      await waitFor('marker', () => markerWritten(first.workloadPid(rec.id, 'main')));
      const shim = first.shimPid(rec.id, 'main');
      await first.close(); // the agent goes away; the sandbox does not
      second = await startRuntime(config);
      assert.equal(second.get(rec.id)?.phase, 'Running', 're-adopted');
      assert.equal(second.shimPid(rec.id, 'main'), shim, 'the same container process, not a new one');
      const s = await second.exec(rec.id, 'main', [
        '/bin/sh',
        '-c',
        'cat /tmp/marker; id -u; grep -c . /proc/1/cmdline >/dev/null && tr "\\0" " " < /proc/1/cmdline',
      ]);
      const out = collect(s.stdout);
      const exit = await s.exited;
      await s.drained; // all the command wrote has been read
      assert.equal(exit.exitCode, 0);
      assert.match(out(), /^before-restart$/m, "the exec sees the running container's files");
      assert.match(out(), /^1000$/m);
      assert.match(out(), /^sandpit-init (init|warm) /m, "and its sandbox's PID namespace");
      await second.delete(rec.id);
    } finally {
      await cleanupRuntime(second ?? first, config);
    }
  });
});
