import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SandpitError } from '../../lib/errors.js';
import { readImageFile } from '../../node-agent/runtime/image-files.js';
import { RuntimeService } from '../../node-agent/runtime/service.js';
import { mountsUnder } from '../../node-agent/runtime/mounts.js';
import type { SandboxSupervisor } from '../../node-agent/runtime/supervisor.js';
import { deriveConditions } from '../../node-agent/status/derive.js';
import { desiredStatusPatch } from '../../protocol/status-patch.js';
import * as fs from '../../node-agent/sys/fs.js';
import { lsetxattr } from '../support/xattr.js';
import { buildBusyboxRootfs } from '../fixtures/busybox-rootfs.js';
import {
  applied,
  cleanupRuntime,
  logText,
  runToCompletion,
  sandbox,
  SCALE,
  sh,
  startRuntime,
  startTestRuntime,
  testConfig,
  waitFor,
  type TestRuntime,
} from './runtime-env.js';

/*
 * Node tier: three spec fields the runtime used to accept and ignore. Image
 * users by name (resolved in the image's own /etc/passwd and /etc/group,
 * never through a link out of it), spec.activeDeadlineSeconds (also across an
 * agent restart) and a terminal for a container's main process.
 */

const WORK = mkdtempSync(join(tmpdir(), `sandpit-test-udt-${process.pid}-`));

/** A busybox image root with our own passwd/group and one `dir:` image per USER (a link to it with its own config). */
function userImages(): (user: string) => string {
  const root = buildBusyboxRootfs(join(WORK, 'users-root'));
  writeFileSync(
    join(root, 'etc/passwd'),
    [
      'root:x:0:0:root:/root:/bin/sh',
      'www-data:x:33:33::/var/www:/bin/sh',
      'app:x:1000:1000::/home/app:/bin/sh',
      'nobody:x:65534:65534::/:/bin/false',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(root, 'etc/group'),
    [
      'root:x:0:',
      'tty:x:5:',
      'audio:x:29:app,www-data',
      'www-data:x:33:www-data',
      'staff:x:50:app',
      'app:x:1000:',
      'nogroup:x:65534:',
      '',
    ].join('\n'),
  );
  let n = 0;
  return (user: string) => {
    const dir = join(WORK, `img-${n++}`);
    symlinkSync(root, dir);
    writeFileSync(`${dir}.config.json`, JSON.stringify({ user }));
    return `dir:${dir}`;
  };
}

/** The Uid/Gid/Groups lines of /proc/self/status, as the container's process sees them. */
const ids = 'grep -E "^(Uid|Gid|Groups):" /proc/self/status | tr -s "\\t " " "';

const fdCount = () => readdirSync('/proc/self/fd').length;
const ptyMasters = () =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return /ptmx$/.test(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      return false;
    }
  }).length;

async function refused(p: Promise<unknown>): Promise<SandpitError & { reason?: string }> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof SandpitError, `a SandpitError, not ${String(err)}`);
    return err as SandpitError & { reason?: string };
  }
  assert.fail('the create should have been refused');
}

function assertNothingLeft(rt: SandboxSupervisor, stateRoot: string): void {
  assert.deepEqual(
    rt.list().map((r) => r.ref.name),
    [],
    'no record',
  );
  assert.deepEqual(rt.cgroups.listSandboxes(), [], 'no cgroup');
  assert.deepEqual(mountsUnder(stateRoot), [], 'no mount');
  assert.deepEqual(readdirSync(stateRoot), [], 'no state dir');
}

describe('node: reading files out of image layers', () => {
  it('sees the overlay union: highest layer wins, whiteouts hide, opaque dirs stop the merge, links stay inside', () => {
    const [low, mid, high] = ['low', 'mid', 'high'].map((l) => join(WORK, 'layers', l));
    for (const l of [low, mid, high]) mkdirSync(join(l!, 'etc'), { recursive: true });
    writeFileSync(join(low!, 'etc/passwd'), 'low\n');
    writeFileSync(join(mid!, 'etc/passwd'), 'mid\n');
    writeFileSync(join(low!, 'etc/group'), 'low group\n');
    assert.equal(fs.mknodat(fs.AT_FDCWD, join(high!, 'etc/group'), fs.S_IFCHR, 0n), 0, 'whiteout');
    mkdirSync(join(low!, 'opaque'));
    writeFileSync(join(low!, 'opaque/hidden'), 'x');
    mkdirSync(join(mid!, 'opaque'));
    assert.equal(lsetxattr(join(mid!, 'opaque'), 'trusted.overlay.opaque', Buffer.from('y'), 1, 0), 0);
    // A link in the top layer to a file of a lower one, through "..": resolved in the union.
    mkdirSync(join(high!, 'usr/share'), { recursive: true });
    symlinkSync('../../etc/passwd', join(high!, 'usr/share/passwd'));
    // Hostile links: out of the root by "..", and to an absolute host path.
    const hostFile = join(WORK, 'host-secret');
    writeFileSync(hostFile, 'host secret\n');
    symlinkSync(`../../../../../../../../../../..${hostFile}`, join(high!, 'dotdot'));
    symlinkSync(hostFile, join(high!, 'absolute'));
    symlinkSync('loop', join(high!, 'loop'));
    const layers = [low!, mid!, high!];
    const read = (p: string) => readImageFile(layers, p)?.toString();

    assert.equal(read('/etc/passwd'), 'mid\n');
    assert.equal(read('/etc/group'), undefined, 'hidden by the whiteout');
    assert.equal(read('/opaque/hidden'), undefined, 'hidden by the opaque directory');
    assert.equal(read('/usr/share/passwd'), 'mid\n');
    assert.equal(read('/dotdot'), undefined, '".." stops at the image root');
    assert.equal(read('/absolute'), undefined, 'an absolute target is looked up in the image');
    assert.throws(() => read('/loop'), /too many symbolic links/);
    assert.equal(read('/etc'), undefined, 'a directory is not a file');
  });
});

describe('node: image users, activeDeadlineSeconds and tty', function () {
  this.timeout(60_000 * SCALE);
  let env: TestRuntime;
  let image: (user: string) => string;
  before(async () => {
    image = userImages();
    // No warm PID 1s: the fd counts of the tty test then only move with what a sandbox holds.
    env = await startTestRuntime({ warmSandboxes: 0 });
  });
  after(async () => {
    await env.cleanup();
    rmSync(WORK, { recursive: true, force: true });
  });

  it('runs image users given by name as those users, with their groups from /etc/group', async () => {
    const c = (name: string, user: string, extra: Record<string, unknown> = {}) => ({
      name,
      image: image(user),
      command: ['/bin/sh', '-c', ids],
      ...extra,
    });
    const rec = await runToCompletion(
      env.rt,
      sandbox('users', {
        restartPolicy: 'Never',
        containers: [
          c('nobody', 'nobody', { securityContext: { runAsNonRoot: true } }),
          c('wwwdata', 'www-data:www-data'),
          c('numeric', '1000:staff', { securityContext: { supplementalGroups: [5] } }),
          c('unknownuid', '4242'),
          c('override', 'nobody', { securityContext: { runAsUser: 1000, runAsGroup: 5 } }),
        ],
      }),
    );
    const out = (name: string) => logText(env.rt, rec, name);
    assert.match(out('nobody'), /^Uid: 65534 65534 65534 65534\nGid: 65534 65534 65534 65534\nGroups: ?$/m);
    // www-data's own group is its gid, not a supplementary group; audio lists it.
    assert.match(out('wwwdata'), /^Uid: 33 33 33 33\nGid: 33 33 33 33\nGroups: 29 ?$/m);
    assert.match(out('numeric'), /^Uid: 1000 1000 1000 1000\nGid: 50 50 50 50\nGroups: 5 29 50 ?$/m);
    assert.match(
      out('unknownuid'),
      /^Uid: 4242 4242 4242 4242\nGid: 0 0 0 0\nGroups: ?$/m,
      'a uid without a passwd entry gets gid 0, as with runc',
    );
    assert.match(
      out('override'),
      /^Uid: 1000 1000 1000 1000\nGid: 5 5 5 5\nGroups: 29 50 ?$/m,
      'runAsUser replaces the image user, runAsGroup its gid',
    );
    assert.ok(rec.containers.every((x) => x.state?.terminated?.exitCode === 0));
    await env.rt.delete(rec.id);
  });

  it('refuses an unknown user or group, a link out of the image and runAsNonRoot with a root image user, leaving nothing behind', async () => {
    const hostile = buildBusyboxRootfs(join(WORK, 'hostile-root'));
    const hostPasswd = join(WORK, 'host-passwd');
    writeFileSync(hostPasswd, 'evil:x:4242:4242::/:/bin/sh\n');
    rmSync(join(hostile, 'etc/passwd'));
    symlinkSync(`../../../../../../../../../..${hostPasswd}`, join(hostile, 'etc/passwd'));
    writeFileSync(`${hostile}.config.json`, JSON.stringify({ user: 'evil' }));

    const cases: [string, Record<string, unknown>, RegExp][] = [
      [
        'ghost',
        { name: 'main', image: image('ghost'), command: ['/bin/true'] },
        /image user "ghost": unable to find user ghost: no matching entry in \/etc\/passwd/,
      ],
      ['nogroup', { name: 'main', image: image('app:ghosts'), command: ['/bin/true'] }, /unable to find group ghosts/],
      [
        'escape',
        { name: 'main', image: `dir:${hostile}`, command: ['/bin/true'] },
        /unable to find user evil: the image has no \/etc\/passwd/,
      ],
      [
        'rootname',
        { name: 'main', image: image('root'), command: ['/bin/true'], securityContext: { runAsNonRoot: true } },
        /runAsNonRoot is set but the container would run as UID 0/,
      ],
      [
        'rootuid',
        { name: 'main', image: image('0:0'), command: ['/bin/true'], securityContext: { runAsNonRoot: true } },
        /runAsNonRoot is set but the container would run as UID 0/,
      ],
    ];
    for (const [name, container, message] of cases) {
      const err = await refused(
        env.rt.create(sandbox(`refuse-${name}`, { restartPolicy: 'Never', containers: [container] })),
      );
      assert.match(err.message, message, name);
      assert.equal(err.reason, 'CreateContainerConfigError', name);
      assert.match(err.message, /^sandbox test\/refuse-/, 'names the sandbox');
      assert.match(err.message, /resolve the user of container main/, 'names the step');
      assert.ok(err.hint, 'says what to do');
      assertNothingLeft(env.rt, env.config.stateRoot);
    }

    // Through the agent's runtime service, the Sandbox status says which container waits and why.
    const service = new RuntimeService(env.rt);
    const sb = sandbox('refuse-status', {
      restartPolicy: 'Never',
      containers: [sh('fine', 'true'), { name: 'bad', image: image('ghost'), command: ['/bin/true'] }],
    });
    const obs = await applied(service, sb);
    assert.equal(obs?.status.reason, 'CreateContainerConfigError');
    assert.deepEqual(
      obs?.status.containerStatuses?.map((c) => [c.name, c.state?.waiting?.reason]),
      [
        ['fine', 'ContainerCreating'],
        ['bad', 'CreateContainerConfigError'],
      ],
    );
    assert.match(obs?.status.containerStatuses?.[1]?.state?.waiting?.message ?? '', /unable to find user ghost/);
    assert.equal(obs?.status.conditions?.find((c) => c.type === 'Ready')?.reason, 'CreateContainerConfigError');
    assert.ok(desiredStatusPatch({ status: {} }, obs!, 'node-a'), 'the agent writes it into the Sandbox status');
    assertNothingLeft(env.rt, env.config.stateRoot);
    await service.remove(sb.metadata.uid as string);
  });

  it('stops a sandbox at activeDeadlineSeconds: Failed with DeadlineExceeded, nothing restarts, processes gone', async () => {
    const sb = sandbox('deadline', {
      restartPolicy: 'Always',
      activeDeadlineSeconds: 2,
      terminationGracePeriodSeconds: 1,
      containers: [sh('main', 'sleep 3600'), sh('side', 'sleep 3600')],
    });
    const rec = await env.rt.create(sb);
    const workload = env.rt.workloadPid(rec.id, 'main');
    assert.ok(workload, 'running');
    await waitFor('deadline', () => rec.phase === 'Failed', 10_000);
    const elapsed = Date.now() - Date.parse(rec.createdAt);
    assert.ok(elapsed >= 2000, `not before the deadline (${elapsed} ms)`);
    const status = env.rt.status(rec.id);
    assert.equal(status.phase, 'Failed');
    assert.equal(status.reason, 'DeadlineExceeded');
    assert.match(status.message ?? '', /activeDeadlineSeconds \(2 s\)/);
    for (const c of rec.containers) assert.equal(c.state?.terminated?.reason, 'DeadlineExceeded', c.name);
    assert.deepEqual(env.rt.cgroups.pids(`${rec.id}/c-main`), []);
    assert.deepEqual(env.rt.cgroups.pids(`${rec.id}/c-side`), []);
    assert.throws(() => process.kill(workload!, 0), /ESRCH/);
    // What the agent writes into the Sandbox: the reason, and a Ready/Stalled condition that carries it.
    const conditions = deriveConditions(status, 1);
    assert.equal(conditions.find((c) => c.type === 'Stalled')?.reason, 'DeadlineExceeded');
    const patch = desiredStatusPatch(
      { status: {} },
      { ref: rec.ref, generation: 1, status: { ...status, conditions } },
      'node-a',
    );
    assert.equal(patch?.reason, 'DeadlineExceeded');
    assert.equal(patch?.phase, 'Failed');
    // Deliberate: time for a restart to happen if one wrongly would after the deadline.
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(
      rec.containers.every((c) => c.restartCount === 0 && c.state?.terminated),
      'restartPolicy Always restarts nothing after the deadline',
    );
    await env.rt.delete(rec.id);
  });

  it('counts the deadline from the recorded start across an agent restart: an expired sandbox is stopped at adoption', async () => {
    const config = testConfig({ warmSandboxes: 0 });
    const first = await startRuntime(config);
    let second: SandboxSupervisor | undefined;
    try {
      const rec = await first.create(
        sandbox('deadline-restart', {
          restartPolicy: 'Always',
          activeDeadlineSeconds: 2,
          terminationGracePeriodSeconds: 1,
          containers: [sh('main', 'sleep 3600')],
        }),
      );
      const workload = await waitFor('workload', () => first.workloadPid(rec.id, 'main'));
      await first.close(); // the agent goes away; the sandbox keeps running past its deadline
      // Deliberate: the deadline has to pass while no agent runs.
      await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(rec.createdAt) + 2500 - Date.now())));
      process.kill(workload, 0); // still alive: nothing enforced the deadline while no agent ran
      second = await startRuntime(config);
      const adopted = second.get(rec.id)!;
      await waitFor('stopped at adoption', () => adopted.phase === 'Failed', 5_000);
      assert.equal(second.status(rec.id).reason, 'DeadlineExceeded');
      assert.equal(adopted.containers[0]!.state?.terminated?.reason, 'DeadlineExceeded');
      assert.deepEqual(second.cgroups.pids(`${rec.id}/c-main`), []);
      await second.delete(rec.id);
    } finally {
      await cleanupRuntime(second ?? first, config);
    }
  });

  it('gives a tty: true container a terminal on 0/1/2, logs it as stdout and closes the pty master with the container', async () => {
    const before = fdCount();
    const masters = ptyMasters(); // other suites in this process may hold exec sessions' masters
    const rec = await env.rt.create(
      sandbox('tty', {
        restartPolicy: 'Never',
        containers: [
          sh(
            'term',
            'test -t 0 && echo stdin-tty; test -t 1 && echo tty; test -t 2 && echo stderr-tty; tty; sleep 0.5',
            { tty: true },
          ),
          sh('plain', 'test -t 1 && echo tty || echo no-tty; tty || true'),
        ],
      }),
    );
    assert.equal(ptyMasters(), masters + 1, 'the agent holds the master while the container runs');
    await waitFor('containers to finish', () => rec.containers.every((c) => c.state?.terminated));
    await waitFor('pty master closed once the container ended', () => ptyMasters() === masters, 5_000);
    const term = env.rt.logPath(rec.id, 'term');
    const text = logText(env.rt, rec, 'term');
    assert.match(text, /^stdin-tty\r?$/m);
    assert.match(text, /^tty\r?$/m);
    assert.match(text, /^stderr-tty\r?$/m);
    assert.match(text, /^\/dev\/pts\/\d+\r?$/m);
    const raw = readFileSync(term, 'utf8');
    assert.ok(
      raw
        .split('\n')
        .filter(Boolean)
        .every((l) => l.split(' ')[1] === 'stdout'),
      'a terminal is one stream: stdout',
    );
    assert.match(logText(env.rt, rec, 'plain'), /^no-tty$/m);
    assert.doesNotMatch(logText(env.rt, rec, 'plain'), /^tty$/m);
    await env.rt.delete(rec.id);

    // Each run of a restarted container gets a fresh terminal; the last run's master is closed.
    const again = await env.rt.create(
      sandbox('tty-restarts', {
        restartPolicy: 'OnFailure',
        containers: [sh('term', 'test -t 1 && echo run-on-tty; exit 1', { tty: true })],
      }),
    );
    await waitFor('three restarts', () => again.containers[0]!.restartCount >= 3);
    assert.ok(ptyMasters() <= masters + 1, `at most one master at a time (${ptyMasters() - masters})`);
    assert.ok(
      (logText(env.rt, again, 'term').match(/^run-on-tty\r?$/gm) ?? []).length >= 3,
      'every run logs through its terminal',
    );
    await env.rt.delete(again.id);
    assert.equal(ptyMasters(), masters, 'delete closes the master of the last run');
    await waitFor('agent fds back to where they were', () => fdCount() <= before && fdCount(), 5_000).catch(
      () => undefined,
    );
    assert.ok(fdCount() <= before, `no fd left open by the sandbox (${before} before, ${fdCount()} after)`);
  });
});
