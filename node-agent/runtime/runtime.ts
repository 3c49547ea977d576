import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { z } from 'zod';
import type { ContainerState, Sandbox, SandboxSpec, SandboxStatus } from '../../crds/sandbox.js';
import { SandpitError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import {
  describeSandbox,
  sandboxIdFor,
  type ImageProvider,
  type NetworkProvider,
  type NetworkResult,
  type PreparedImage,
  type SandboxRef,
} from '../contracts.js';
import { CgroupManager, type CgroupLimits } from '../cgroups/manager.js';
import { CpuRates } from '../cgroups/cpu-rate.js';
import { containerCgroup, pid1Cgroup } from '../cgroups/paths.js';
import { infraArgv } from '../namespaces/infra.js';
import { LauncherPool } from '../namespaces/launcher.js';
import { awaitReady, InfraPool, type WarmInfra } from '../namespaces/warm-infra.js';
import type { LaunchResult } from '../namespaces/plans.js';
import { ContainerLog, ensureFifo, openFifoForWorkload } from '../process/logs.js';
import { childrenOf, isSameProcess, processStartTime } from '../process/pidinfo.js';
import { backoffAfterExit, restartDelay, shouldRestart } from '../process/restart.js';
import { ChildFds, containerShimArgs, decodeShellStatus, execArgs } from '../process/shim.js';
import { allocateUsernsBlock, createUserNamespace, openUserNamespace, USERNS_SIZE } from '../namespaces/userns.js';
import { execPipes, pipeHolding } from '../process/exec-io.js';
import type { Identity } from '../security/identity.js';
import type { Socket } from 'node:net';
import { ReadStream, WriteStream } from 'node:tty';
import { setWindowSize } from '../sys/tty.js';
import { buildRootfsPlan } from '../rootfs/plan.js';
import { allowPrivilegedHint, boundingCaps, containerCaps } from '../security/capabilities.js';
import { buildSeccompFilter } from '../security/seccomp.js';
import { readJson, StateStore, writeJsonInPlace } from '../state/store.js';
import { mount, MNT_DETACH, MS_NODEV, MS_NOEXEC, MS_NOSUID, umount2 } from '../sys/mount.js';
import {
  close,
  dup,
  kill,
  open,
  O_CLOEXEC,
  O_CREAT,
  O_RDONLY,
  O_WRONLY,
  pidfdGetfd,
  pidfdOpen,
  reapChild,
} from '../sys/proc.js';
import type { RuntimeConfig } from './config.js';
import { parseQuantity } from '../../crds/quantity.js';
import { defaultPullPolicy } from '../images/reference.js';
import { ImageFileError, readImageFile } from './image-files.js';
import { pullCredentials } from '../images/pull-secrets.js';
import { NoCommandError, resolveCommand } from './command.js';
import { parseGroup, parsePasswd, resolveUser, UserLookupError, type ResolvedUser } from './passwd.js';
import { configError, RuntimeError, type CreateStage } from './errors.js';

/** What the agent itself may hand on (a container's capabilities are a subset of it). */
const AGENT_BOUNDING = boundingCaps(readFileSync('/proc/self/status', 'utf8'));

/*
 * The node agent's sandbox runtime: builds sandboxes out of namespaces,
 * cgroups and overlay roots, supervises their containers, and keeps every
 * fact it needs on disk so that a restarted agent re-adopts what runs.
 * No Node.js process exists per sandbox: PID 1 and each container's shim are
 * sandpit-init (node-agent/native/), a libc-free static program of a few KiB.
 */

type Phase = 'Creating' | 'Running' | 'Paused' | 'Succeeded' | 'Failed' | 'Deleting';

export interface ContainerRecord {
  name: string;
  imageID: string;
  restartCount: number;
  /** The shim (host PID) of the current run and its start time, while it runs. */
  pid?: number;
  startTime?: number;
  startedAt?: string;
  oomBase: number;
  state: z.infer<typeof ContainerState>;
  lastState?: z.infer<typeof ContainerState>;
  /** Earliest time the next restart may happen (back-off). */
  restartAt?: number;
  /** Restarts in a row the back-off counts (restartCount until a long good run starts it over; absent in older records). */
  backoffStep?: number;
  /** Host PID of the run's own PID 1 (shareProcessNamespace: false), to reap once the run ends. */
  pidnsInit?: number;
  /** tty: true: the fd number at which the shim holds the terminal's master end. */
  ptyFd?: number;
}

export interface SandboxRecord {
  id: string;
  ref: SandboxRef;
  spec: SandboxSpec;
  phase: Phase;
  createdAt: string;
  hostname: string;
  pid1?: { pid: number; startTime: number };
  network?: NetworkResult;
  images: Record<string, PreparedImage>;
  containers: ContainerRecord[];
  message?: string;
  /** Why the sandbox is in its phase (DeadlineExceeded), for status.reason. */
  reason?: string;
  /** Set by stop(): exits are final, nothing restarts. */
  stopping?: boolean;
  /** metadata.generation of the applied spec. */
  generation?: number;
  /**
   * hostUsers: false: container ids 0..size-1 are host ids base..; the
   * namespace itself is pinned at <state dir>/userns. Recorded before it is
   * made, so no other sandbox gets the block while this record exists.
   */
  userns?: { base: number; size: number };
}

export interface ExecSession {
  pid: number;
  /** null unless stdin was requested (or a TTY, which is read and written through stdout). */
  stdin: Socket | null;
  stdout: Socket;
  stderr: Socket | null;
  exited: Promise<{ exitCode: number; signal?: number }>;
  /** Sets the terminal size (TTY sessions only; a no-op otherwise or once the session ended). */
  resize(cols: number, rows: number): void;
}

export interface RuntimeDeps {
  images: ImageProvider;
  network: NetworkProvider;
  log: Logger;
}

const now = () => new Date().toISOString();

export class SandboxRuntime {
  readonly config: RuntimeConfig;
  readonly cgroups: CgroupManager;
  readonly store: StateStore;
  readonly #deps: RuntimeDeps;
  readonly #launchers: LauncherPool;
  readonly #warm: InfraPool;
  readonly #sandboxes = new Map<string, SandboxRecord>();
  readonly #cpuRates = new CpuRates();
  readonly #logs = new Map<string, ContainerLog>();
  readonly #busy = new Set<string>();
  /** "<id>/<container>" runs being replaced by restartContainer: their exit neither restarts them nor ends the sandbox. */
  readonly #replacing = new Set<string>();
  /** Our children that are done with but may not have exited yet (a container's own PID 1). */
  readonly #zombies = new Set<number>();
  readonly #listeners = new Set<(rec: SandboxRecord) => void>();
  /** Sandboxes being stopped by their activeDeadlineSeconds, and the stop under way. */
  readonly #expiring = new Map<string, Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  readonly #onChild = () => this.#tick();

  private constructor(config: RuntimeConfig, deps: RuntimeDeps, launchers: LauncherPool) {
    this.config = config;
    this.#deps = deps;
    this.#launchers = launchers;
    this.#warm = new InfraPool(config.warmSandboxes, launchers, config.binaries, deps.log);
    this.cgroups = CgroupManager.detect(config.cgroupParent);
    this.store = new StateStore(config.stateRoot);
  }

  /** Starts the runtime: warms launchers, re-adopts what survived, cleans what is half-built or orphaned. */
  static async start(config: RuntimeConfig, deps: RuntimeDeps): Promise<SandboxRuntime> {
    const launchers = await LauncherPool.create(config.launchers);
    const rt = new SandboxRuntime(config, deps, launchers);
    await rt.#recover();
    rt.#tick(); // a re-adopted sandbox whose deadline passed while the agent was down is stopped now
    await rt.#warm.fill();
    rt.#timer = setInterval(() => rt.#tick(), config.pollMs);
    rt.#timer.unref();
    process.on('SIGCHLD', rt.#onChild);
    return rt;
  }

  /** Stops supervising; sandboxes keep running (they do not depend on the agent). */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    process.off('SIGCHLD', this.#onChild);
    await this.#warm.close();
    for (const l of this.#logs.values()) await l.close();
    this.#logs.clear();
    await this.#launchers.close();
  }

  /** Launcher threads started so far and alive now (a container launch reuses its thread). */
  launcherStats(): { started: number; live: number; max: number } {
    return this.#launchers.stats();
  }

  list(): SandboxRecord[] {
    return [...this.#sandboxes.values()];
  }

  get(id: string): SandboxRecord | undefined {
    return this.#sandboxes.get(id);
  }

  #log(rec: { id: string; ref: SandboxRef }) {
    return this.#deps.log.child({ sandbox: describeSandbox(rec.ref), id: rec.id });
  }

  #save(rec: SandboxRecord): void {
    writeJsonInPlace(join(this.store.sandboxDir(rec.id), 'sandbox.json'), rec);
    for (const fn of this.#listeners) {
      try {
        fn(rec);
      } catch (err) {
        this.#deps.log.error({ err }, 'sandbox change listener failed');
      }
    }
  }

  /** Called after every change of a sandbox record (it is on disk by then). Returns an unsubscribe function. */
  subscribe(fn: (rec: SandboxRecord) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  // ---------------------------------------------------------------------------
  // create

  async create(sandbox: Sandbox): Promise<SandboxRecord> {
    const meta = sandbox.metadata as { namespace?: string; name?: string; uid?: string };
    const namespace = meta.namespace ?? 'default';
    const name = meta.name ?? 'sandbox';
    const uid = meta.uid ?? `${namespace}/${name}`;
    const id = sandboxIdFor(uid);
    const existing = this.#sandboxes.get(id);
    if (existing) return existing;
    const ref: SandboxRef = { id, namespace, name, uid };
    const who = describeSandbox(ref);
    const rec: SandboxRecord = {
      id,
      ref,
      spec: sandbox.spec,
      phase: 'Creating',
      createdAt: now(),
      hostname: sandbox.spec.hostname ?? name.slice(0, 63),
      images: {},
      generation: (sandbox.metadata as { generation?: number }).generation ?? 0,
      containers: sandbox.spec.containers.map((c) => ({
        name: c.name,
        imageID: '',
        restartCount: 0,
        oomBase: 0,
        state: { waiting: { reason: 'ContainerCreating' } },
      })),
    };
    if (!sandbox.spec.hostUsers) rec.userns = this.#allocateUserns(sandbox.spec, who);
    const dir = this.store.sandboxDir(id);
    const log = this.#log(rec);
    this.#busy.add(id);
    try {
      mkdirSync(join(dir, 'containers'), { recursive: true });
      mkdirSync(join(dir, 'logs'), { recursive: true });
      // Written first: a crash from here on leaves a record that says "half built".
      this.#save(rec);
      this.#sandboxes.set(id, rec);
      faultPoint('after-record');
      const t = new StepTimer();

      const cg = (step: string) => ({ sandbox: who, step });
      this.cgroups.create(id, cg('create sandbox cgroup'));
      this.cgroups.create(pid1Cgroup(id), cg('create infra cgroup'));
      const r = sandbox.spec.resources;
      this.cgroups.setLimits(
        id,
        {
          pids: r.pids,
          memory: r.memory ? parseQuantity(r.memory) : undefined,
          cpu: r.cpu ? parseQuantity(r.cpu) : undefined,
        },
        cg('set sandbox limits'),
      );
      t.mark('cgroups');

      if (rec.userns) {
        await createUserNamespace(
          this.config.binaries.init,
          rec.userns.base,
          join(dir, 'userns'),
          cg('create user namespace'),
        );
        faultPoint('after-userns');
        t.mark('userns');
      }

      this.#mountSandboxStorage(rec);
      faultPoint('after-mounts');
      t.mark('mounts');

      for (const c of sandbox.spec.containers) {
        // As kubelet: no policy in the spec means Always for :latest or untagged images, IfNotPresent otherwise.
        // A pull secret that did not reach the agent fails here too, as an image error.
        rec.images[c.name] = await Promise.resolve()
          .then(() =>
            this.#deps.images.prepare(c.image, {
              policy: c.imagePullPolicy ?? defaultPullPolicy(c.image),
              credentials: pullCredentials(sandbox, c.name),
              sandbox: ref,
            }),
          )
          .catch(atStage(c.name, 'image'));
      }

      // A user the image does not define fails here, before any process exists.
      for (const c of sandbox.spec.containers) {
        try {
          this.#identity(rec, c, rec.images[c.name]!, {
            sandbox: who,
            step: `resolve the user of container ${c.name}`,
          });
        } catch (err) {
          atStage(c.name, 'config')(err);
        }
      }
      t.mark('images');
      await this.#startInfra(rec);
      t.mark('pid1');
      faultPoint('after-infra');
      this.cgroups.delegateTo(id, cg('delegate controllers'));

      rec.network = await this.#deps.network.setup(
        {
          sandbox: ref,
          netnsPath: `/proc/${rec.pid1!.pid}/ns/net`,
          hostname: rec.hostname,
          network: sandbox.spec.network,
        },
        log,
      );
      writeFileSync(join(dir, 'hostname'), `${rec.hostname}\n`);
      writeFileSync(join(dir, 'hosts'), rec.network.hosts);
      writeFileSync(join(dir, 'resolv.conf'), rec.network.resolvConf);
      // Bind-mounted into every container: owned by its root, as kubelet does for a pod with its own user namespace.
      if (rec.userns)
        for (const f of ['hostname', 'hosts', 'resolv.conf']) chownSync(join(dir, f), rec.userns.base, rec.userns.base);

      t.mark('network');
      for (const c of rec.containers) await this.#startContainer(rec, c).catch(atStage(c.name, 'start'));
      t.mark('containers');
      faultPoint('after-containers');
      rec.phase = 'Running';
      if (sandbox.spec.paused) this.pause(id, true);
      this.#save(rec);
      log.info({ step: 'create', pid1: rec.pid1?.pid, ms: t.marks }, 'sandbox running');
      return rec;
    } catch (err) {
      log.error({ err, step: 'create' }, 'sandbox creation failed; tearing down what was built');
      await this.#teardown(rec).catch((e: unknown) => log.error({ err: e }, 'teardown after failed create'));
      throw err;
    } finally {
      this.#busy.delete(id);
      // Warm the next PID 1 now: during the create it would compete for the CPU.
      setImmediate(() => void this.#warm.fill());
    }
  }

  #mountSandboxStorage(rec: SandboxRecord): void {
    const dir = this.store.sandboxDir(rec.id);
    const site = { sandbox: describeSandbox(rec.ref), step: 'mount sandbox storage' };
    // With a user namespace, /dev/shm and volumes belong to the container's root (host id base).
    const owner = rec.userns ? `,uid=${rec.userns.base},gid=${rec.userns.base}` : '';
    mkdirSync(join(dir, 'shm'), { recursive: true });
    mount(
      'shm',
      join(dir, 'shm'),
      'tmpfs',
      MS_NOSUID | MS_NODEV | MS_NOEXEC,
      `mode=1777,size=${this.config.shmBytes}${owner}`,
      site,
    );
    for (const v of rec.spec.volumes ?? []) {
      const vdir = join(dir, 'volumes', v.name);
      mkdirSync(vdir, { recursive: true });
      if (v.emptyDir.medium === 'Memory') {
        const size = v.emptyDir.sizeLimit ? parseQuantity(v.emptyDir.sizeLimit) : this.config.shmBytes;
        mount('emptydir', vdir, 'tmpfs', MS_NOSUID | MS_NODEV, `mode=1777,size=${size}${owner}`, {
          ...site,
          step: `mount volume ${v.name}`,
        });
      } else if (v.emptyDir.sizeLimit) {
        // A disk emptyDir with a limit is a size-capped tmpfs too: the node has no per-directory quota to rely on.
        mount(
          'emptydir',
          vdir,
          'tmpfs',
          MS_NOSUID | MS_NODEV,
          `mode=1777,size=${parseQuantity(v.emptyDir.sizeLimit)}${owner}`,
          { ...site, step: `mount volume ${v.name}` },
        );
      } else if (rec.userns) {
        chownSync(vdir, rec.userns.base, rec.userns.base);
      }
    }
  }

  /**
   * A free block of host ids for a hostUsers: false sandbox, taken from the
   * blocks of every sandbox this runtime knows (re-adopted ones included).
   * Refused, with nothing created, where a user namespace cannot work.
   */
  #allocateUserns(spec: SandboxSpec, who: string): { base: number; size: number } {
    const site = { sandbox: who, step: 'allocate user namespace' };
    const privileged = spec.containers.find((c) => c.securityContext?.privileged);
    // A container configuration that cannot work, reported as kubelet reports one (the container waits with this reason).
    if (privileged)
      throw configError(
        site,
        `container ${privileged.name} is privileged, which hostUsers: false does not allow: privileged means the node's root, unconfined`,
        'drop privileged: true or set hostUsers: true',
        privileged.name,
      );
    const used = [...this.#sandboxes.values()].flatMap((r) => (r.userns ? [r.userns.base] : []));
    const base = allocateUsernsBlock(this.config.usernsRange, used);
    if (base === undefined)
      throw new SandpitError({
        ...site,
        message: `every block of ${USERNS_SIZE} host ids in the agent's range ${this.config.usernsRange.first}:${this.config.usernsRange.count} is in use`,
        hint: 'delete sandboxes with hostUsers: false or widen SANDPIT_USERNS_RANGE',
        reason: 'UserNamespaceRangeExhausted',
      });
    return { base, size: USERNS_SIZE };
  }

  async #startInfra(rec: SandboxRecord): Promise<void> {
    const who = describeSandbox(rec.ref);
    const warm = this.#warm.take();
    if (warm) {
      try {
        await this.#claimWarm(rec, warm);
        return;
      } catch (err) {
        this.#log(rec).warn({ err, step: 'claim warm PID 1' }, 'warm PID 1 unusable; starting one cold');
        await this.cgroups.killAll(rec.id, { sandbox: who, step: 'kill unusable warm PID 1' });
        await waitUntil(() => reapChild(warm.pid, { sandbox: who, step: 'reap warm PID 1' }) !== null, 5000);
        delete rec.pid1;
      }
    }
    const sandboxFds = this.cgroups.openProcs(rec.id, { sandbox: who, step: 'open sandbox cgroup' });
    const infraFds = this.cgroups.openLeafProcs(pid1Cgroup(rec.id), { sandbox: who, step: 'open infra cgroup' });
    const devnull = open('/dev/null', O_WRONLY | O_CLOEXEC, 0, { sandbox: who, step: 'open /dev/null' });
    const childSandbox = sandboxFds.map((_, i) => 3 + i);
    const childInfra = infraFds.map((_, i) => 3 + sandboxFds.length + i);
    const readyFd = 3 + sandboxFds.length + infraFds.length;
    const { file, argv } = infraArgv(this.config.binaries, childSandbox, childInfra, readyFd);
    let result: LaunchResult;
    try {
      result = await this.#launchers.launch({
        kind: 'infra',
        sandbox: who,
        hostname: rec.hostname,
        file,
        argv,
        extraFds: [...sandboxFds, ...infraFds],
        readyFd,
        log: devnull,
      });
    } finally {
      for (const fd of [...sandboxFds, ...infraFds, devnull]) close(fd);
    }
    if (result.error) throw new SandpitError(result.error);
    rec.pid1 = { pid: result.pid!, startTime: processStartTime(result.pid!) ?? 0 };
    this.#save(rec);
  }

  /**
   * A warm PID 1 already has its pid/net/ipc/uts namespaces: move it into the
   * sandbox cgroup (so the cgroup namespace it makes is rooted there), send the
   * hostname, wait for ready, then move it into the infra leaf.
   */
  async #claimWarm(rec: SandboxRecord, warm: WarmInfra): Promise<void> {
    const who = describeSandbox(rec.ref);
    const site = (step: string) => ({ sandbox: who, step });
    try {
      rec.pid1 = { pid: warm.pid, startTime: processStartTime(warm.pid) ?? 0 };
      this.#save(rec); // from here a crash finds PID 1 in the record and tears it down
      this.cgroups.movePid(rec.id, warm.pid, site('move warm PID 1 into the sandbox cgroup'));
      writeSync(warm.go, `${rec.hostname}\n`);
      await awaitReady(warm.ready, site('wait for warm PID 1'));
      this.cgroups.moveLeafPid(pid1Cgroup(rec.id), warm.pid, site('move PID 1 into the infra cgroup'));
    } finally {
      InfraPool.discard(warm);
    }
  }

  // ---------------------------------------------------------------------------
  // containers

  async #startContainer(rec: SandboxRecord, c: ContainerRecord): Promise<void> {
    const spec = rec.spec.containers.find((x) => x.name === c.name)!;
    const image = rec.images[c.name]!;
    const who = describeSandbox(rec.ref);
    const step = `start container ${c.name}`;
    const site = { sandbox: who, step };
    const cdir = this.store.containerDir(rec.id, c.name);
    const sc = spec.securityContext;

    // A fresh writable layer per run, as a new container would get.
    for (const d of ['upper', 'work', 'layers']) rmSync(join(cdir, d), { recursive: true, force: true });
    for (const d of ['rootfs', 'upper', 'work']) mkdirSync(join(cdir, d), { recursive: true });
    // With a user namespace the writable layer belongs to the container's root, and each image
    // layer gets an empty dir to be idmapped onto (in the container's mount namespace only).
    const layerMounts = rec.userns ? image.layers.map((_, i) => join(cdir, 'layers', String(i))) : [];
    if (rec.userns) {
      for (const d of ['upper', 'work']) chownSync(join(cdir, d), rec.userns.base, rec.userns.base);
      for (const d of layerMounts) mkdirSync(d, { recursive: true });
    }
    const cgRel = containerCgroup(rec.id, c.name);
    this.cgroups.create(cgRel, site);
    const limits: CgroupLimits = {};
    if (spec.resources?.limits?.memory) limits.memory = parseQuantity(spec.resources.limits.memory);
    if (spec.resources?.limits?.cpu) limits.cpu = parseQuantity(spec.resources.limits.cpu);
    this.cgroups.setLimits(cgRel, limits, site);

    const key = `${rec.id}/${c.name}`;
    if (!this.#logs.has(key)) this.#attachLogs(rec, c.name);

    const { identity } = this.#identity(rec, spec, image, site);
    const { env, argv } = this.#command(rec, spec, image, site);
    const ensure = (f: string) => ensureFifo(join(cdir, f));
    ensure('stdout.fifo');
    ensure('stderr.fifo');
    const fds: number[] = [];
    try {
      fds.push(open('/dev/null', O_RDONLY | O_CLOEXEC, 0, site));
      fds.push(openFifoForWorkload(join(cdir, 'stdout.fifo')));
      fds.push(openFifoForWorkload(join(cdir, 'stderr.fifo')));
      rmSync(join(cdir, 'exit'), { force: true });
      const exitFd = open(join(cdir, 'exit'), O_WRONLY | O_CREAT | O_CLOEXEC, 0o600, site);
      fds.push(exitFd);
      const cgFds = this.cgroups.openProcs(cgRel, site);
      fds.push(...cgFds);
      const ownPid = !rec.spec.shareProcessNamespace;
      const initCgFds = ownPid ? this.cgroups.openProcs(cgRel, site) : [];
      fds.push(...initCgFds);
      const filterFd = identity.seccomp
        ? pipeHolding(identity.seccomp, { ...site, step: `${step}: seccomp filter` })
        : undefined;
      if (filterFd !== undefined) fds.push(filterFd);
      const usernsFd = rec.userns ? openUserNamespace(join(this.store.sandboxDir(rec.id), 'userns'), site) : undefined;
      if (usernsFd !== undefined) fds.push(usernsFd);
      const child = new ChildFds();
      const exitAt = child.place(exitFd);
      const cgroupsAt = cgFds.map((fd) => child.place(fd));
      const seccompAt = child.placeOptional(filterFd);
      const usernsAt = child.placeOptional(usernsFd);
      const ptyAt = spec.tty ? child.next() : undefined;
      const shim = containerShimArgs(
        { exit: exitAt, cgroups: cgroupsAt, seccomp: seccompAt, userns: usernsAt, pty: ptyAt },
        { oomScoreAdj: this.config.oomScoreAdj, nofile: this.config.nofile },
        identity,
        argv,
      );
      const oomBase = this.cgroups.oomKills(cgRel);
      const volumes = (spec.volumeMounts ?? []).map((m) => ({
        source: join(this.store.sandboxDir(rec.id), 'volumes', m.name),
        mountPath: m.mountPath,
        readOnly: m.readOnly,
      }));
      const dir = this.store.sandboxDir(rec.id);
      const steps = buildRootfsPlan({
        root: join(cdir, 'rootfs'),
        layers: image.layers,
        upper: join(cdir, 'upper'),
        work: join(cdir, 'work'),
        shm: join(dir, 'shm'),
        etcFiles: { hostname: join(dir, 'hostname'), hosts: join(dir, 'hosts'), resolvConf: join(dir, 'resolv.conf') },
        volumes,
        readOnlyRoot: sc?.readOnlyRootFilesystem ?? false,
        privileged: sc?.privileged ?? false,
        ownPidNamespace: ownPid,
        userns: rec.userns && usernsFd !== undefined ? { fd: usernsFd, base: rec.userns.base, layerMounts } : undefined,
      });
      const t0 = performance.now();
      const result = await this.#launchers.launch({
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
        program: this.config.binaries.init,
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
      if (result.ptyMaster !== undefined) this.#logs.get(key)!.attachTerminal(result.ptyMaster);
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
      this.#save(rec);
      this.#log(rec).info(
        { step, container: c.name, pid: c.pid, ms: { ...result.marks, total: Math.round(performance.now() - t0) } },
        'container started',
      );
    } finally {
      for (const fd of fds) close(fd);
    }
  }

  /**
   * An edited container, as kubelet handles a changed container definition:
   * the image is prepared and the new definition checked first (a failure
   * leaves the old run alone), then the old run is stopped (SIGTERM, SIGKILL
   * after the grace period) and the new one started in the same sandbox, with
   * a fresh cgroup (limits as the new spec says) and restartCount + 1. The
   * log file goes on, so `logs --previous` shows the old run. A new run that
   * fails to start waits with its reason and is retried with back-off. The
   * other containers are not touched. Takes the new sandbox spec as a whole: the
   * caller (RuntimeService.apply, spec-diff.ts) has found that nothing else
   * in it needs a new sandbox.
   */
  async restartContainer(id: string, name: string, sandbox: Sandbox): Promise<void> {
    const spec = sandbox.spec;
    const rec = this.#require(id);
    const c = rec.containers.find((x) => x.name === name);
    const cspec = spec.containers.find((x) => x.name === name);
    const who = describeSandbox(rec.ref);
    const site = { sandbox: who, step: `restart container ${name} with its new definition` };
    if (!c || !cspec)
      throw new SandpitError({ ...site, message: `container ${name} is not in the sandbox and the spec both` });
    await waitUntil(() => !this.#busy.has(id), 30_000);
    if (rec.stopping) throw new SandpitError({ ...site, message: 'the sandbox is stopping' });
    this.#busy.add(id);
    try {
      const image = await this.#deps.images.prepare(cspec.image, {
        policy: cspec.imagePullPolicy ?? defaultPullPolicy(cspec.image),
        credentials: pullCredentials(sandbox, name),
        sandbox: rec.ref,
      });
      this.#identity(rec, cspec, image, site);
      this.#command(rec, cspec, image, site);
      const frozen = this.cgroups.frozen(id);
      if (frozen) this.cgroups.freeze(id, false, { ...site, step: `${site.step}: thaw` });
      try {
        await this.#stopOne(rec, c, spec.terminationGracePeriodSeconds * 1000, site);
        rec.spec = { ...rec.spec, containers: rec.spec.containers.map((x) => (x.name === name ? cspec : x)) };
        rec.images[name] = image;
        if (c.state?.terminated) c.lastState = c.state; // the run just ended is the one --previous shows
        c.restartCount++;
        await this.#startContainer(rec, c).catch((err: unknown) => {
          // The old run is gone and the spec is the new one: retried with back-off, as a crashed run is.
          this.#log(rec).error({ err, container: name }, 'start of the edited container failed');
          const reason = err instanceof SandpitError ? err.reason : undefined;
          c.state = {
            waiting: {
              reason: reason ?? 'RunContainerError',
              message: (err as Error).message,
            },
          };
          c.restartAt = Date.now() + restartDelay(c.restartCount, this.config.restartBackoff);
          this.#save(rec);
        });
      } finally {
        if (frozen) this.cgroups.freeze(id, true, { ...site, step: `${site.step}: freeze again` });
      }
    } finally {
      this.#busy.delete(id);
    }
  }

  /** Stops one container's run for good (its exit is recorded, nothing restarts) and removes its cgroup. */
  async #stopOne(
    rec: SandboxRecord,
    c: ContainerRecord,
    graceMs: number,
    site: { sandbox: string; step: string },
  ): Promise<void> {
    const cgRel = containerCgroup(rec.id, c.name);
    delete c.restartAt;
    this.#replacing.add(`${rec.id}/${c.name}`);
    try {
      const deadline = Date.now() + graceMs;
      let signalled = false;
      while (c.pid !== undefined && Date.now() < deadline) {
        const w = childrenOf(c.pid)[0];
        if (!signalled && w !== undefined) {
          kill(w, 15, site);
          signalled = true;
        }
        this.#checkExit(rec, c);
        await new Promise((r) => setTimeout(r, 5));
      }
      if (c.pid !== undefined) await this.cgroups.killAll(cgRel, site);
      await waitUntil(() => {
        if (c.pid !== undefined) this.#checkExit(rec, c);
        return c.pid === undefined;
      }, 10_000);
      for (const pid of this.#zombies) if (reapChild(pid, site) !== null) this.#zombies.delete(pid);
      await this.cgroups.killAll(cgRel, site);
      // The exit's own cgroup sweep (#recordExit) polls every 5 ms: let it see the cgroup empty before a new run appears in it.
      await new Promise((r) => setTimeout(r, 20));
      await this.cgroups.remove(cgRel, site);
    } finally {
      this.#replacing.delete(`${rec.id}/${c.name}`);
    }
  }

  #identity(
    rec: SandboxRecord,
    spec: SandboxSpec['containers'][number],
    image: PreparedImage,
    site: { sandbox: string; step: string },
  ): { identity: Identity } {
    const who = site.sandbox;
    const sc = spec.securityContext;
    const caps = containerCaps(
      { privileged: sc?.privileged, add: sc?.capabilities?.add, drop: sc?.capabilities?.drop },
      { ...this.config, bounding: AGENT_BOUNDING },
      who,
    );
    const unconfined = sc?.privileged || sc?.seccompProfile?.type === 'Unconfined';
    if (sc?.seccompProfile?.type === 'Unconfined' && !this.config.allowPrivileged)
      throw new SandpitError({
        ...site,
        message: 'seccompProfile Unconfined is not allowed on this node',
        hint: allowPrivilegedHint(this.config.hints),
      });
    // runAsUser replaces the image's USER (group included), as in Kubernetes; runAsGroup then replaces the gid.
    const userSpec = sc?.runAsUser !== undefined ? String(sc.runAsUser) : (image.config.user ?? '');
    const user = this.#resolveUser(image, userSpec, site, spec.name);
    const uid = user.uid;
    const gid = sc?.runAsGroup ?? user.gid;
    if (sc?.runAsNonRoot && uid === 0)
      throw configError(
        site,
        `runAsNonRoot is set but the container would run as UID 0 (image user ${JSON.stringify(image.config.user ?? '')})`,
        'set securityContext.runAsUser to a non-zero UID or use an image with a non-root USER',
        spec.name,
      );
    const groups = [...new Set([...user.additionalGids, ...(sc?.supplementalGroups ?? [])])];

    void rec;
    return {
      identity: {
        uid,
        gid,
        groups,
        caps,
        noNewPrivs: !(sc?.allowPrivilegeEscalation ?? false) && !sc?.privileged,
        seccomp: unconfined ? null : buildSeccompFilter(caps),
      },
    };
  }

  /**
   * The image's "user[:group]" (or runAsUser) against the image's own
   * /etc/passwd and /etc/group, read inside the image's layers (image-files.ts).
   * Not cached: two small reads cost well under a millisecond, and a dir: image can change.
   */
  #resolveUser(
    image: PreparedImage,
    spec: string,
    site: { sandbox: string; step: string },
    container: string,
  ): ResolvedUser {
    const hint =
      "add the user and group to the image's /etc/passwd and /etc/group, or use a numeric user (USER 1000:1000, or securityContext.runAsUser)";
    try {
      const file = (path: string) => readImageFile(image.layers, path)?.toString('utf8');
      const passwd = file('/etc/passwd');
      const group = file('/etc/group');
      return resolveUser(
        spec,
        passwd === undefined ? undefined : parsePasswd(passwd),
        group === undefined ? undefined : parseGroup(group),
      );
    } catch (err) {
      if (err instanceof UserLookupError || err instanceof ImageFileError)
        throw configError(site, `image user ${JSON.stringify(spec)}: ${err.detail}`, hint, container);
      throw err;
    }
  }

  #command(
    rec: SandboxRecord,
    spec: SandboxSpec['containers'][number],
    image: PreparedImage,
    site: { sandbox: string; step: string },
  ): { env: Record<string, string>; argv: string[] } {
    try {
      return resolveCommand(image.config, spec, rec.hostname);
    } catch (err) {
      if (!(err instanceof NoCommandError)) throw err;
      throw new RuntimeError({
        ...site,
        message: err.detail,
        hint: 'set command (or args) on the container, or use an image with an ENTRYPOINT or CMD',
        reason: 'CreateContainerError',
        container: spec.name,
      });
    }
  }

  /**
   * Runs a command in a running container: the launcher thread joins all of
   * the container's namespaces (through its shim's /proc entries) and starts
   * sandpit-init in exec mode, which joins the cgroup and the user namespace,
   * takes on the container's credentials, capabilities and filter and becomes
   * the command. The thread serves again afterwards.
   */
  async exec(
    id: string,
    container: string,
    argv: string[],
    opts: { tty?: boolean; stdin?: boolean } = {},
  ): Promise<ExecSession> {
    const rec = this.#require(id);
    const c = rec.containers.find((x) => x.name === container);
    const who = describeSandbox(rec.ref);
    const site = { sandbox: who, step: `exec in ${container}` };
    // A command started in a frozen cgroup would freeze with it and the client would hang.
    if (rec.phase === 'Paused' || this.cgroups.frozen(id))
      throw new SandpitError({
        ...site,
        message: 'the sandbox is paused',
        hint: 'set spec.paused=false to exec',
        reason: 'SandboxPaused',
      });
    if (!c || c.pid === undefined)
      throw new SandpitError({ ...site, message: `container ${container} is not running` });
    const spec = rec.spec.containers.find((x) => x.name === container)!;
    const image = rec.images[container]!;
    const { identity } = this.#identity(rec, spec, image, site);
    const { env } = this.#command(rec, spec, image, site);
    if (!argv.length) throw new SandpitError({ ...site, message: 'no command to run' });
    const io = execPipes({ stdin: opts.stdin ?? false }, site);
    const held: number[] = [];
    let result: LaunchResult;
    try {
      const cgFds = this.cgroups.openProcs(containerCgroup(id, container), site);
      held.push(...cgFds);
      const filterFd = identity.seccomp ? pipeHolding(identity.seccomp, site) : undefined;
      if (filterFd !== undefined) held.push(filterFd);
      const usernsFd = rec.userns ? openUserNamespace(join(this.store.sandboxDir(id), 'userns'), site) : undefined;
      if (usernsFd !== undefined) held.push(usernsFd);
      const child = new ChildFds();
      const args = execArgs(
        {
          cgroups: cgFds.map((fd) => child.place(fd)),
          seccomp: child.placeOptional(filterFd),
          userns: child.placeOptional(usernsFd),
        },
        opts.tty ?? false,
        identity,
        argv,
      );
      result = await this.#launchers.launch({
        kind: 'process',
        sandbox: who,
        step: site.step,
        nsPid: c.pid,
        joinMount: true,
        joinPid: true,
        program: this.config.binaries.init,
        argv0: 'sandpit-init',
        args: args.args,
        resolveAt: args.pathAt,
        env,
        cwd: spec.workingDir ?? image.config.workingDir ?? '/',
        stdio: io.child,
        extraFds: child.fds,
        tty: opts.tty ?? false,
        ttyOwner: (rec.userns?.base ?? 0) + identity.uid,
      });
    } finally {
      for (const fd of [...io.child, ...held]) close(fd);
    }
    if (result.error) {
      io.stdin?.destroy();
      io.stdout.destroy();
      io.stderr?.destroy();
      throw new SandpitError(result.error);
    }
    const pid = result.pid!;
    let streams = { stdin: io.stdin, stdout: io.stdout, stderr: io.stderr };
    let resize = (_cols: number, _rows: number) => undefined as void;
    if (result.ptyMaster !== undefined) {
      const master = result.ptyMaster;
      resize = (cols, rows) => {
        try {
          setWindowSize(master, cols, rows, site);
        } catch {
          /* the session ended and the master is closed */
        }
      };
      io.stdin?.destroy();
      io.stdout.destroy();
      io.stderr?.destroy();
      // A pty master is a TTY to libuv: net.Socket refuses it, the tty streams take it.
      const input = new WriteStream(dup(result.ptyMaster, site));
      const output = new ReadStream(result.ptyMaster);
      output.on('error', () => output.destroy()); // EIO once the last slave fd closes
      streams = { stdin: input, stdout: output, stderr: null };
    }
    const exited = (async () => {
      for (;;) {
        const r = reapChild(pid, site);
        if (r && r !== 'not-child')
          return r.code === 1 ? { exitCode: r.status } : { exitCode: 128 + r.status, signal: r.status };
        await new Promise((res) => setTimeout(res, 10));
      }
    })();
    return { pid, ...streams, exited, resize };
  }

  #attachLogs(rec: SandboxRecord, name: string): void {
    const cdir = this.store.containerDir(rec.id, name);
    mkdirSync(cdir, { recursive: true });
    ensureFifo(join(cdir, 'stdout.fifo'));
    ensureFifo(join(cdir, 'stderr.fifo'));
    const log = new ContainerLog(this.logPath(rec.id, name), this.config.log);
    log.attach(join(cdir, 'stdout.fifo'), 'stdout');
    log.attach(join(cdir, 'stderr.fifo'), 'stderr');
    this.#logs.set(`${rec.id}/${name}`, log);
  }

  logPath(id: string, container: string): string {
    return join(this.store.sandboxDir(id), 'logs', `${container}.log`);
  }

  /** Looks for exited containers and due restarts. Cheap: a few stat/read calls per running container. */
  #tick(): void {
    for (const pid of this.#zombies)
      if (reapChild(pid, { step: 'reap container PID 1' }) !== null) this.#zombies.delete(pid);
    for (const rec of this.#sandboxes.values()) {
      if (this.#busy.has(rec.id) || rec.phase === 'Creating' || rec.phase === 'Deleting') continue;
      if (deadlinePassed(rec)) void this.#expire(rec);
      for (const c of rec.containers) {
        if (c.pid !== undefined) this.#checkExit(rec, c);
        else if (c.restartAt !== undefined && Date.now() >= c.restartAt) void this.#restart(rec, c);
      }
    }
  }

  #checkExit(rec: SandboxRecord, c: ContainerRecord): void {
    const pid = c.pid!;
    // A shim of ours still running is the common case on every poll: one wait4, no file read.
    // (Until it is reaped, its status file does not matter: a written status waits for the reap,
    // so the shim is not left a zombie.)
    const reaped = reapChild(pid, { sandbox: describeSandbox(rec.ref), step: 'reap shim' });
    if (reaped === null) return;
    const exitFile = join(this.store.containerDir(rec.id, c.name), 'exit');
    let text = '';
    try {
      text = readFileSync(exitFile, 'utf8').trim();
    } catch {
      /* not written yet */
    }
    const alive = reaped === 'not-child' && isSameProcess(pid, c.startTime!);
    if (!text && alive) return;
    let finishedAt = now();
    try {
      if (text) finishedAt = statSync(exitFile).mtime.toISOString();
    } catch {
      /* keep now */
    }
    // No status file: the shim itself was killed (by us, or with the whole cgroup).
    const status = text ? decodeShellStatus(Number(text)) : { exitCode: 137, signal: 9 };
    this.#recordExit(rec, c, status, finishedAt);
  }

  #recordExit(
    rec: SandboxRecord,
    c: ContainerRecord,
    status: { exitCode: number; signal?: number },
    finishedAt: string,
  ): void {
    const cgRel = containerCgroup(rec.id, c.name);
    const oom = this.cgroups.oomKills(cgRel) > c.oomBase;
    const expired = rec.stopping && rec.reason === 'DeadlineExceeded';
    const reason = oom ? 'OOMKilled' : expired ? 'DeadlineExceeded' : status.exitCode === 0 ? 'Completed' : 'Error';
    c.lastState = c.state;
    c.state = {
      terminated: { exitCode: status.exitCode, signal: status.signal, reason, startedAt: c.startedAt, finishedAt },
    };
    delete c.pid;
    delete c.startTime;
    // The run's own PID 1 goes with the cgroup kill below; reap it once it has.
    if (c.pidnsInit !== undefined) this.#zombies.add(c.pidnsInit);
    delete c.pidnsInit;
    // Whatever the workload left behind in its cgroup goes with it, as in Kubernetes.
    void this.cgroups
      .killAll(cgRel, { sandbox: describeSandbox(rec.ref), step: 'kill container leftovers' })
      .catch(() => undefined);
    const replacing = this.#replacing.has(`${rec.id}/${c.name}`);
    if (
      rec.phase === 'Running' &&
      !rec.stopping &&
      !replacing &&
      shouldRestart(rec.spec.restartPolicy, status.exitCode)
    ) {
      const ranMs = Date.parse(finishedAt) - Date.parse(c.startedAt ?? finishedAt);
      const backoff = backoffAfterExit(
        c.backoffStep ?? c.restartCount,
        Number.isFinite(ranMs) ? ranMs : 0,
        this.config.restartBackoff,
      );
      c.backoffStep = backoff.step;
      c.restartAt = Date.now() + backoff.delayMs;
      c.state = { waiting: { reason: 'CrashLoopBackOff', message: `last exit ${status.exitCode} (${reason})` } };
      c.lastState = {
        terminated: { exitCode: status.exitCode, signal: status.signal, reason, startedAt: c.startedAt, finishedAt },
      };
    }
    if (
      !replacing &&
      (rec.phase === 'Running' || rec.phase === 'Paused') &&
      rec.containers.every((x) => x.state?.terminated)
    ) {
      rec.phase = !expired && rec.containers.every((x) => x.state?.terminated?.exitCode === 0) ? 'Succeeded' : 'Failed';
    }
    this.#save(rec);
    this.#log(rec).info({ step: 'container exit', container: c.name, ...status, reason }, 'container exited');
  }

  /**
   * spec.activeDeadlineSeconds, counted from the sandbox's recorded start (so
   * a restarted agent keeps counting): every container is stopped with the
   * grace period, nothing restarts, and the sandbox ends Failed with reason
   * DeadlineExceeded, as kubelet does for a pod. The reason is recorded before
   * the stop, so an agent that dies half-way finishes the job once it is back.
   */
  #expire(rec: SandboxRecord): Promise<void> {
    const running = this.#expiring.get(rec.id);
    if (running) return running;
    const log = this.#log(rec);
    const work = (async () => {
      rec.reason = 'DeadlineExceeded';
      rec.message = `The sandbox was active longer than its activeDeadlineSeconds (${rec.spec.activeDeadlineSeconds} s)`;
      this.#save(rec);
      log.info(
        { step: 'active deadline', activeDeadlineSeconds: rec.spec.activeDeadlineSeconds },
        'deadline exceeded: stopping the sandbox',
      );
      await this.stop(rec.id);
      if (this.#sandboxes.get(rec.id) !== rec || rec.phase === 'Deleting') return;
      // A container waiting to restart ends with the exit it last had.
      for (const c of rec.containers) if (c.state?.waiting && c.lastState?.terminated) c.state = c.lastState;
      rec.phase = 'Failed';
      this.#save(rec);
    })()
      .catch((err: unknown) =>
        log.error(
          { err, step: 'active deadline' },
          'stopping the sandbox at its deadline failed; the next check retries',
        ),
      )
      .finally(() => this.#expiring.delete(rec.id));
    this.#expiring.set(rec.id, work);
    return work;
  }

  async #restart(rec: SandboxRecord, c: ContainerRecord): Promise<void> {
    if (this.#busy.has(rec.id) || rec.stopping) return;
    this.#busy.add(rec.id);
    try {
      c.backoffStep = (c.backoffStep ?? c.restartCount) + 1;
      c.restartCount++;
      await this.#startContainer(rec, c);
    } catch (err) {
      this.#log(rec).error({ err, container: c.name }, 'restart failed');
      const reason = err instanceof SandpitError ? err.reason : undefined;
      if (reason !== undefined) c.state = { waiting: { reason, message: (err as Error).message } };
      c.restartAt = Date.now() + restartDelay(c.backoffStep ?? c.restartCount, this.config.restartBackoff);
      this.#save(rec);
    } finally {
      this.#busy.delete(rec.id);
    }
  }

  // ---------------------------------------------------------------------------
  // pause, status

  pause(id: string, paused: boolean): void {
    const rec = this.#require(id);
    this.cgroups.freeze(id, paused, { sandbox: describeSandbox(rec.ref), step: paused ? 'freeze' : 'thaw' });
    if (rec.phase === 'Running' || rec.phase === 'Paused') rec.phase = paused ? 'Paused' : 'Running';
    this.#save(rec);
  }

  status(id: string): SandboxStatus {
    const rec = this.#require(id);
    const usage = this.cgroups.usage(id);
    return {
      phase: rec.phase === 'Creating' ? 'Pending' : rec.phase === 'Deleting' ? 'Running' : rec.phase,
      hostIP: rec.network?.hostIP,
      sandboxIP: rec.network?.sandboxIP,
      startTime: rec.createdAt,
      ...(rec.reason ? { reason: rec.reason } : {}),
      ...(rec.message ? { message: rec.message } : {}),
      containerStatuses: rec.containers.map((c) => ({
        name: c.name,
        image: rec.spec.containers.find((x) => x.name === c.name)?.image ?? '',
        imageID: c.imageID,
        ready: c.pid !== undefined,
        restartCount: c.restartCount,
        state: c.state,
        lastState: c.lastState,
      })),
      usage: {
        cpu: this.#cpuRates.sample(id, usage.cpuNanos, Date.now(), Date.parse(rec.createdAt)),
        memory: String(usage.memoryBytes),
        pids: usage.pids,
      },
    };
  }

  /** Host PID of the container's workload (the shim's child), for exec and stop. */
  workloadPid(id: string, container: string): number | undefined {
    const c = this.#require(id).containers.find((x) => x.name === container);
    if (c?.pid === undefined) return undefined;
    return childrenOf(c.pid)[0];
  }

  shimPid(id: string, container: string): number | undefined {
    return this.#require(id).containers.find((x) => x.name === container)?.pid;
  }

  #require(id: string): SandboxRecord {
    const rec = this.#sandboxes.get(id);
    if (!rec) throw new SandpitError({ step: 'lookup', sandbox: id, message: 'no such sandbox on this node' });
    return rec;
  }

  // ---------------------------------------------------------------------------
  // delete

  /**
   * Stops every container, last first: SIGTERM to the workload, SIGKILL to its
   * whole cgroup after the grace period. Exits are recorded as usual; nothing
   * restarts afterwards. The sandbox itself (PID 1, cgroups, state) stays.
   */
  async stop(id: string, graceSeconds?: number): Promise<void> {
    const rec = this.#require(id);
    const who = describeSandbox(rec.ref);
    rec.stopping = true;
    for (const c of rec.containers) delete c.restartAt;
    // A restart already under way finishes first; a new one cannot start (stopping is set).
    await waitUntil(() => !this.#busy.has(id), 30_000);
    if (this.cgroups.frozen(id)) this.cgroups.freeze(id, false, { sandbox: who, step: 'thaw for stop' });
    const grace = (graceSeconds ?? rec.spec.terminationGracePeriodSeconds) * 1000;
    const signalled = new Set<string>();
    // A shim that has not forked its workload yet is signalled as soon as it has.
    const terminate = () => {
      for (const c of [...rec.containers].reverse()) {
        if (c.pid === undefined || signalled.has(c.name)) continue;
        const w = childrenOf(c.pid)[0];
        if (w === undefined) continue;
        kill(w, 15, { sandbox: who, step: `stop container ${c.name}` });
        signalled.add(c.name);
      }
    };
    const running = () => rec.containers.filter((c) => c.pid !== undefined);
    const deadline = Date.now() + grace;
    while (Date.now() < deadline && running().length) {
      terminate();
      this.#tick();
      await new Promise((r) => setTimeout(r, 5));
    }
    for (const c of running())
      await this.cgroups.killAll(containerCgroup(id, c.name), { sandbox: who, step: `kill container ${c.name}` });
    await waitUntil(() => {
      for (const c of running()) this.#checkExit(rec, c);
      return running().length === 0;
    }, 10_000);
    this.#save(rec);
  }

  /** Stops containers (SIGTERM, then SIGKILL after the grace period) and removes everything. Idempotent. */
  async delete(id: string): Promise<void> {
    const rec = this.#sandboxes.get(id);
    if (!rec) return;
    await this.#expiring.get(id); // a deadline stop under way finishes first
    await this.stop(id);
    rec.phase = 'Deleting';
    this.#save(rec);
    await this.#teardown(rec);
  }

  async #teardown(rec: SandboxRecord): Promise<void> {
    const who = describeSandbox(rec.ref);
    const log = this.#log(rec);
    this.#sandboxes.delete(rec.id);
    this.#cpuRates.forget(rec.id);
    for (const c of rec.containers) {
      const l = this.#logs.get(`${rec.id}/${c.name}`);
      if (l) await l.close();
      this.#logs.delete(`${rec.id}/${c.name}`);
    }
    await this.cgroups.killAll(rec.id, { sandbox: who, step: 'kill sandbox processes' });
    // PID 1 cannot finish exiting while any process of its namespace is an
    // unreaped zombie, and the shims are our children: reap them first.
    const shims = rec.containers.flatMap((c) => [c.pid, c.pidnsInit].filter((p): p is number => p !== undefined));
    const pending = new Set(rec.pid1 ? [rec.pid1.pid, ...shims] : shims);
    await waitUntil(() => {
      for (const pid of pending) if (reapChild(pid, { sandbox: who, step: 'reap' }) !== null) pending.delete(pid);
      return pending.size === 0;
    }, 10_000);
    await this.#deps.network.teardown(rec.ref, log);
    await this.#deps.images.release(rec.id);
    this.#unmountUnder(this.store.sandboxDir(rec.id), who);
    await this.cgroups.remove(rec.id, { sandbox: who, step: 'remove cgroups' });
    this.store.remove(rec.id);
  }

  /** Unmounts what we mounted on the host under a sandbox dir (shm, volumes), deepest first. */
  #unmountUnder(dir: string, who: string): void {
    for (const m of mountsUnder(dir)) umount2(m, MNT_DETACH, { sandbox: who, step: `unmount ${m}` });
  }

  // ---------------------------------------------------------------------------
  // recovery

  async #recover(): Promise<void> {
    const log = this.#deps.log;
    const known = new Set<string>();
    for (const id of this.store.list()) {
      const rec = readJson<SandboxRecord>(join(this.store.sandboxDir(id), 'sandbox.json'));
      if (!rec) {
        log.warn({ id, step: 'recover' }, 'state dir without a record: removing');
        await this.#cleanOrphan(id);
        continue;
      }
      if (
        rec.phase === 'Creating' ||
        rec.phase === 'Deleting' ||
        !rec.pid1 ||
        !isSameProcess(rec.pid1.pid, rec.pid1.startTime)
      ) {
        log.warn({ id, phase: rec.phase, step: 'recover' }, 'half-built, half-deleted or dead sandbox: tearing down');
        await this.#teardown(rec).catch((err: unknown) => log.error({ err, id }, 'teardown during recovery failed'));
        continue;
      }
      known.add(id);
      this.#sandboxes.set(id, rec);
      for (const c of rec.containers) {
        this.#attachLogs(rec, c.name);
        if (c.pid !== undefined && c.ptyFd !== undefined) this.#reattachTerminal(rec, c);
        if (c.pid !== undefined) this.#checkExit(rec, c);
      }
      this.#save(rec);
      log.info({ id, step: 'recover' }, 're-adopted running sandbox');
    }
    // cgroups and mounts that no record explains.
    for (const id of this.cgroups.listSandboxes()) if (!known.has(id)) await this.#cleanOrphan(id);
    for (const m of mountsUnder(this.store.root)) {
      const id = m.slice(this.store.root.length + 1).split('/')[0]!;
      if (!known.has(id)) umount2(m, MNT_DETACH, { step: 'unmount orphan' });
    }
  }

  /**
   * A tty container's terminal is held by its shim; after an agent restart the
   * log takes the master end back from it (what the workload wrote meanwhile
   * waited in the terminal). Without it the log only misses output: the
   * container keeps running either way.
   */
  #reattachTerminal(rec: SandboxRecord, c: ContainerRecord): void {
    const site = { sandbox: describeSandbox(rec.ref), step: `reattach the terminal of ${c.name}` };
    if (!isSameProcess(c.pid!, c.startTime ?? 0)) return;
    let pidfd: number | undefined;
    try {
      pidfd = pidfdOpen(c.pid!, site);
      const master = pidfdGetfd(pidfd, c.ptyFd!, site);
      this.#logs.get(`${rec.id}/${c.name}`)!.attachTerminal(master);
    } catch (err) {
      this.#log(rec).warn(
        { err, ...site, container: c.name },
        "cannot take the terminal back from the shim; this run's further output is not logged",
      );
    } finally {
      if (pidfd !== undefined) close(pidfd);
    }
  }

  async #cleanOrphan(id: string): Promise<void> {
    const site = { sandbox: id, step: 'clean orphan' };
    if (this.cgroups.exists(id)) {
      await this.cgroups.killAll(id, site);
      await this.cgroups.remove(id, site);
    }
    this.#unmountUnder(this.store.sandboxDir(id), id);
    if (existsSync(this.store.sandboxDir(id))) this.store.remove(id);
  }
}

/**
 * Set in a hostUsers: false sandbox's network namespace, as Docker and
 * containerd do: that namespace belongs to the host's user namespace, so the
 * container's root holds no CAP_NET_BIND_SERVICE or CAP_NET_RAW over it.
 */
const USERNS_NET_SYSCTLS = { 'net/ipv4/ip_unprivileged_port_start': '0', 'net/ipv4/ping_group_range': '0 2147483647' };

/** Host mount points at or below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (mp && (mp === dir || mp.startsWith(`${dir}/`))) out.push(mp.replace(/\\040/g, ' '));
  }
  return out.sort((a, b) => b.length - a.length);
}

/** Rethrows an error of a create as one that names the container and the stage it failed in. */
function atStage(container: string, stage: CreateStage): (err: unknown) => never {
  return (err: unknown) => {
    throw RuntimeError.inCreate(err, container, stage);
  };
}

/** Running or paused past spec.activeDeadlineSeconds, and not stopped for another reason. */
function deadlinePassed(rec: SandboxRecord): boolean {
  const seconds = rec.spec.activeDeadlineSeconds;
  if (seconds === undefined || (rec.phase !== 'Running' && rec.phase !== 'Paused')) return false;
  if (rec.stopping && rec.reason !== 'DeadlineExceeded') return false;
  return Date.now() >= Date.parse(rec.createdAt) + seconds * 1000;
}

/** Test hook: SANDPIT_FAULT=<point> SIGKILLs the agent there, to prove crash recovery. */
function faultPoint(point: string): void {
  if (process.env.SANDPIT_FAULT === point) process.kill(process.pid, 'SIGKILL');
}

async function waitUntil(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

/** Milliseconds spent per creation step, for the log line that says a sandbox runs. */
class StepTimer {
  readonly marks: Record<string, number> = {};
  #last = performance.now();
  mark(step: string): void {
    const t = performance.now();
    this.marks[step] = Math.round((t - this.#last) * 10) / 10;
    this.#last = t;
  }
}
