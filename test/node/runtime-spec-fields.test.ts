import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SandboxSupervisor } from '../../node-agent/runtime/supervisor.js';
import { logText, runToCompletion, sandbox, sh, startTestRuntime, waitFor, type TestRuntime } from './runtime-env.js';

/*
 * Node tier (root, real kernel): Sandbox spec fields whose effect nothing else
 * in the suite set and checked. Each case sets the field through a Sandbox
 * object, as the agent API receives it, and reads the effect where a user
 * would find it: inside the container, or in the kernel's own files.
 * test/spec-coverage.ts names these cases for the spec-coverage guard.
 */

/** A cgroup file of one container, as the kernel shows it on the node (v1 controller dir, or the unified one). */
function containerCgroupFile(
  rt: SandboxSupervisor,
  parent: string,
  id: string,
  container: string,
  controller: 'memory' | 'cpu',
  file: { v1: string; v2: string },
): string {
  const v1 = rt.cgroups.layout.v1[controller];
  const root = v1 ?? rt.cgroups.layout.unified;
  assert.ok(root, `the node has a ${controller} controller`);
  return readFileSync(join(root, parent, id, `c-${container}`, v1 ? file.v1 : file.v2), 'utf8').trim();
}

const statusField = (out: string, key: string) => new RegExp(`^${key}:\\s+(\\S+)$`, 'm').exec(out)?.[1];

describe('node: runtime spec fields', function () {
  this.timeout(60_000);
  let env: TestRuntime;
  before(async () => {
    env = await startTestRuntime();
  });
  after(async () => {
    await env.cleanup();
  });

  it("writes a container's resources.limits cpu and memory into its own cgroup", async () => {
    const rec = await env.rt.create(
      sandbox('limits', {
        resources: { cpu: '500m', memory: '128Mi' },
        containers: [
          sh('main', 'sleep 30', {
            resources: { limits: { cpu: '250m', memory: '64Mi' }, requests: { cpu: '100m', memory: '32Mi' } },
          }),
          sh('free', 'sleep 30'),
        ],
      }),
    );
    try {
      const parent = env.config.cgroupParent;
      const mem = containerCgroupFile(env.rt, parent, rec.id, 'main', 'memory', {
        v1: 'memory.limit_in_bytes',
        v2: 'memory.max',
      });
      assert.equal(mem, String(64 * 1024 * 1024));
      const cpu = containerCgroupFile(env.rt, parent, rec.id, 'main', 'cpu', { v1: 'cpu.cfs_quota_us', v2: 'cpu.max' });
      const period = env.rt.cgroups.layout.v1.cpu
        ? Number(containerCgroupFile(env.rt, parent, rec.id, 'main', 'cpu', { v1: 'cpu.cfs_period_us', v2: 'cpu.max' }))
        : Number(cpu.split(' ')[1]);
      assert.equal(
        Number(cpu.split(' ')[0]) / period,
        0.25,
        `quota ${cpu} over period ${period} is a quarter of a CPU`,
      );
      // The sandbox's own resources bound it as a whole, in its own cgroup.
      const sbxRoot = (c: 'memory' | 'cpu') =>
        join(env.rt.cgroups.layout.v1[c] ?? env.rt.cgroups.layout.unified!, parent, rec.id);
      const v1 = !!env.rt.cgroups.layout.v1.memory;
      assert.equal(
        readFileSync(join(sbxRoot('memory'), v1 ? 'memory.limit_in_bytes' : 'memory.max'), 'utf8').trim(),
        String(128 * 1024 * 1024),
      );
      const sbxCpu = env.rt.cgroups.layout.v1.cpu
        ? Number(readFileSync(join(sbxRoot('cpu'), 'cpu.cfs_quota_us'), 'utf8')) /
          Number(readFileSync(join(sbxRoot('cpu'), 'cpu.cfs_period_us'), 'utf8'))
        : (([q, p]) => Number(q) / Number(p))(
            readFileSync(join(sbxRoot('cpu'), 'cpu.max'), 'utf8')
              .trim()
              .split(' '),
          );
      assert.equal(sbxCpu, 0.5);
      // A container without limits is bounded only by the sandbox.
      const freeMem = containerCgroupFile(env.rt, parent, rec.id, 'free', 'memory', {
        v1: 'memory.limit_in_bytes',
        v2: 'memory.max',
      });
      assert.notEqual(freeMem, String(64 * 1024 * 1024));
    } finally {
      await env.rt.delete(rec.id);
    }
  });

  it('leaves no_new_privs off for allowPrivilegeEscalation: true, and on by default', async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('nnp', {
        restartPolicy: 'Never',
        containers: [
          sh('escalates', 'grep NoNewPrivs /proc/self/status', { securityContext: { allowPrivilegeEscalation: true } }),
          sh('default', 'grep NoNewPrivs /proc/self/status'),
        ],
      }),
    );
    assert.equal(statusField(logText(env.rt, rec, 'escalates'), 'NoNewPrivs'), '0');
    assert.equal(statusField(logText(env.rt, rec, 'default'), 'NoNewPrivs'), '1');
  });

  it('drops the capabilities named in capabilities.drop, and every one for drop: [ALL]', async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('drop', {
        restartPolicy: 'Never',
        containers: [
          sh(
            'some',
            'grep CapEff /proc/self/status; ping -c1 -W1 127.0.0.1 >/dev/null 2>&1 && echo PING-OK || echo PING-REFUSED',
            { securityContext: { capabilities: { drop: ['NET_RAW', 'CAP_CHOWN'] } } },
          ),
          sh('all', 'grep -E "^Cap(Eff|Bnd)" /proc/self/status; chown 1 /tmp && echo CHOWN-OK || echo CHOWN-REFUSED', {
            securityContext: { capabilities: { drop: ['ALL'] } },
          }),
        ],
      }),
    );
    const some = logText(env.rt, rec, 'some');
    const eff = BigInt(`0x${statusField(some, 'CapEff')}`);
    assert.equal(eff & (1n << 13n), 0n, 'CAP_NET_RAW (13) is dropped');
    assert.equal(eff & 1n, 0n, 'CAP_CHOWN (0) is dropped');
    assert.notEqual(eff & (1n << 10n), 0n, 'CAP_NET_BIND_SERVICE (10), not named, is kept');
    assert.match(some, /^PING-REFUSED$/m, 'a raw socket is refused without NET_RAW');
    const all = logText(env.rt, rec, 'all');
    assert.equal(statusField(all, 'CapEff'), '0000000000000000');
    assert.equal(statusField(all, 'CapBnd'), '0000000000000000');
    assert.match(all, /^CHOWN-REFUSED$/m);
  });

  it('shares an emptyDir between two containers, read-only where the mount says readOnly', async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('shared', {
        restartPolicy: 'Never',
        volumes: [{ name: 'data', emptyDir: {} }],
        containers: [
          sh('writer', 'echo from-writer > /data/note; sleep 3', {
            volumeMounts: [{ name: 'data', mountPath: '/data' }],
          }),
          sh(
            'reader',
            'for i in $(seq 50); do [ -s /in/note ] && break; sleep 0.05; done; cat /in/note; touch /in/other 2>&1 && echo WRITE-OK || echo WRITE-REFUSED; grep " /in " /proc/self/mounts',
            { volumeMounts: [{ name: 'data', mountPath: '/in', readOnly: true }] },
          ),
        ],
      }),
    );
    const out = logText(env.rt, rec, 'reader');
    assert.match(out, /^from-writer$/m, 'the reader sees what the writer wrote');
    assert.match(out, /Read-only file system/);
    assert.match(out, /^WRITE-REFUSED$/m);
    assert.match(out, / \/in \S+ ro[,\s]/, 'the mount is read-only in the kernel mount table');
  });

  it("puts a disk emptyDir on the node's disk, bounds one with a sizeLimit, and a Memory one on tmpfs", async () => {
    const probe = (dir: string) =>
      `echo "${dir} $(stat -f -c %T ${dir})"; dd if=/dev/zero of=${dir}/big bs=1k count=3072 2>/dev/null && echo "${dir} took-3Mi" || echo "${dir} full"`;
    const rec = await runToCompletion(
      env.rt,
      sandbox('emptydirs', {
        restartPolicy: 'Never',
        volumes: [
          { name: 'disk', emptyDir: {} },
          { name: 'sized', emptyDir: { sizeLimit: '2Mi' } },
          { name: 'mem', emptyDir: { medium: 'Memory' } },
        ],
        containers: [
          sh('main', [probe('/disk'), probe('/sized'), probe('/mem')].join('; '), {
            volumeMounts: [
              { name: 'disk', mountPath: '/disk' },
              { name: 'sized', mountPath: '/sized' },
              { name: 'mem', mountPath: '/mem' },
            ],
          }),
        ],
      }),
    );
    const out = logText(env.rt, rec, 'main');
    assert.doesNotMatch(out, /^\/disk tmpfs$/m, 'a disk emptyDir without a limit is not memory');
    assert.match(out, /^\/disk took-3Mi$/m);
    assert.match(out, /^\/sized full$/m, 'the sizeLimit bounds it');
    assert.match(out, /^\/mem tmpfs$/m);
    assert.match(out, /^\/mem took-3Mi$/m);
  });

  it("names the sandbox's host after the Sandbox when spec.hostname is unset", async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('named-after-me', { restartPolicy: 'Never', containers: [sh('main', 'hostname; cat /etc/hostname')] }),
    );
    assert.deepEqual(logText(env.rt, rec, 'main').split('\n'), ['named-after-me', 'named-after-me']);
  });

  it("writes network.dns nameservers, searches and ndots into the container's /etc/resolv.conf", async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('dns', {
        restartPolicy: 'Never',
        network: { mode: 'None', dns: { nameservers: ['192.0.2.53'], searches: ['svc.example', 'example'], ndots: 2 } },
        containers: [sh('main', 'cat /etc/resolv.conf')],
      }),
    );
    const out = logText(env.rt, rec, 'main');
    assert.match(out, /^nameserver 192\.0\.2\.53$/m);
    assert.match(out, /^search svc\.example example$/m);
    assert.match(out, /^options ndots:2$/m);
  });

  it('gives a stopping container terminationGracePeriodSeconds from the spec before SIGKILL', async () => {
    // The TERM handler needs about a second to finish: a 5 s grace lets it exit 0, a 0 s grace kills it.
    const script = 'trap "sleep 1; echo cleaned-up; exit 0" TERM; echo ready; while :; do sleep 0.1; done';
    const patient = await env.rt.create(
      sandbox('grace-long', { terminationGracePeriodSeconds: 5, containers: [sh('main', script)] }),
    );
    const hasty = await env.rt.create(
      sandbox('grace-none', { terminationGracePeriodSeconds: 0, containers: [sh('main', script)] }),
    );
    try {
      for (const rec of [patient, hasty])
        await waitFor('the TERM handler to be installed', () => /ready/.test(logText(env.rt, rec, 'main')));
      await Promise.all([env.rt.stop(patient.id), env.rt.stop(hasty.id)]);
      await waitFor(
        'both containers to be recorded as ended',
        () => patient.containers[0]!.state?.terminated && hasty.containers[0]!.state?.terminated,
      );
      assert.equal(
        patient.containers[0]!.state?.terminated?.exitCode,
        0,
        'the handler finished within the grace period',
      );
      assert.match(logText(env.rt, patient, 'main'), /^cleaned-up$/m);
      assert.equal(hasty.containers[0]!.state?.terminated?.exitCode, 137, 'killed by SIGKILL at once');
      assert.doesNotMatch(logText(env.rt, hasty, 'main'), /cleaned-up/);
    } finally {
      await env.rt.delete(patient.id);
      await env.rt.delete(hasty.id);
    }
  });
});

describe('node: runtime spec fields on a node that allows unconfined containers', function () {
  this.timeout(60_000);
  let env: TestRuntime;
  before(async () => {
    env = await startTestRuntime({ allowPrivileged: true });
  });
  after(async () => {
    await env.cleanup();
  });

  it('runs seccompProfile: Unconfined without a filter, and RuntimeDefault with one', async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('unconfined', {
        restartPolicy: 'Never',
        containers: [
          sh('unconfined', 'grep -E "^(Seccomp|NoNewPrivs)" /proc/self/status', {
            securityContext: { seccompProfile: { type: 'Unconfined' } },
          }),
          sh('confined', 'grep -E "^(Seccomp|NoNewPrivs)" /proc/self/status', {
            securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
          }),
        ],
      }),
    );
    assert.equal(statusField(logText(env.rt, rec, 'unconfined'), 'Seccomp'), '0', 'no filter');
    assert.equal(statusField(logText(env.rt, rec, 'confined'), 'Seccomp'), '2', 'filter mode');
  });

  it('runs a privileged container with every capability, no filter and no_new_privs off', async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('privileged', {
        restartPolicy: 'Never',
        containers: [
          sh('main', 'grep -E "^(CapEff|CapBnd|Seccomp|NoNewPrivs)" /proc/self/status', {
            securityContext: { privileged: true },
          }),
        ],
      }),
    );
    const out = logText(env.rt, rec, 'main');
    assert.equal(
      rec.containers[0]!.state?.terminated?.exitCode,
      0,
      `${JSON.stringify(rec.containers[0]!.state)} ${out}`,
    );
    const all = readFileSync('/proc/self/status', 'utf8').match(/^CapBnd:\s+(\S+)$/m)![1];
    assert.equal(statusField(out, 'CapEff'), all, 'every capability the node has');
    assert.equal(statusField(out, 'CapBnd'), all);
    assert.equal(statusField(out, 'Seccomp'), '0');
    assert.equal(statusField(out, 'NoNewPrivs'), '0');
  });

  it('reports what a container wrote to its terminationMessagePath (default /dev/termination-log, or its own path as a non-root user) as terminated.message', async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('termination-file', {
        restartPolicy: 'Never',
        containers: [
          sh('default', 'echo "disk full on /data" > /dev/termination-log; echo noise; exit 3'),
          sh('ownpath', 'printf "done: 42 rows" > /tmp/reports/last; exit 0', {
            terminationMessagePath: '/tmp/reports/last',
            securityContext: { runAsUser: 1000, runAsGroup: 1000 },
          }),
          sh('silent', 'echo only output; exit 4'),
        ],
      }),
    );
    const terminated = (name: string) => rec.containers.find((c) => c.name === name)!.state.terminated!;
    assert.equal(terminated('default').exitCode, 3);
    assert.equal(terminated('default').message, 'disk full on /data\n');
    assert.equal(terminated('ownpath').message, 'done: 42 rows');
    assert.equal(terminated('silent').message, undefined, 'policy File: output is not a message');
    await env.rt.delete(rec.id);
  });

  it('falls back to the end of the output of a failed run with terminationMessagePolicy FallbackToLogsOnError, and not for one that succeeded', async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('termination-fallback', {
        restartPolicy: 'Never',
        containers: [
          sh('fails', 'for i in $(seq 1 100); do echo line $i; done; echo oops >&2; exit 1', {
            terminationMessagePolicy: 'FallbackToLogsOnError',
          }),
          sh('succeeds', 'echo all good; exit 0', { terminationMessagePolicy: 'FallbackToLogsOnError' }),
          sh('writes', 'echo "the file wins" > /dev/termination-log; echo output; exit 1', {
            terminationMessagePolicy: 'FallbackToLogsOnError',
          }),
        ],
      }),
    );
    const terminated = (name: string) => rec.containers.find((c) => c.name === name)!.state.terminated!;
    const message = terminated('fails').message!;
    const lines = message.trimEnd().split('\n');
    assert.equal(lines.length, 80, 'the last 80 lines');
    assert.equal(lines[0], 'line 22');
    assert.equal(lines.at(-1), 'oops', 'stderr too, in order');
    assert.equal(terminated('succeeds').message, undefined);
    assert.equal(terminated('writes').message, 'the file wins\n');
    await env.rt.delete(rec.id);
  });
});
