import { chownSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { containerMilliCpu } from '../../crds/demand.js';
import { parseQuantity } from '../../crds/quantity.js';
import { sharesFromMilliCpu } from '../cgroups/cpu-shares.js';
import { SandpitError } from '../../lib/errors.js';
import type { CgroupLimits } from '../cgroups/manager.js';
import { containerCgroup } from '../cgroups/paths.js';
import { describeSandbox } from '../contracts.js';
import { openUserNamespace } from '../namespaces/userns.js';
import { pipeHolding } from '../process/exec-io.js';
import { ContainerLog, ensureFifo, openFifoForWorkload } from '../process/logs.js';
import { processStartTime } from '../process/pidinfo.js';
import { ChildFds, containerShimArgs } from '../process/shim.js';
import { buildRootfsPlan } from '../rootfs/plan.js';
import { close, open, O_CLOEXEC, O_CREAT, O_RDONLY, O_WRONLY } from '../sys/proc.js';
import { containerCommand, containerIdentity } from './container-identity.js';
import { containerKey, now, type RuntimeContext } from './context.js';
import type { ContainerRecord, SandboxRecord } from './record.js';
import { DEFAULT_TERMINATION_MESSAGE_PATH, prepareTerminationLog, terminationLogFile } from './termination-message.js';

/*
 * One run of a container: a fresh writable layer and cgroup, then a launcher
 * thread that joins the sandbox's namespaces, builds the root from a pure plan
 * (rootfs/plan.ts) and spawns the shim, which becomes the container's user and
 * forks the workload. What the run needs to be found again (shim PID, start
 * time, pty fd) is in the record before this returns.
 */

/**
 * Set in a hostUsers: false sandbox's network namespace, as Docker and
 * containerd do: that namespace belongs to the host's user namespace, so the
 * container's root holds no CAP_NET_BIND_SERVICE or CAP_NET_RAW over it.
 */
const USERNS_NET_SYSCTLS = { 'net/ipv4/ip_unprivileged_port_start': '0', 'net/ipv4/ping_group_range': '0 2147483647' };

/** Starts a new run of `c` and records it running. */
export async function startContainer(ctx: RuntimeContext, rec: SandboxRecord, c: ContainerRecord): Promise<void> {
  const { cgroups, store, launchers } = ctx.deps;
  const spec = rec.spec.containers.find((x) => x.name === c.name)!;
  const image = rec.images[c.name]!;
  const who = describeSandbox(rec.ref);
  const step = `start container ${c.name}`;
  const site = { sandbox: who, step };
  const cdir = store.containerDir(rec.id, c.name);
  const sc = spec.securityContext;

  const layerMounts = prepareWritableLayer(rec, cdir, image.layers.length);
  // Empty for each run: the message is what this run writes.
  prepareTerminationLog(terminationLogFile(cdir), rec.userns?.base);
  const cgRel = containerCgroup(rec.id, c.name);
  cgroups.create(cgRel, site);
  const limits: CgroupLimits = {};
  if (spec.resources?.limits?.memory) limits.memory = parseQuantity(spec.resources.limits.memory);
  if (spec.resources?.limits?.cpu) limits.cpu = parseQuantity(spec.resources.limits.cpu);
  cgroups.setLimits(cgRel, limits, site);
  cgroups.setCpuShares(cgRel, sharesFromMilliCpu(containerMilliCpu(spec)), site);

  const key = containerKey(rec, c);
  if (!ctx.logs.has(key)) attachLogs(ctx, rec, c.name);

  const identity = containerIdentity(ctx.config, spec, image, site);
  const { env, argv } = containerCommand(rec.hostname, spec, image, site);
  ensureFifo(join(cdir, 'stdout.fifo'));
  ensureFifo(join(cdir, 'stderr.fifo'));
  const fds: number[] = [];
  try {
    fds.push(open('/dev/null', O_RDONLY | O_CLOEXEC, 0, site));
    fds.push(openFifoForWorkload(join(cdir, 'stdout.fifo')));
    fds.push(openFifoForWorkload(join(cdir, 'stderr.fifo')));
    rmSync(join(cdir, 'exit'), { force: true });
    const exitFd = open(join(cdir, 'exit'), O_WRONLY | O_CREAT | O_CLOEXEC, 0o600, site);
    fds.push(exitFd);
    const cgFds = cgroups.openProcs(cgRel, site);
    fds.push(...cgFds);
    const ownPid = !rec.spec.shareProcessNamespace;
    const initCgFds = ownPid ? cgroups.openProcs(cgRel, site) : [];
    fds.push(...initCgFds);
    const filterFd = identity.seccomp
      ? pipeHolding(identity.seccomp, { ...site, step: `${step}: seccomp filter` })
      : undefined;
    if (filterFd !== undefined) fds.push(filterFd);
    const usernsFd = rec.userns ? openUserNamespace(join(store.sandboxDir(rec.id), 'userns'), site) : undefined;
    if (usernsFd !== undefined) fds.push(usernsFd);
    const child = new ChildFds();
    const exitAt = child.place(exitFd);
    const cgroupsAt = cgFds.map((fd) => child.place(fd));
    const seccompAt = child.placeOptional(filterFd);
    const usernsAt = child.placeOptional(usernsFd);
    const ptyAt = spec.tty ? child.next() : undefined;
    const shim = containerShimArgs(
      { exit: exitAt, cgroups: cgroupsAt, seccomp: seccompAt, userns: usernsAt, pty: ptyAt },
      { oomScoreAdj: ctx.config.oomScoreAdj, nofile: ctx.config.nofile },
      identity,
      argv,
    );
    const oomBase = cgroups.oomKills(cgRel);
    const dir = store.sandboxDir(rec.id);
    const volumes = (spec.volumeMounts ?? []).map((m) => ({
      source: join(dir, 'volumes', m.name),
      mountPath: m.mountPath,
      readOnly: m.readOnly,
    }));
    const steps = buildRootfsPlan({
      root: join(cdir, 'rootfs'),
      layers: image.layers,
      upper: join(cdir, 'upper'),
      work: join(cdir, 'work'),
      shm: join(dir, 'shm'),
      etcFiles: { hostname: join(dir, 'hostname'), hosts: join(dir, 'hosts'), resolvConf: join(dir, 'resolv.conf') },
      volumes,
      terminationLog: {
        source: terminationLogFile(cdir),
        path: spec.terminationMessagePath ?? DEFAULT_TERMINATION_MESSAGE_PATH,
      },
      readOnlyRoot: sc?.readOnlyRootFilesystem ?? false,
      privileged: sc?.privileged ?? false,
      ownPidNamespace: ownPid,
      userns: rec.userns && usernsFd !== undefined ? { fd: usernsFd, base: rec.userns.base, layerMounts } : undefined,
    });
    const t0 = performance.now();
    const result = await launchers.launch({
      kind: 'process',
      sandbox: who,
      step,
      nsPid: rec.pid1!.pid,
      joinMount: false,
      joinPid: !ownPid,
      ownPid: ownPid ? { cgroupFds: initCgFds } : undefined,
      rootfs: {
        root: join(cdir, 'rootfs'),
        steps,
        readOnly: sc?.readOnlyRootFilesystem ?? false,
        owner: rec.userns?.base ?? 0,
      },
      program: ctx.config.binaries.init,
      argv0: 'sandpit-init',
      args: shim.args,
      resolveAt: shim.pathAt,
      netSysctls: rec.userns ? USERNS_NET_SYSCTLS : undefined,
      env,
      cwd: spec.workingDir ?? image.config.workingDir ?? '/',
      stdio: [fds[0]!, fds[1]!, fds[2]!],
      extraFds: child.fds,
      tty: spec.tty,
      ptyMasterToChild: spec.tty,
      ttyOwner: (rec.userns?.base ?? 0) + identity.uid,
    });
    if (result.error) throw new SandpitError(result.error);
    // tty: the workload's 0/1/2 are a pty slave; what it writes reaches the log as stdout.
    if (result.ptyMaster !== undefined) ctx.logs.get(key)!.attachTerminal(result.ptyMaster);
    c.pid = result.pid!;
    if (result.pidnsInit !== undefined) c.pidnsInit = result.pidnsInit;
    if (ptyAt !== undefined) c.ptyFd = ptyAt;
    else delete c.ptyFd;
    c.startTime = processStartTime(c.pid) ?? 0;
    c.startedAt = now();
    c.oomBase = oomBase;
    c.imageID = image.imageID;
    c.state = { running: { startedAt: c.startedAt } };
    delete c.restartAt;
    ctx.save(rec);
    ctx
      .log(rec)
      .info(
        { step, container: c.name, pid: c.pid, ms: { ...result.marks, total: Math.round(performance.now() - t0) } },
        'container started',
      );
  } finally {
    for (const fd of fds) close(fd);
  }
}

/**
 * A fresh writable layer per run, as a new container would get. With a user
 * namespace it belongs to the container's root, and each image layer gets an
 * empty dir to be idmapped onto (in the container's mount namespace only):
 * those dirs are returned.
 */
function prepareWritableLayer(rec: SandboxRecord, cdir: string, layers: number): string[] {
  for (const d of ['upper', 'work', 'layers']) rmSync(join(cdir, d), { recursive: true, force: true });
  for (const d of ['rootfs', 'upper', 'work']) mkdirSync(join(cdir, d), { recursive: true });
  if (!rec.userns) return [];
  const layerMounts = Array.from({ length: layers }, (_, i) => join(cdir, 'layers', String(i)));
  for (const d of ['upper', 'work']) chownSync(join(cdir, d), rec.userns.base, rec.userns.base);
  for (const d of layerMounts) mkdirSync(d, { recursive: true });
  return layerMounts;
}

/** The container's log, fed from the fifos its runs write to (they outlive any one run and the agent). */
export function attachLogs(ctx: RuntimeContext, rec: SandboxRecord, name: string): void {
  const cdir = ctx.deps.store.containerDir(rec.id, name);
  mkdirSync(cdir, { recursive: true });
  ensureFifo(join(cdir, 'stdout.fifo'));
  ensureFifo(join(cdir, 'stderr.fifo'));
  const log = new ContainerLog(logPath(ctx, rec.id, name), ctx.config.log);
  log.attach(join(cdir, 'stdout.fifo'), 'stdout');
  log.attach(join(cdir, 'stderr.fifo'), 'stderr');
  ctx.logs.set(containerKey(rec, name), log);
}

export function logPath(ctx: RuntimeContext, id: string, container: string): string {
  return join(ctx.deps.store.sandboxDir(id), 'logs', `${container}.log`);
}
