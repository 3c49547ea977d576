import { join } from 'node:path';
import type { Sandbox, SandboxStatus } from '../../crds/sandbox.js';
import { SandpitError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { CgroupManager } from '../cgroups/manager.js';
import { CpuRates } from '../cgroups/cpu-rate.js';
import { describeSandbox, type SandboxRef } from '../contracts.js';
import { WarmPid1Pool } from '../namespaces/warm-pid1.js';
import type { ContainerLog } from '../process/logs.js';
import { childrenOf } from '../process/pidinfo.js';
import type { StateStore } from '../state/store.js';
import { writeJsonInPlace } from '../state/store.js';
import type { RuntimeConfig } from './config.js';
import type { RuntimeContext } from './context.js';
import { createSandbox } from './create.js';
import type { RuntimeDeps } from './deps.js';
import { execInContainer } from './exec.js';
import { setPaused } from './pause.js';
import type { ExecSession, SandboxRecord } from './record.js';
import { recoverSandboxes } from './recover.js';
import { replaceContainer } from './replace-container.js';
import { logPath } from './start-container.js';
import { deleteSandbox, stopSandbox } from './stop.js';
import { pollSandboxes } from './supervise.js';
import { sandboxStatus } from './transitions.js';

/*
 * The node agent's sandbox runtime: builds sandboxes out of namespaces,
 * cgroups and overlay roots, supervises their containers, and keeps every
 * fact it needs on disk so that a restarted agent re-adopts what runs.
 * No Node.js process exists per sandbox: PID 1 and each container's shim are
 * sandpit-init (node-agent/native/), a libc-free static program of a few KiB.
 *
 * This class holds the state the steps share (RuntimeContext) and the
 * poll; every step is a function of its own module: create.ts, pid1.ts,
 * start-container.ts, exec.ts, replace-container.ts, supervise.ts (exits,
 * restarts, deadlines), stop.ts (stop, delete, teardown), recover.ts.
 */
export class SandboxSupervisor {
  readonly config: RuntimeConfig;
  readonly cgroups: CgroupManager;
  readonly store: StateStore;
  readonly #deps: RuntimeDeps;
  readonly #ctx: RuntimeContext;
  readonly #warm: WarmPid1Pool;
  readonly #sandboxes = new Map<string, SandboxRecord>();
  readonly #logs = new Map<string, ContainerLog>();
  readonly #listeners = new Set<(rec: SandboxRecord) => void>();
  #timer: NodeJS.Timeout | undefined;
  readonly #onChild = () => pollSandboxes(this.#ctx);

  private constructor(config: RuntimeConfig, deps: RuntimeDeps) {
    this.config = config;
    this.#deps = deps;
    this.cgroups = deps.cgroups;
    this.store = deps.store;
    this.#warm = new WarmPid1Pool(config.warmSandboxes, deps.launchers, config.binaries, deps.log);
    this.#ctx = {
      config,
      deps,
      warm: this.#warm,
      sandboxes: this.#sandboxes,
      logs: this.#logs,
      busy: new Set(),
      replacing: new Set(),
      zombies: new Set(),
      cpuRates: new CpuRates(),
      expiring: new Map(),
      save: (rec) => this.#save(rec),
      log: (rec) => this.#log(rec),
      poll: () => pollSandboxes(this.#ctx),
    };
  }

  /** Starts the runtime: warms launchers, re-adopts what survived, cleans what is half-built or orphaned. */
  static async start(config: RuntimeConfig, deps: RuntimeDeps): Promise<SandboxSupervisor> {
    const rt = new SandboxSupervisor(config, deps);
    await recoverSandboxes(rt.#ctx);
    rt.#ctx.poll(); // a re-adopted sandbox whose deadline passed while the agent was down is stopped now
    await rt.#warm.fill();
    rt.#timer = setInterval(rt.#onChild, config.pollMs);
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
    await this.#deps.launchers.close();
  }

  /** Launcher threads started so far and alive now (a container launch reuses its thread). */
  launcherStats(): { started: number; live: number; max: number } {
    return this.#deps.launchers.stats();
  }

  list(): SandboxRecord[] {
    return [...this.#sandboxes.values()];
  }

  get(id: string): SandboxRecord | undefined {
    return this.#sandboxes.get(id);
  }

  /** Called after every change of a sandbox record (it is on disk by then). Returns an unsubscribe function. */
  subscribe(fn: (rec: SandboxRecord) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Builds and starts the sandbox (create.ts); the record of one this runtime already has is returned as it is. */
  create(sandbox: Sandbox): Promise<SandboxRecord> {
    return createSandbox(this.#ctx, sandbox);
  }

  /** A changed container definition: the old run stopped, a new one started in the same sandbox (replace-container.ts). */
  restartContainer(id: string, name: string, sandbox: Sandbox): Promise<void> {
    return replaceContainer(this.#ctx, this.#require(id), name, sandbox);
  }

  /** Runs a command in a running container (exec.ts). */
  exec(
    id: string,
    container: string,
    argv: string[],
    opts: { tty?: boolean; stdin?: boolean } = {},
  ): Promise<ExecSession> {
    return execInContainer(this.#ctx, this.#require(id), container, argv, opts);
  }

  logPath(id: string, container: string): string {
    return logPath(this.#ctx, id, container);
  }

  pause(id: string, paused: boolean): void {
    setPaused(this.#ctx, this.#require(id), paused);
  }

  status(id: string): SandboxStatus {
    const rec = this.#require(id);
    const usage = this.cgroups.usage(id);
    return sandboxStatus(rec, {
      cpu: this.#ctx.cpuRates.sample(id, usage.cpuNanos, Date.now(), Date.parse(rec.createdAt)),
      memory: String(usage.memoryBytes),
      pids: usage.pids,
    });
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

  /**
   * Stops every container, last first: SIGTERM to the workload, SIGKILL to its
   * whole cgroup after the grace period. Exits are recorded as usual; nothing
   * restarts afterwards. The sandbox itself (PID 1, cgroups, state) stays.
   */
  stop(id: string, graceSeconds?: number): Promise<void> {
    return stopSandbox(this.#ctx, this.#require(id), graceSeconds);
  }

  /** Stops containers (SIGTERM, then SIGKILL after the grace period) and removes everything. Idempotent. */
  async delete(id: string): Promise<void> {
    const rec = this.#sandboxes.get(id);
    if (rec) await deleteSandbox(this.#ctx, rec);
  }

  #require(id: string): SandboxRecord {
    const rec = this.#sandboxes.get(id);
    if (!rec) throw new SandpitError({ step: 'lookup', sandbox: id, message: 'no such sandbox on this node' });
    return rec;
  }

  #log(rec: { id: string; ref: SandboxRef }): Logger {
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
}
