import type { z } from 'zod';
import type { ContainerStatus as ContainerStatusSchema } from '../../../crds/sandbox.js';
import { containerCgroup } from '../../cgroups/paths.js';
import { sandboxIdFor } from '../../contracts.js';
import type { ExecSession } from '../../runtime/record.js';
import type { SandboxSupervisor } from '../../runtime/supervisor.js';
import { StreamRefusal } from './refusal.js';

export type ContainerStatus = z.infer<typeof ContainerStatusSchema>;

/** Cumulative usage counters of a cgroup. */
export interface Usage {
  cpuNanos: number;
  memoryBytes: number;
}

/**
 * What the streaming endpoints need from the runtime, by Kubernetes UID.
 * Kept apart from the SandboxRuntime seam of contracts.ts so that the
 * controller-facing API stays level-based and small.
 */
export interface StreamBackend {
  exec(uid: string, container: string, argv: string[], opts: { tty: boolean; stdin: boolean }): Promise<ExecSession>;
  /** The container's current CRI log file; rotated files are `<path>.1` (newest) to `<path>.N`. */
  logPath(uid: string, container: string): string;
  containers(uid: string): ContainerStatus[];
  /** A PID inside the sandbox's network namespace (its PID 1). */
  netnsPid(uid: string): number;
  usage(uid: string): { sandbox: Usage; containers: Record<string, Usage> };
}

export function runtimeBackend(rt: SandboxSupervisor): StreamBackend {
  const record = (uid: string) => {
    const rec = rt.get(sandboxIdFor(uid));
    if (!rec || rec.phase === 'Deleting')
      throw new StreamRefusal(404, 'NotFound', `no sandbox with UID ${uid} on this node`);
    return rec;
  };
  const container = (uid: string, name: string) => {
    const rec = record(uid);
    if (!rec.containers.some((c) => c.name === name)) {
      throw new StreamRefusal(
        404,
        'NotFound',
        `container "${name}" not found in sandbox ${rec.ref.namespace}/${rec.ref.name} (containers: ${rec.containers.map((c) => c.name).join(', ')})`,
      );
    }
    return rec;
  };
  return {
    exec: (uid, name, argv, opts) => rt.exec(container(uid, name).id, name, argv, opts),
    logPath: (uid, name) => rt.logPath(container(uid, name).id, name),
    containers: (uid) => rt.status(record(uid).id).containerStatuses ?? [],
    netnsPid: (uid) => {
      const rec = record(uid);
      if (!rec.pid1)
        throw new StreamRefusal(
          409,
          'NotRunning',
          `sandbox ${rec.ref.namespace}/${rec.ref.name} has no running init process`,
        );
      return rec.pid1.pid;
    },
    usage: (uid) => {
      const rec = record(uid);
      const pick = (u: { cpuNanos: number; memoryBytes: number }) => ({
        cpuNanos: u.cpuNanos,
        memoryBytes: u.memoryBytes,
      });
      const containers: Record<string, Usage> = {};
      for (const c of rec.containers) containers[c.name] = pick(rt.cgroups.usage(containerCgroup(rec.id, c.name)));
      return { sandbox: pick(rt.cgroups.usage(rec.id)), containers };
    },
  };
}
