import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SandpitError } from '../../lib/errors.js';
import { CgroupManager } from '../../node-agent/cgroups/manager.js';
import type { RuntimeConfig } from '../../node-agent/runtime/config.js';
import type { ExecSession, SandboxRecord, SandboxRuntime } from '../../node-agent/runtime/runtime.js';
import { mountsUnder } from '../../node-agent/runtime/runtime.js';
import { classifyCreateFailure } from '../../node-agent/status/failures.js';
import { readJson } from '../../node-agent/state/store.js';
import { libc } from '../../node-agent/sys/libc.js';
import { MNT_DETACH, mount, umount2 } from '../../node-agent/sys/mount.js';
import {
  cleanupRuntime,
  ended,
  idOf,
  logText,
  ROOTFS,
  sandbox,
  sh,
  startRuntime,
  testConfig,
  waitFor,
} from './runtime-env.js';

/*
 * Node tier: hostUsers: false. Each such sandbox runs in its own user
 * namespace (container 0..65535 = a private block of host ids), its image
 * layers are idmapped so root-owned files stay root-owned inside, files it
 * writes belong to its block on the host, and it survives an agent restart.
 */

const BLOCK = 65536;

/** Stdout of an exec, with its exit code. */
async function run(s: ExecSession): Promise<{ out: string; code: number }> {
  let out = '';
  s.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const { exitCode } = await s.exited;
  await ended(s.stdout);
  return { out, code: exitCode };
}

const nsType = libc.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']);
const NS_GET_NSTYPE = 0xb703;
const CLONE_NEWUSER = 0x10000000;
/** fds of this process that are user namespaces (the host's own included, were one open). */
const userNamespaceFds = () =>
  readdirSync('/proc/self/fd')
    .map(Number)
    .filter((fd) => nsType(fd, NS_GET_NSTYPE, 0) === CLONE_NEWUSER);

/** Uid line of /proc/PID/status on the host: real, effective, saved, fs. */
const hostUids = (pid: number) =>
  /^Uid:\s+(.*)$/m
    .exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]!
    .split(/\s+/)
    .map(Number);

describe('node: runtime user namespaces, hostUsers: false', function () {
  this.timeout(60_000);
  // A range of our own per run: concurrent runs of other engineers never see the same ids.
  const first = (1 << 30) + (process.pid % 4096) * 4 * BLOCK;
  let config: RuntimeConfig;
  let rt: SandboxRuntime | undefined;
  const devNullMtime = statSync('/dev/null').mtimeMs;

  before(() => {
    config = testConfig({ usernsRange: { first, count: 3 * BLOCK } });
  });
  after(async () => {
    await cleanupRuntime(rt, config);
  });

  it('runs container root as the first host id of a private block, with the image root-owned inside and its writes owned by the block', async () => {
    rt = await startRuntime(config);
    const script = [
      'echo "uid=$(id -u)"; echo "gid=$(id -g)"',
      'echo "map=$(tr -s " " < /proc/self/uid_map)"',
      'echo "image=$(stat -c %u:%g /bin/busybox /etc/passwd / | tr "\\n" " ")"',
      'echo "dev=$(stat -c %u /dev /dev/shm | tr "\\n" " ")"',
      'touch /created && echo appended >> /etc/passwd && echo "wrote=$?"',
      'touch /disk/f /mem/f && echo "volumes=$(stat -c %u /disk /mem | tr "\n" " ")"',
      // Root of the sandbox may bind a low port in its own network namespace...
      'httpd -p 127.0.0.1:80 && echo "bound80=yes"',
      // ...but owns nothing of the host: the host's /dev/null is bound in, and setting its times needs its owner.
      'touch -d 2000-01-01 /dev/null 2>/dev/null; echo "touch-host=$?"',
      'echo done; sleep 600',
    ].join('; ');
    const sb = sandbox('userns-a', {
      hostUsers: false,
      volumes: [
        { name: 'disk', emptyDir: {} },
        { name: 'mem', emptyDir: { medium: 'Memory' } },
      ],
      containers: [
        sh('main', script, {
          volumeMounts: [
            { name: 'disk', mountPath: '/disk' },
            { name: 'mem', mountPath: '/mem' },
          ],
        }),
      ],
    });
    const rec = await rt.create(sb);
    assert.deepEqual(rec.userns, { base: first, size: BLOCK });
    const out = await waitFor(
      'container output',
      () => /done/.test(logText(rt!, rec, 'main')) && logText(rt!, rec, 'main'),
    );
    const get = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(out)?.[1]?.trim();

    assert.equal(get('uid'), '0', out);
    assert.equal(get('gid'), '0');
    assert.equal(get('map'), `0 ${first} ${BLOCK}`);
    assert.equal(get('image'), '0:0 0:0 0:0', 'image files and the root show as root-owned inside');
    assert.equal(get('dev'), '0 0', '/dev and /dev/shm belong to the container root');
    assert.equal(get('wrote'), '0');
    assert.equal(get('volumes'), '0 0', 'emptyDir volumes belong to the container root');
    assert.equal(statSync(join(config.stateRoot, rec.id, 'volumes/disk/f')).uid, first);
    assert.equal(get('bound80'), 'yes', out);
    assert.notEqual(get('touch-host'), '0', 'setting the times of the host /dev/null was refused');
    assert.equal(statSync('/dev/null').mtimeMs, devNullMtime);

    // On the host the workload (and its shim) run as the block's first id.
    const workload = rt.workloadPid(rec.id, 'main')!;
    assert.deepEqual(hostUids(workload), [first, first, first, first]);
    assert.deepEqual(hostUids(rt.shimPid(rec.id, 'main')!), [first, first, first, first]);

    // What it created or copied up sits in its upper dir owned by the block; the image layer is untouched.
    const upper = join(config.stateRoot, rec.id, 'containers/main/upper');
    assert.equal(statSync(join(upper, 'created')).uid, first);
    assert.equal(statSync(join(upper, 'etc/passwd')).uid, first);
    assert.equal(statSync(join(ROOTFS, 'etc/passwd')).uid, 0);
    assert.ok(!readFileSync(join(ROOTFS, 'etc/passwd'), 'utf8').includes('appended'));

    // Exec joins the same user namespace, with the container's identity.
    const e = await run(
      await rt.exec(rec.id, 'main', [
        '/bin/sh',
        '-c',
        'id -u; tr -s " " < /proc/self/uid_map; grep -E "^CapEff" /proc/self/status',
      ]),
    );
    assert.equal(e.code, 0);
    assert.match(e.out, new RegExp(`^0\\n *0 ${first} ${BLOCK}\\nCapEff:\\s+00000000a80425fb\\n$`));
  });

  it('gives a second sandbox a disjoint block, keeps both across an agent restart and frees a block on delete', async () => {
    const a = rt!.list()[0]!;
    // This one also has a PID namespace per container: its PID 1 (sandpit-init pidns) stays in the node's user namespace.
    const b = await rt!.create(
      sandbox('userns-b', { hostUsers: false, shareProcessNamespace: false, containers: [sh('main', 'sleep 600')] }),
    );
    assert.equal(b.userns?.base, first + BLOCK);

    await rt!.close();
    rt = await startRuntime(config);
    const readopted = rt.get(b.id)!;
    assert.deepEqual(readopted.userns, { base: first + BLOCK, size: BLOCK });
    assert.ok(existsSync(join(config.stateRoot, b.id, 'userns')));
    const e = await run(
      await rt.exec(b.id, 'main', [
        '/bin/sh',
        '-c',
        'id -u; tr -s " " < /proc/self/uid_map; tr "\\0" " " < /proc/1/cmdline',
      ]),
    );
    assert.match(
      e.out,
      new RegExp(`^0\\n 0 ${first + BLOCK} ${BLOCK}\\nsandpit-init pidns `),
      "uid 0 in the block, in the container's own PID namespace",
    );
    const t = await run(await rt.exec(b.id, 'main', ['/bin/sh', '-c', 'tty; id -u; stat -c %u $(tty)'], { tty: true }));
    assert.match(t.out, /^\/dev\/pts\/\d+\r?\n0\r?\n0\r?\n$/, `a terminal owned by the exec's user: ${t.out}`);

    // Both blocks are held by re-adopted sandboxes: a third gets the last one, a fourth none.
    const c = await rt.create(
      sandbox('userns-c', {
        hostUsers: false,
        containers: [sh('main', 'sleep 600', { securityContext: { runAsUser: 1000, runAsGroup: 2000 } })],
      }),
    );
    assert.equal(c.userns?.base, first + 2 * BLOCK);
    // runAsUser and runAsGroup are ids inside the namespace: on the node they are offsets into the block.
    const cPid = await waitFor('workload of c', () => rt!.workloadPid(c.id, 'main'));
    assert.deepEqual(hostUids(cPid), Array(4).fill(first + 2 * BLOCK + 1000));
    assert.match(
      readFileSync(`/proc/${cPid}/status`, 'utf8'),
      new RegExp(`^Gid:\\s+${first + 2 * BLOCK + 2000}\\s`, 'm'),
    );
    const ct = await run(await rt.exec(c.id, 'main', ['/bin/sh', '-c', 'id -u; stat -c %u $(tty)'], { tty: true }));
    assert.match(ct.out, /^1000\r?\n1000\r?\n$/, `a runAsUser exec's terminal is its own: ${ct.out}`);
    const full = await rt.create(sandbox('userns-d', { hostUsers: false, containers: [sh('main', 'true')] })).then(
      () => undefined,
      (err: unknown) => err,
    );
    assert.ok(full instanceof SandpitError && /is in use/.test(full.message), String(full));
    assert.equal(
      (full as { reason?: string }).reason,
      'UserNamespaceRangeExhausted',
      'the agent API reports this reason',
    );

    await rt.delete(a.id);
    assert.deepEqual(mountsUnder(join(config.stateRoot, a.id)), [], 'the pinned namespace is unmounted');
    assert.ok(!rt.cgroups.listSandboxes().includes(a.id));
    const again = await rt.create(sandbox('userns-e', { hostUsers: false, containers: [sh('main', 'sleep 600')] }));
    assert.equal(again.userns?.base, first, 'the freed block is handed out again');
    for (const r of [b, c, again]) await rt.delete(r.id);
    assert.deepEqual(mountsUnder(config.stateRoot), []);
    // Nothing holds a user namespace any more: no pin (above), no fd of the agent
    // (an fd opened through a pin reads back as its path, so ask the kernel what each fd is).
    assert.deepEqual(userNamespaceFds(), [], 'the agent holds no user namespace fd');
  });

  it('fails the create with the reason, leaving nothing, when the image layers cannot be idmapped', async () => {
    // overlayfs itself cannot be idmapped: an image whose layer directory sits on one stands for such a filesystem.
    const dir = mkdtempSync(join(tmpdir(), `sandpit-test-userns-noidmap-${process.pid}-`));
    for (const d of ['upper', 'work', 'merged']) mkdirSync(join(dir, d));
    mount(
      'overlay',
      join(dir, 'merged'),
      'overlay',
      0,
      `lowerdir=${ROOTFS},upperdir=${join(dir, 'upper')},workdir=${join(dir, 'work')}`,
      { step: 'test overlay' },
    );
    try {
      const sb = sandbox('userns-noidmap', {
        hostUsers: false,
        containers: [{ name: 'main', image: `dir:${join(dir, 'merged')}`, command: ['/bin/true'] }],
      });
      const err = await rt!.create(sb).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof SandpitError, String(err));
      assert.match(err.message, /mount_setattr idmap .* failed: EINVAL/);
      assert.match(err.hint ?? '', /idmapped mounts/, 'the hint says what the node lacks');
      assert.equal(
        err.message.split('sandbox test/userns-noidmap:').length,
        2,
        `the sandbox is named once: ${err.message}`,
      );
      assert.equal(rt!.list().length, 0);
      assert.deepEqual(mountsUnder(config.stateRoot), []);
      assert.ok(!existsSync(join(config.stateRoot, idOf(sb))));
    } finally {
      umount2(join(dir, 'merged'), MNT_DETACH, { step: 'test overlay' });
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a privileged container with hostUsers: false and builds nothing', async () => {
    const sb = sandbox('userns-priv', {
      hostUsers: false,
      containers: [sh('main', 'true', { securityContext: { privileged: true, allowPrivilegeEscalation: true } })],
    });
    const err = await rt!.create(sb).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(
      err instanceof SandpitError && /privileged, which hostUsers: false does not allow/.test(err.message),
      String(err),
    );
    assert.deepEqual(
      [classifyCreateFailure(err).reason, classifyCreateFailure(err).container],
      ['CreateContainerConfigError', 'main'],
      'reported as kubelet reports a container that cannot be configured',
    );
    assert.equal(rt!.list().length, 0);
    assert.ok(!existsSync(join(config.stateRoot, idOf(sb))));
    assert.deepEqual(rt!.cgroups.listSandboxes(), []);
  });
});

describe('node: runtime user namespaces across an agent crash', function () {
  this.timeout(120_000);
  const AGENT = new URL('../../node-agent/standalone.js', import.meta.url).pathname;
  const parent = `sandpit-test-${process.pid}-userns-crash`;
  let stateRoot = '';
  let manifests = '';
  const range = `${(1 << 30) + ((process.pid % 4096) * 4 + 3) * BLOCK}:${BLOCK}`;
  const agents: ChildProcess[] = [];
  const startAgent = (args: string[], env: Record<string, string> = {}) => {
    const child = spawn(
      process.execPath,
      [
        AGENT,
        ...args,
        '--state-root',
        stateRoot,
        '--cgroup-parent',
        parent,
        '--poll-ms',
        '50',
        '--userns-range',
        range,
      ],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: { ...process.env, SANDPIT_LOG_LEVEL: 'fatal', ...env },
      },
    );
    agents.push(child);
    return child;
  };
  const exited = (c: ChildProcess) =>
    new Promise<void>((r) => (c.exitCode !== null || c.signalCode ? r() : c.once('exit', () => r())));
  const records = () =>
    readdirSync(stateRoot)
      .filter((d) => /^[0-9a-f]{12}$/.test(d))
      .map((d) => readJson<SandboxRecord>(join(stateRoot, d, 'sandbox.json')))
      .filter((r): r is SandboxRecord => !!r);

  before(() => {
    stateRoot = mkdtempSync(join(tmpdir(), `sandpit-test-${process.pid}-userns-crash-`));
    manifests = `${stateRoot}-manifests`;
    mkdirSync(manifests, { recursive: true });
  });
  after(async () => {
    for (const a of agents) {
      if (a.exitCode === null && !a.signalCode) a.kill('SIGTERM');
      await exited(a);
    }
    const cg = CgroupManager.detect(parent);
    const left = cg.listSandboxes();
    await cg.removeParent({ step: 'test cleanup' });
    const mounts = mountsUnder(stateRoot);
    rmSync(manifests, { recursive: true, force: true });
    if (!mounts.length) rmSync(stateRoot, { recursive: true, force: true });
    assert.deepEqual({ left, mounts }, { left: [], mounts: [] });
  });

  for (const fault of ['after-userns', 'after-containers']) {
    it(`leaves nothing behind, user namespace pin included, when the agent dies while creating (${fault})`, async () => {
      const file = join(manifests, 'crash.yaml');
      writeFileSync(
        file,
        [
          'apiVersion: sandpit.dev/v1alpha1',
          'kind: Sandbox',
          'metadata: {name: crashy, namespace: default}',
          'spec:',
          '  hostUsers: false',
          '  restartPolicy: Never',
          '  terminationGracePeriodSeconds: 1',
          '  network: {mode: None}',
          '  containers:',
          `  - {name: main, image: "dir:${ROOTFS}", command: [/bin/sleep, "60"]}`,
          '',
        ].join('\n'),
      );
      const crashing = startAgent(['run', '-f', file], { SANDPIT_FAULT: fault });
      await exited(crashing);
      assert.equal(crashing.signalCode, 'SIGKILL');
      const half = records()[0];
      assert.equal(half?.phase, 'Creating');
      assert.ok(half.userns, 'the block was recorded before the namespace was made');
      assert.ok(
        mountsUnder(stateRoot).includes(join(stateRoot, half.id, 'userns')),
        'the namespace was pinned when the agent died',
      );
      rmSync(file);

      const agent = startAgent(['serve', '--manifests', manifests]);
      await waitFor('recovery', () => records().length === 0 && mountsUnder(stateRoot).length === 0);
      await waitFor('cgroups removed', () => CgroupManager.detect(parent).listSandboxes().length === 0);
      agent.kill('SIGTERM');
      await exited(agent);
    });
  }
});
