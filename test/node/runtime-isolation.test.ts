import assert from 'node:assert/strict';
import { readFileSync, readlinkSync } from 'node:fs';
import { logText, ROOTFS, runToCompletion, sandbox, sh, startTestRuntime, type TestRuntime } from './runtime-env.js';

/* Node tier (root, real kernel): what a container sees of itself and of the host. */

describe('node: runtime isolation', function () {
  this.timeout(60_000);
  let env: TestRuntime;
  before(async () => {
    env = await startTestRuntime({ oomScoreAdj: 250 });
  });
  after(async () => {
    await env.cleanup();
  });

  it('runs /bin/true and records exit code 0', async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('true', {
        restartPolicy: 'Never',
        containers: [{ name: 'main', image: `dir:${ROOTFS}`, command: ['/bin/true'] }],
      }),
    );
    assert.equal(rec.containers[0]!.state?.terminated?.exitCode, 0);
    assert.equal(rec.containers[0]!.state?.terminated?.reason, 'Completed');
    assert.equal(rec.phase, 'Succeeded');
  });

  it('gives the sandbox its own PID 1 and hostname, and hides host processes', async () => {
    const script = 'echo "pid=$$$$"; hostname; ps -o pid,comm | tail -n +2; cat /proc/1/cmdline | tr "\\0" " "; echo';
    const rec = await runToCompletion(
      env.rt,
      sandbox('ident', { restartPolicy: 'Never', hostname: 'sbx-ident', containers: [sh('main', script)] }),
    );
    const out = logText(env.rt, rec, 'main');
    assert.match(out, /^sbx-ident$/m);
    assert.match(out, /^sandpit-init (init|warm) /m, 'PID 1 is sandpit-init');
    const pids = out
      .split('\n')
      .filter((l) => /^\s*\d+ /.test(l))
      .map((l) => Number(l.trim().split(/\s+/)[0]));
    assert.ok(pids.length >= 3 && pids.every((p) => p < 20), `only sandbox processes are visible: ${pids.join(',')}`);
    assert.ok(!out.includes('node'), 'the agent (node) is not visible');
    assert.notEqual(readFileSync('/proc/sys/kernel/hostname', 'utf8').trim(), 'sbx-ident');
  });

  it('gives each container its own PID namespace and /proc when shareProcessNamespace is false', async () => {
    const show = (tag: string) =>
      `echo "${tag}-pidns=$(readlink /proc/self/ns/pid)"; echo "${tag}-init=$(tr "\\0" " " < /proc/1/cmdline)"; echo "${tag}-ps=$(ps -o comm | tail -n +2 | tr "\\n" " ")"; for f in /proc/keys /proc/timer_list /proc/interrupts /proc/sched_debug; do [ -e $f ] && echo "${tag}-masked $f $(wc -c < $f)"; done; true`;
    const rec = await runToCompletion(
      env.rt,
      sandbox('ownpid', {
        restartPolicy: 'Never',
        shareProcessNamespace: false,
        containers: [sh('a', `${show('a')}; sleep 2`), sh('b', `sleep 0.5; ${show('b')}`)],
      }),
    );
    const a = logText(env.rt, rec, 'a');
    const b = logText(env.rt, rec, 'b');
    const field = (out: string, key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(out)?.[1];
    assert.ok(field(a, 'a-pidns') && field(b, 'b-pidns'), `${a}\n${b}`);
    assert.notEqual(field(a, 'a-pidns'), field(b, 'b-pidns'), 'two PID namespaces');
    assert.notEqual(field(b, 'b-pidns'), readlinkSync(`/proc/${rec.pid1!.pid}/ns/pid`).trim(), 'not the sandbox one');
    assert.match(field(b, 'b-init') ?? '', /^sandpit-init pidns /, "PID 1 is the container's own");
    assert.doesNotMatch(field(b, 'b-ps') ?? '', /sleep/, 'container a (sleeping meanwhile) is not visible from b');
    const masked = [...b.matchAll(/^b-masked (\S+) (\d+)$/gm)];
    assert.ok(masked.length > 0, `some masked /proc paths exist: ${b}`);
    for (const m of masked) assert.equal(m[2], '0', `${m[1]} is masked in the new /proc too`);
    assert.equal(
      rec.containers.every((c) => c.state?.terminated?.exitCode === 0),
      true,
    );
  });

  it('applies the default capabilities, no_new_privs and a seccomp filter', async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('caps', {
        restartPolicy: 'Never',
        containers: [sh('main', 'grep -E "^(Cap|NoNewPrivs|Seccomp)" /proc/self/status')],
      }),
    );
    const out = logText(env.rt, rec, 'main');
    // Docker's 14: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
    for (const set of ['CapPrm', 'CapEff', 'CapBnd']) assert.match(out, new RegExp(`${set}:\\s+00000000a80425fb`));
    assert.match(out, /CapInh:\s+0000000000000000/);
    assert.match(out, /CapAmb:\s+0000000000000000/);
    assert.match(out, /NoNewPrivs:\s+1/);
    assert.match(out, /Seccomp:\s+2/);
  });

  it("sets RLIMIT_NOFILE (1024 soft, hard capped at the agent's) and oom_score_adj from the agent configuration", async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('limits', {
        restartPolicy: 'Never',
        containers: [
          sh(
            'main',
            'grep "Max open files" /proc/self/limits; echo "oom=$(cat /proc/self/oom_score_adj)"; echo "soft=$(ulimit -n) hard=$(ulimit -Hn)"',
            { securityContext: { runAsUser: 1000 } },
          ),
        ],
      }),
    );
    const out = logText(env.rt, rec, 'main');
    const agentHard = Number(/^Max open files\s+\d+\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))![1]);
    assert.match(out, new RegExp(`^Max open files\\s+1024\\s+${Math.min(agentHard, 524288)}\\s+files`, 'm'));
    assert.match(out, new RegExp(`^soft=1024 hard=${Math.min(agentHard, 524288)}$`, 'm'));
    assert.match(out, /^oom=250$/m);
  });

  it('refuses mount, unshare and keyctl-class syscalls inside the container', async () => {
    const script =
      'mkdir -p /tmp/m; mount -t tmpfs x /tmp/m && echo MOUNTED; unshare -n true && echo UNSHARED; nsenter -t 1 -n true && echo ENTERED; echo done';
    const rec = await runToCompletion(
      env.rt,
      sandbox('seccomp', { restartPolicy: 'Never', containers: [sh('main', script)] }),
    );
    const out = logText(env.rt, rec, 'main');
    assert.match(out, /done/);
    assert.doesNotMatch(out, /MOUNTED|UNSHARED|ENTERED/);
    assert.match(out, /Operation not permitted/);
  });

  it('masks and write-protects /proc and /sys paths like containerd', async () => {
    const script = [
      'for f in /proc/kcore /proc/keys /proc/timer_list /proc/interrupts; do [ -e $f ] && echo "$f size=$(wc -c < $f)"; done',
      'ls /proc/acpi | wc -l | sed "s/^/acpi entries=/"; ls /sys/firmware | wc -l | sed "s/^/firmware entries=/"',
      'echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo PROCSYS-WRITABLE',
      'echo x > /proc/sysrq-trigger 2>/dev/null && echo SYSRQ-WRITABLE',
      'touch /sys/x 2>/dev/null && echo SYS-WRITABLE',
      'grep " /proc/sys " /proc/self/mountinfo | grep -q " ro," && echo procsys-ro',
      'echo end',
    ].join('; ');
    const rec = await runToCompletion(
      env.rt,
      sandbox('masks', { restartPolicy: 'Never', containers: [sh('main', script)] }),
    );
    const out = logText(env.rt, rec, 'main');
    for (const m of out.matchAll(/^(\/proc\/\S+) size=(\d+)/gm)) assert.equal(m[2], '0', `${m[1]} is masked`);
    assert.match(out, /acpi entries=0/);
    assert.match(out, /firmware entries=0/);
    assert.match(out, /procsys-ro/);
    assert.doesNotMatch(out, /WRITABLE/);
    assert.match(out, /end/);
  });

  it('builds /dev from the standard nodes only (and the termination log), with /dev/pts and a sized /dev/shm', async () => {
    const script =
      'ls /dev | sort | tr "\\n" " "; echo; df -k /dev/shm | tail -1; mknod /dev/sdx b 8 0 && (head -c1 /dev/sdx >/dev/null 2>&1 && echo DEVICE-READABLE || echo device-unusable)';
    const rec = await runToCompletion(
      env.rt,
      sandbox('dev', { restartPolicy: 'Never', containers: [sh('main', script)] }),
    );
    const out = logText(env.rt, rec, 'main');
    // The standard nodes, and the run's termination-log file bound in as a Pod's is (terminationMessagePath).
    assert.match(out, /fd full mqueue null ptmx pts random shm stderr stdin stdout termination-log tty urandom zero/);
    assert.match(out, /shm\s+65536 /);
    assert.doesNotMatch(out, /DEVICE-READABLE/);
  });

  it('runs as runAsUser/runAsGroup with supplementary groups and no capabilities', async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('user', {
        restartPolicy: 'Never',
        containers: [
          sh('main', 'id; grep -E "^Cap(Eff|Prm)" /proc/self/status', {
            securityContext: { runAsUser: 1000, runAsGroup: 1000, supplementalGroups: [5, 65534] },
          }),
        ],
      }),
    );
    const out = logText(env.rt, rec, 'main');
    assert.match(out, /uid=1000\(app\) gid=1000\(app\) groups=5\(tty\),65534\(nogroup\)/);
    assert.match(out, /CapEff:\s+0000000000000000/);
    assert.match(out, /CapPrm:\s+0000000000000000/);
  });

  it('honours readOnlyRootFilesystem and keeps emptyDir volumes writable', async () => {
    const rec = await runToCompletion(
      env.rt,
      sandbox('ro', {
        restartPolicy: 'Never',
        volumes: [{ name: 'scratch', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } }],
        containers: [
          sh(
            'main',
            'touch /file 2>/dev/null && echo ROOT-WRITABLE; echo ok > /scratch/f && cat /scratch/f; dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>/dev/null || echo volume-full',
            {
              securityContext: { readOnlyRootFilesystem: true },
              volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }],
            },
          ),
        ],
      }),
    );
    const out = logText(env.rt, rec, 'main');
    assert.doesNotMatch(out, /ROOT-WRITABLE/);
    assert.match(out, /^ok$/m);
    assert.match(out, /volume-full/);
  });
});
