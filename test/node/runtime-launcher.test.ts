import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { logText, runToCompletion, sandbox, sh, startTestRuntime, waitFor, type TestRuntime } from './runtime-env.js';

/*
 * Node tier: launcher threads. A container launch moves a thread into the
 * container's namespaces and root, and the shim (not the thread) takes on the
 * container's identity; the thread then steps back and serves again. What
 * must hold: threads are reused, the workload still gets its identity, and
 * no thread of the agent is left inside a container's namespaces or with a
 * container's credentials or filter.
 */

const KINDS = ['net', 'ipc', 'uts', 'cgroup', 'mnt', 'pid_for_children'] as const;

function threadsOutsideHost(): string[] {
  const host = new Map(KINDS.map((k) => [k, readlinkSync(`/proc/self/ns/${k}`)]));
  const bad: string[] = [];
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      for (const k of KINDS) {
        const ns = readlinkSync(`/proc/self/task/${tid}/ns/${k}`);
        if (ns !== host.get(k)) bad.push(`thread ${tid} in ${ns}`);
      }
      const status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
      const field = (f: string) => status.match(new RegExp(`^${f}:\\s*(.*)$`, 'm'))?.[1]?.trim();
      if (field('Seccomp') !== '0') bad.push(`thread ${tid} has seccomp mode ${field('Seccomp')}`);
      if (field('Uid')?.split(/\s+/)[0] !== '0') bad.push(`thread ${tid} runs as uid ${field('Uid')}`);
      if (field('NoNewPrivs') !== '0') bad.push(`thread ${tid} has no_new_privs`);
    } catch {
      /* the thread exited while we looked */
    }
  }
  return bad;
}

describe('node: runtime launcher threads', function () {
  this.timeout(90_000);
  let env: TestRuntime;
  before(async () => {
    env = await startTestRuntime();
  });
  after(async () => {
    await env.cleanup();
  });

  it('reuses a thread after each container launch and leaves none inside a container', async () => {
    const before = env.rt.launcherStats();
    const runs = 8;
    const recs = [];
    for (let i = 0; i < runs; i++) {
      recs.push(
        await runToCompletion(
          env.rt,
          sandbox(`reuse-${i}`, {
            restartPolicy: 'Never',
            containers: [
              sh('main', 'id -u; id -G; grep -E "^(Seccomp|NoNewPrivs|CapEff|CapBnd):" /proc/self/status', {
                securityContext: { runAsUser: 1000 + i, runAsGroup: 2000, supplementalGroups: [3000] },
              }),
            ],
          }),
        ),
      );
    }
    const after = env.rt.launcherStats();
    assert.ok(
      after.started - before.started <= after.max,
      `${runs} container launches started ${after.started - before.started} new threads (at most ${after.max} expected)`,
    );
    for (const [i, rec] of recs.entries()) {
      const out = logText(env.rt, rec, 'main');
      assert.match(out, new RegExp(`^${1000 + i}$`, 'm'), `container ${i} runs as its own uid: ${out}`);
      assert.match(out, /^2000 3000$/m, 'with its gid and supplementary groups');
      assert.match(out, /^Seccomp:\s+2$/m, 'under the seccomp filter');
      assert.match(out, /^NoNewPrivs:\s+1$/m, 'with no_new_privs');
      assert.match(out, /^CapEff:\s+0+$/m, 'with no effective capabilities (non-root)');
      assert.match(out, /^CapBnd:\s+0*a80425fb$/m, 'and the default bounding set');
    }
    assert.deepEqual(threadsOutsideHost(), []);
  });

  it('keeps the default capabilities for a root workload and none of them for the thread that started it', async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('root-caps', {
        restartPolicy: 'Never',
        containers: [sh('main', 'grep -E "^(CapEff|CapPrm|CapBnd|CapAmb):" /proc/self/status')],
      }),
    );
    const out = logText(env.rt, rec, 'main');
    for (const f of ['CapEff', 'CapPrm', 'CapBnd'])
      assert.match(out, new RegExp(`^${f}:\\s+0*a80425fb$`, 'm'), `${f} is Docker's default set: ${out}`);
    assert.match(out, /^CapAmb:\s+0+$/m);
    assert.deepEqual(threadsOutsideHost(), []);
  });

  it('reuses the thread of an exec too: sandpit-init exec takes on the container identity, not the thread', async () => {
    const rec = await env.rt.create(
      sandbox('exec-reuse', { containers: [sh('main', 'sleep 30', { securityContext: { runAsUser: 1234 } })] }),
    );
    await waitFor('container running', () => rec.containers[0]?.state?.running);
    const before = env.rt.launcherStats();
    for (let i = 0; i < 4; i++) {
      const s = await env.rt.exec(rec.id, 'main', [
        '/bin/sh',
        '-c',
        'id -u; grep -E "^(Seccomp|NoNewPrivs|CapEff):" /proc/self/status',
      ]);
      const chunks: Buffer[] = [];
      s.stdout.on('data', (c: Buffer) => chunks.push(c));
      const { exitCode } = await s.exited;
      await s.drained;
      assert.equal(exitCode, 0);
      const out = Buffer.concat(chunks).toString();
      assert.match(out, /^1234$/m, out);
      assert.match(out, /^Seccomp:\s+2$/m);
      assert.match(out, /^NoNewPrivs:\s+1$/m);
      assert.match(out, /^CapEff:\s+0+$/m);
    }
    const after = env.rt.launcherStats();
    assert.ok(
      after.started - before.started <= after.max,
      `4 execs started ${after.started - before.started} new threads (at most ${after.max} expected)`,
    );
    assert.deepEqual(threadsOutsideHost(), []);
    await env.rt.delete(rec.id);
  });
});
