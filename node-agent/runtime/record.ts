import type { Socket } from 'node:net';
import type { z } from 'zod';
import type { ContainerState, Sandbox, SandboxSpec } from '../../crds/sandbox.js';
import { sandboxIdFor, type NetworkResult, type PreparedImage, type SandboxRef } from '../contracts.js';

/*
 * What the runtime keeps of a sandbox, on disk as <state dir>/<id>/sandbox.json
 * (written in place after every change), so that a restarted agent re-adopts
 * what runs. Field names are a file format: a rename breaks re-adoption.
 */

export type Phase = 'Creating' | 'Running' | 'Paused' | 'Succeeded' | 'Failed' | 'Deleting';

export type ContainerStateValue = z.infer<typeof ContainerState>;

export interface ContainerRecord {
  name: string;
  imageID: string;
  restartCount: number;
  /** The shim (host PID) of the current run and its start time, while it runs. */
  pid?: number;
  startTime?: number;
  startedAt?: string;
  oomBase: number;
  state: ContainerStateValue;
  lastState?: ContainerStateValue;
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
  /** The sandbox's PID 1 (sandpit-init), holding its namespaces. */
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

/** A command running in a container (exec), with its streams. */
export interface ExecSession {
  pid: number;
  /** null unless stdin was requested (or a TTY, which is read and written through stdout). */
  stdin: Socket | null;
  stdout: Socket;
  stderr: Socket | null;
  exited: Promise<{ exitCode: number; signal?: number }>;
  /**
   * Resolves once everything the command wrote has been read from stdout and
   * stderr and both are closed: after `exited`, the output is complete only then.
   */
  drained: Promise<void>;
  /** Sets the terminal size (TTY sessions only; a no-op otherwise or once the session ended). */
  resize(cols: number, rows: number): void;
}

/** The record a create starts from: nothing built yet, every container ContainerCreating. */
export function newRecord(sandbox: Sandbox, createdAt: string): SandboxRecord {
  const meta = sandbox.metadata as { namespace?: string; name?: string; uid?: string; generation?: number };
  const namespace = meta.namespace ?? 'default';
  const name = meta.name ?? 'sandbox';
  const uid = meta.uid ?? `${namespace}/${name}`;
  const id = sandboxIdFor(uid);
  return {
    id,
    ref: { id, namespace, name, uid },
    spec: sandbox.spec,
    phase: 'Creating',
    createdAt,
    hostname: sandbox.spec.hostname ?? name.slice(0, 63),
    images: {},
    generation: meta.generation ?? 0,
    containers: sandbox.spec.containers.map((c) => ({
      name: c.name,
      imageID: '',
      restartCount: 0,
      oomBase: 0,
      state: { waiting: { reason: 'ContainerCreating' } },
    })),
  };
}
