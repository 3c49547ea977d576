import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mountsUnder } from '../../node-agent/runtime/mounts.js';
import { ROOTFS, sandbox, startTestRuntime, type TestRuntime } from './runtime-env.js';

/* Node tier: many create/delete cycles leave no mount, cgroup, process or namespace behind. */

const NS = ['net', 'pid', 'ipc', 'uts', 'mnt', 'cgroup'];

/** Parent PID of every process on the host right now. */
function parents(): Map<number, number> {
  const ppid = new Map<number, number>();
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      ppid.set(Number(p), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  return ppid;
}

/**
 * Namespace identities held by this process's descendants right now, each
 * with a description of its holders. Anything a sandbox of ours leaves
 * running descends from us (PID 1 and the shims are children of the launcher
 * threads); other runtimes on the machine are not counted, since the kernel
 * hands a freed namespace's inode number to the next namespace made anywhere.
 */
function liveNamespaces(): Map<string, string[]> {
  const ppid = parents();
  const ours = (pid: number) => {
    for (let p = ppid.get(pid); p !== undefined && p > 1; p = ppid.get(p)) if (p === process.pid) return true;
    return false;
  };
  const live = new Map<string, string[]>();
  for (const pid of ppid.keys()) {
    if (!ours(pid)) continue;
    for (const k of NS) {
      try {
        const ns = readlinkSync(`/proc/${pid}/ns/${k}`);
        const who = `pid ${pid} (${readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ').slice(1, 3).join(' ')}) ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()}`;
        live.set(ns, [...(live.get(ns) ?? []), who]);
      } catch {
        /* gone or a kernel thread */
      }
    }
  }
  return live;
}

describe('node: runtime churn', function () {
  this.timeout(300_000);
  let env: TestRuntime;
  before(async () => {
    env = await startTestRuntime();
  });
  after(async () => {
    await env.cleanup();
  });

  it('200 create/delete cycles leave zero mounts, cgroups, processes and namespaces', async () => {
    const created = new Set<string>();
    const pids: number[] = [];
    for (let i = 0; i < 200; i++) {
      const rec = await env.rt.create(
        sandbox(`churn-${i}`, {
          restartPolicy: 'Never',
          containers: [{ name: 'main', image: `dir:${ROOTFS}`, command: i % 2 ? ['/bin/true'] : ['/bin/sleep', '60'] }],
        }),
      );
      pids.push(rec.pid1!.pid);
      for (const k of NS) created.add(readlinkSync(`/proc/${rec.pid1!.pid}/ns/${k}`));
      try {
        created.add(readlinkSync(`/proc/${rec.containers[0]!.pid}/ns/mnt`)); // the container's own mount namespace
      } catch {
        /* /bin/true may be done already */
      }
      await env.rt.delete(rec.id);
    }
    assert.deepEqual(env.rt.list(), []);
    assert.deepEqual(mountsUnder(env.config.stateRoot), []);
    assert.deepEqual(env.rt.cgroups.listSandboxes(), []);
    assert.deepEqual(
      readdirSync(env.config.stateRoot).filter((d) => !d.startsWith('.')),
      [],
    );
    const survivors = pids.filter((p) => {
      try {
        return readlinkSync(`/proc/${p}/exe`).endsWith('/sandpit-init');
      } catch {
        return false;
      }
    });
    assert.deepEqual(survivors, [], 'no sandbox PID 1 survives');
    // Stop the runtime first: its warm PID 1s hold fresh namespaces, and the
    // kernel reuses the inode numbers of freed ones at once (a false match).
    await env.rt.close();
    const live = liveNamespaces();
    // Named with their holders (command, state): a zombie still pins its PID namespace.
    const leaked = [...created].filter((n) => live.has(n)).map((n) => `${n} held by ${live.get(n)!.join('; ')}`);
    assert.deepEqual(leaked, [], 'no namespace of a deleted sandbox is still held by a process');
  });
});
