import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { SandpitError } from '../../lib/errors.js';
import { applyRootfs, enterRoot } from '../rootfs/apply.js';
import { applyIdentity } from '../security/apply.js';
import { check, libc, type CallSite } from '../sys/libc.js';
import { CLONE_FS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS, sethostname, setns, unshare } from '../sys/ns.js';
import { close, open, O_CLOEXEC, O_NOCTTY, O_RDONLY, O_RDWR } from '../sys/proc.js';
import { bringLoopbackUp } from './loopback.js';
import type { InfraPlan, LaunchPlan, LaunchResult, ProcessPlan } from './plans.js';

/*
 * Body of a single-use launcher thread. Namespaces, root, credentials,
 * capabilities and the seccomp filter are all per-thread in Linux, and a child
 * forked by libuv from this thread inherits them. So the thread turns itself
 * into the container's context, spawns, reports, and exits: it can never be
 * reused, and nothing it did touches the agent's other threads.
 */

const ioctlInt = libc.func('int ioctl(int fd, unsigned long request, int *arg)');
const ioctlVal = libc.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']);
const TIOCSPTLCK = 0x40045431;
const TIOCGPTPEER = 0x5441;

function waitForSpawn(child: ReturnType<typeof spawn>, site: CallSite): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid!));
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(new SandpitError({ ...site, message: `spawn failed: ${err.code ?? err.message}`, code: err.code, cause: err })),
    );
  });
}

async function launchInfra(p: InfraPlan): Promise<LaunchResult> {
  const site = { sandbox: p.sandbox, step: 'create namespaces' };
  // Kept to step back out afterwards: unlike a container launch, starting PID 1
  // changes nothing that cannot be undone, so this thread can serve again.
  const home = (['net', 'ipc', 'uts', 'pid'] as const).map((k) => open(`/proc/thread-self/ns/${k}`, O_RDONLY | O_CLOEXEC, 0, { ...site, step: `open own ${k} namespace` }));
  try {
    return await startPid1(p, site);
  } finally {
    for (const fd of home) {
      setns(fd, 0, { ...site, step: 'return to the host namespaces' });
      close(fd);
    }
  }
}

async function startPid1(p: InfraPlan, site: CallSite): Promise<LaunchResult> {
  unshare(CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS, site);
  sethostname(p.hostname, { ...site, step: 'set hostname' });
  bringLoopbackUp({ ...site, step: 'loopback up' });
  const stdio: (number | 'pipe' | 'ignore')[] = ['ignore', p.log, p.log, ...p.extraFds];
  stdio[p.readyFd] = 'pipe';
  const child = spawn(p.file, p.argv.slice(1), { argv0: p.argv[0], stdio, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  const pid = await waitForSpawn(child, { ...site, step: 'start sandbox PID 1' });
  const ready = child.stdio[p.readyFd]!;
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    ready.on('data', (d: Buffer) => {
      seen += d.toString();
      if (seen.includes('ready')) resolve();
    });
    ready.on('end', () => reject(new SandpitError({ ...site, step: 'start sandbox PID 1', message: `PID 1 (${pid}) exited before it was ready` })));
  });
  ready.destroy();
  child.unref();
  return { pid, reusable: true };
}

function resolveCommand(cmd: string, env: Record<string, string>): string {
  if (cmd.includes('/')) return cmd;
  for (const dir of (env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const candidate = `${dir}/${cmd}`;
    try {
      if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
    } catch {
      /* keep looking */
    }
  }
  return cmd; // the shim reports "not found" and exits 127, like a runtime would
}

async function launchProcess(p: ProcessPlan): Promise<LaunchResult> {
  const site = { sandbox: p.sandbox, step: p.step };
  const kinds = ['net', 'ipc', 'uts', 'cgroup', 'pid', 'mnt'] as const;
  const nsFds = kinds.map((k) => open(`/proc/${p.nsPid}/ns/${k}`, O_RDONLY | O_CLOEXEC, 0, { ...site, step: `${p.step}: open ${k} namespace` }));
  // Opened while the host's root is still ours; run later as /proc/self/fd/3.
  const busybox = open(p.busybox, O_RDONLY | O_CLOEXEC, 0, { ...site, step: `${p.step}: open shim` });
  // A thread shares its fs_struct (root, cwd) with the process until it unshares it;
  // setns into a mount namespace is refused while it is shared.
  unshare(CLONE_FS, site);
  kinds.forEach((k, i) => setns(nsFds[i]!, 0, { ...site, step: `${p.step}: join ${k} namespace` }));
  for (const fd of nsFds) close(fd);
  if (!p.joinMount) {
    unshare(CLONE_NEWNS, { ...site, step: `${p.step}: new mount namespace` });
    const r = p.rootfs!;
    applyRootfs(r.root, r.steps, { ...site, step: `${p.step}: rootfs` });
    enterRoot(r.root, r.readOnly, { ...site, step: `${p.step}: pivot_root` });
  }
  let stdio: number[] = [...p.stdio];
  let ptyMaster: number | undefined;
  let slave: number | undefined;
  if (p.tty) {
    const ttySite = { ...site, step: `${p.step}: allocate tty` };
    ptyMaster = open('/dev/ptmx', O_RDWR | O_NOCTTY | O_CLOEXEC, 0, ttySite);
    check('ioctl TIOCSPTLCK', ttySite, () => ioctlInt(ptyMaster!, TIOCSPTLCK, [0]));
    slave = check('ioctl TIOCGPTPEER', ttySite, () => ioctlVal(ptyMaster!, TIOCGPTPEER, O_RDWR | O_NOCTTY));
    stdio = [slave!, slave!, slave!];
  }
  const args = [...p.args];
  if (p.resolveAt >= 0) args[p.resolveAt] = resolveCommand(args[p.resolveAt]!, p.env);
  applyIdentity(p.identity, { ...site, step: `${p.step}: identity` });
  const child = spawn('/proc/self/fd/3', args, {
    argv0: 'sh',
    stdio: [stdio[0]!, stdio[1]!, stdio[2]!, busybox, ...p.extraFds],
    env: p.env,
    cwd: p.cwd,
  });
  const pid = await waitForSpawn(child, { ...site, step: `${p.step}: spawn` });
  child.unref();
  close(busybox);
  if (slave !== undefined) close(slave);
  return { pid, ptyMaster };
}

async function handle(plan: LaunchPlan): Promise<LaunchResult> {
  try {
    return plan.kind === 'infra' ? await launchInfra(plan) : await launchProcess(plan);
  } catch (err) {
    const e = err instanceof SandpitError ? err : new SandpitError({ step: 'launch', sandbox: plan.sandbox, message: String(err), cause: err });
    return { error: { message: e.message, step: e.step, code: e.code, sandbox: e.sandbox } };
  }
}

parentPort!.on('message', (plan: LaunchPlan) => {
  void handle(plan).then((result) => {
    parentPort!.postMessage(result);
    // After a container launch this thread lives in the container's namespaces,
    // root and credentials, under its seccomp filter: it must never serve again.
    if (!result.reusable) process.exit(0);
  });
});
parentPort!.postMessage({ ready: true });
