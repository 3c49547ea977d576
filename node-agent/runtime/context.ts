import type { Logger } from '../../lib/log.js';
import type { CpuRates } from '../cgroups/cpu-rate.js';
import type { WarmPid1Pool } from '../namespaces/warm-pid1.js';
import type { ContainerLog } from '../process/logs.js';
import type { RuntimeConfig } from './config.js';
import type { RuntimeDeps } from './deps.js';
import type { ContainerRecord, SandboxRecord } from './record.js';

/**
 * What the lifecycle steps (create.ts, start-container.ts, exec.ts, stop.ts,
 * recover.ts, ...) share: the node's effects and the runtime's in-memory
 * state. The supervisor owns it; a step reads and changes it, and saves a
 * record it changed with save().
 */
export interface RuntimeContext {
  readonly config: RuntimeConfig;
  readonly deps: RuntimeDeps;
  /** Sandbox PID 1s made ahead of time. */
  readonly warm: WarmPid1Pool;
  readonly sandboxes: Map<string, SandboxRecord>;
  /** Each container's log, by containerKey(). */
  readonly logs: Map<string, ContainerLog>;
  /** Sandboxes a create, restart or replacement works on: the poll leaves them alone. */
  readonly busy: Set<string>;
  /** containerKey()s of runs being replaced by restartContainer: their exit neither restarts them nor ends the sandbox. */
  readonly replacing: Set<string>;
  /** Our children that are done with but may not have exited yet (a container's own PID 1). */
  readonly zombies: Set<number>;
  readonly cpuRates: CpuRates;
  /** Sandboxes being stopped by their activeDeadlineSeconds, and the stop under way. */
  readonly expiring: Map<string, Promise<void>>;
  /** Writes the record to disk and tells the subscribers. */
  save(rec: SandboxRecord): void;
  log(rec: { id: string; ref: SandboxRecord['ref'] }): Logger;
  /** Looks for exited containers and due restarts in every sandbox (the supervisor's poll). */
  poll(): void;
}

/** The key of a container in the context's maps and sets. */
export function containerKey(rec: { id: string }, c: Pick<ContainerRecord, 'name'> | string): string {
  return `${rec.id}/${typeof c === 'string' ? c : c.name}`;
}

export const now = (): string => new Date().toISOString();
