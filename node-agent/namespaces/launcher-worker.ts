import { existsSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { SandpitError } from '../../lib/errors.js';
import { applyRootfs, enterRoot } from '../rootfs/apply.js';
import { check, libc, type CallSite } from '../sys/libc.js';
import {
  CLONE_FS,
  CLONE_NEWIPC,
  CLONE_NEWNET,
  CLONE_NEWNS,
  CLONE_NEWPID,
  CLONE_NEWUTS,
  sethostname,
  setns,
  unshare,
} from '../sys/ns.js';
import { fchdir } from '../sys/mount.js';
import { close, open, O_CLOEXEC, O_DIRECTORY, O_NOCTTY, O_RDONLY, O_RDWR } from '../sys/proc.js';
import { spawnFromThread } from '../sys/spawn.js';
import { pipe } from '../process/exec-io.js';
import { bringLoopbackUp } from './loopback.js';
import type { Pid1Plan, LaunchPlan, LaunchResult, ProcessPlan } from './plans.js';

/*
 * Body of a launcher thread. Namespaces, root, credentials, capabilities and
 * the seccomp filter are all per-thread in Linux, and a child spawned from
 * this thread inherits them. A launch (container or exec) only moves the
 * thread into the container's namespaces and root: sandpit-init, the child,
 * joins the user namespace and takes on the container's identity itself (a
 * thread of a multithreaded process could not join a user namespace anyway).
 * So afterwards the thread steps back into the namespaces it was born in and
 * serves again; one that cannot get back exits.
 */

const HOME_KINDS = ['net', 'ipc', 'uts', 'cgroup', 'pid', 'mnt'] as const;
type NsKind = (typeof HOME_KINDS)[number];
/** The namespaces this thread was born in (the host's), to return to after each launch. */
const home = new Map<NsKind, number>(
  HOME_KINDS.map((k) => [
    k,
    open(`/proc/thread-self/ns/${k}`, O_RDONLY | O_CLOEXEC, 0, { step: `open own ${k} namespace` }),
  ]),
);

/** The agent's working directory: joining a mount namespace moves root and cwd to its root. */
const homeCwd = open(process.cwd(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, {
  step: "open the agent's working directory",
});

/** Back into the host's namespaces, root and working directory. */
function returnHome(kinds: readonly NsKind[], site: CallSite): void {
  for (const k of kinds) setns(home.get(k)!, 0, { ...site, step: `return to the host ${k} namespace` });
  if (kinds.includes('mnt')) fchdir(homeCwd, { ...site, step: "return to the agent's working directory" });
}

const ioctlInt = libc.func('int ioctl(int fd, unsigned long request, int *arg)');
const readFn = libc.func('long read(int fd, _Out_ uint8_t *buf, size_t count)');
const ioctlVal = libc.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']);
const fchownFn = libc.func('int fchown(int fd, uint32_t uid, uint32_t gid)');
const TIOCSPTLCK = 0x40045431;
const TIOCGPTPEER = 0x5441;

async function launchPid1(p: Pid1Plan): Promise<LaunchResult> {
  const site = { sandbox: p.sandbox, step: 'create namespaces' };
  try {
    return await startPid1(p, site);
  } finally {
    returnHome(['net', 'ipc', 'uts', 'pid'], site);
  }
}

async function startPid1(p: Pid1Plan, site: CallSite): Promise<LaunchResult> {
  unshare(CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS, site);
  sethostname(p.hostname, { ...site, step: 'set hostname' });
  bringLoopbackUp({ ...site, step: 'loopback up' });
  const [readEnd, writeEnd] = pipe({ ...site, step: 'ready pipe' });
  let pid: number;
  try {
    const fds = [p.log, p.log, p.log, ...p.extraFds];
    fds[p.readyFd] = writeEnd;
    pid = spawnFromThread(p.file, p.argv, { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, fds, '/', {
      ...site,
      step: 'start sandbox PID 1',
    });
  } finally {
    close(writeEnd);
  }
  try {
    // A blocking read is fine here: this thread has nothing else to do.
    const buf = Buffer.alloc(16);
    const n = readFn(readEnd, buf, buf.length);
    if (n <= 0 || !buf.toString('utf8', 0, n).includes(p.readyWord ?? 'ready'))
      throw new SandpitError({
        ...site,
        step: 'start sandbox PID 1',
        message: `PID 1 (${pid}) exited before it was ready`,
      });
  } finally {
    close(readEnd);
  }
  return { pid, reusable: true };
}

/**
 * A container's root is built in a copy of the infra mount namespace, which
 * the sandbox's PID 1 holds as its fd 0: PID 1 itself has left it for an
 * empty root of its own (sandpit-init confine()). A PID 1 started by an agent
 * from before that change, still running across an upgrade, is in the infra
 * namespace itself.
 */
function infraMountNamespace(pid1: number): string {
  try {
    if (readlinkSync(`/proc/${pid1}/fd/0`).startsWith('mnt:')) return `/proc/${pid1}/fd/0`;
  } catch {
    /* gone: the open below reports it */
  }
  return `/proc/${pid1}/ns/mnt`;
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
  const t0 = performance.now();
  const marks: Record<string, number> = {};
  const mark = (k: string) => (marks[k] = Math.round((performance.now() - t0) * 10) / 10);
  // unshare(CLONE_NEWPID) is refused once setns() chose a PID namespace for
  // children: a container with its own PID namespace skips the sandbox's.
  const kinds = p.joinPid
    ? (['net', 'ipc', 'uts', 'cgroup', 'pid', 'mnt'] as const)
    : (['net', 'ipc', 'uts', 'cgroup', 'mnt'] as const);
  const nsPath = (k: NsKind) =>
    k === 'mnt' && !p.joinMount ? infraMountNamespace(p.nsPid) : `/proc/${p.nsPid}/ns/${k}`;
  const nsFds = kinds.map((k) =>
    open(nsPath(k), O_RDONLY | O_CLOEXEC, 0, { ...site, step: `${p.step}: open ${k} namespace` }),
  );
  // Opened while the host's root is still ours; run later as /proc/self/fd/3.
  const program = open(p.program, O_RDONLY | O_CLOEXEC, 0, { ...site, step: `${p.step}: open ${p.program}` });
  // A thread shares its fs_struct (root, cwd) with the process until it unshares it;
  // setns into a mount namespace is refused while it is shared.
  unshare(CLONE_FS, site);
  kinds.forEach((k, i) => setns(nsFds[i]!, 0, { ...site, step: `${p.step}: join ${k} namespace` }));
  for (const fd of nsFds) close(fd);
  mark('setns');
  // /proc/sys/net resolves against this thread's network namespace: the sandbox's now.
  for (const [key, value] of Object.entries(p.netSysctls ?? {})) {
    try {
      writeFileSync(`/proc/sys/${key}`, value);
    } catch (err) {
      throw new SandpitError({
        ...site,
        step: `${p.step}: set sysctl ${key}`,
        message: (err as Error).message,
        cause: err,
      });
    }
  }
  let pidnsInit: number | undefined;
  if (!p.joinMount) {
    unshare(CLONE_NEWNS, { ...site, step: `${p.step}: new mount namespace` });
    const r = p.rootfs!;
    applyRootfs(r.root, r.steps, { ...site, step: `${p.step}: rootfs` }, (target) => {
      pidnsInit = startPidNamespace(p, target, { ...site, step: `${p.step}: own PID namespace` });
    });
    mark('rootfs');
    enterRoot(r.root, r.readOnly, { ...site, step: `${p.step}: pivot_root` }, { path: p.cwd, owner: r.owner });
    mark('pivot');
  }
  let stdio: number[] = [...p.stdio];
  let ptyMaster: number | undefined;
  let slave: number | undefined;
  if (p.tty) {
    const ttySite = { ...site, step: `${p.step}: allocate tty` };
    ptyMaster = open('/dev/ptmx', O_RDWR | O_NOCTTY | O_CLOEXEC, 0, ttySite);
    check('ioctl TIOCSPTLCK', ttySite, () => ioctlInt(ptyMaster!, TIOCSPTLCK, [0]));
    // Close-on-exec like every fd the agent holds: another launcher thread spawning meanwhile must not inherit
    // the terminal (it would hold the slave open, and the session's output would never end). The spawn's dup2
    // onto the child's 0/1/2 clears the flag there.
    slave = check('ioctl TIOCGPTPEER', ttySite, () => ioctlVal(ptyMaster!, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
    // Made by this thread, the terminal would belong to the node's root; the workload owns it, as with runc.
    if (p.ttyOwner !== undefined) check('fchown pty', ttySite, () => fchownFn(slave!, p.ttyOwner!, 0xffffffff));
    stdio = [slave!, slave!, slave!];
  }
  const args = [...p.args];
  if (p.resolveAt >= 0) args[p.resolveAt] = resolveCommand(args[p.resolveAt]!, p.env);
  let pid: number;
  try {
    const childFds = [stdio[0]!, stdio[1]!, stdio[2]!, program, ...p.extraFds];
    if (ptyMaster !== undefined && p.ptyMasterToChild) childFds.push(ptyMaster);
    pid = spawnFromThread('/proc/self/fd/3', [p.argv0, ...args], p.env, childFds, p.cwd, {
      ...site,
      step: `${p.step}: spawn`,
    });
  } catch (err) {
    // fds are the agent's, not this thread's: a pty nobody will read must not outlive the failure.
    if (ptyMaster !== undefined) close(ptyMaster);
    throw err;
  } finally {
    close(program);
    if (slave !== undefined) close(slave);
  }
  mark('spawned');
  // Credentials were never touched: the thread can leave the container and serve again.
  let reusable = false;
  try {
    returnHome(HOME_KINDS, site);
    reusable = true;
  } catch {
    /* half way back: this thread must not serve again; the pool replaces it */
  }
  return { pid, ptyMaster, marks, pidnsInit, reusable };
}

/**
 * shareProcessNamespace: false. The thread (still root, in the container's
 * mount namespace, before pivot_root) makes a PID namespace for its children
 * and starts its PID 1, sandpit-init pidns, which joins the container cgroup
 * and mounts that namespace's /proc at `target`: only a process inside a PID
 * namespace can. The shim, spawned later from this thread, is its PID 2.
 */
function startPidNamespace(p: ProcessPlan, target: string, site: CallSite): number {
  if (!p.ownPid) throw new SandpitError({ ...site, message: 'no cgroup fds for the container PID 1' });
  unshare(CLONE_NEWPID, site);
  const [readEnd, writeEnd] = pipe(site);
  let pid: number;
  try {
    const cg = p.ownPid.cgroupFds;
    const list = cg.length ? cg.map((_, i) => 4 + i).join(',') : '-';
    pid = spawnFromThread(
      p.program,
      ['sandpit-init', 'pidns', '3', list, target],
      {},
      [p.stdio[0], p.stdio[0], p.stdio[2], writeEnd, ...cg],
      '/',
      site,
    );
  } finally {
    close(writeEnd);
  }
  try {
    const buf = Buffer.alloc(16);
    const n = readFn(readEnd, buf, buf.length);
    if (n <= 0 || !buf.toString('utf8', 0, n).includes('ready'))
      throw new SandpitError({ ...site, message: `the container's PID 1 (${pid}) exited before /proc was mounted` });
  } finally {
    close(readEnd);
  }
  return pid;
}

async function handle(plan: LaunchPlan): Promise<LaunchResult> {
  try {
    return plan.kind === 'pid1' ? await launchPid1(plan) : await launchProcess(plan);
  } catch (err) {
    const e =
      err instanceof SandpitError
        ? err
        : new SandpitError({ step: 'launch', sandbox: plan.sandbox, message: String(err), cause: err });
    // The agent makes a SandpitError of this again: hand over the bare message, not the formatted one.
    return { error: { message: e.detail, step: e.step, code: e.code, sandbox: e.sandbox, hint: e.hint } };
  }
}

parentPort!.on('message', (plan: LaunchPlan) => {
  void handle(plan).then((result) => {
    parentPort!.postMessage(result);
    // After a failed launch this thread may live in a container's namespaces
    // and root: it must never serve again.
    if (!result.reusable) process.exit(0);
  });
});
parentPort!.postMessage({ ready: true });
