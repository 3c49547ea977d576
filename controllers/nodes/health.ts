import type { SandboxNode } from '../../crds/sandboxnode.js';
import { isTrue } from '../../lib/kube/conditions.js';
import { milliCpu, bytes } from '../../crds/quantity.js';
import { PRESSURE_CONDITIONS, type NodeInfo } from '../scheduling/scheduler.js';

/** Ready: heartbeating and saying so. NotReady: silent for a lease duration (or saying not ready). Lost: silent past the grace too. */
export type NodeHealth = 'Ready' | 'NotReady' | 'Lost';

/** The last change of a node's Lease, timed by *our* clock, as client-go does. */
export interface LeaseSeen {
  record: string;
  seenAt: number;
  durationMs: number;
}

/**
 * The health of a node from what we saw of its Lease. Expiry is measured
 * from the moment this controller saw the lease change, never from the
 * renewTime the agent wrote, so a node with a skewed clock is judged right.
 */
export function nodeHealth(
  seen: LeaseSeen | undefined,
  agentSaysReady: boolean,
  now: number,
  graceMs: number,
  firstSeen: number,
): NodeHealth {
  const since = seen?.seenAt ?? firstSeen;
  const duration = seen?.durationMs ?? 40_000;
  const silent = now - since;
  if (silent > duration + graceMs) return 'Lost';
  if (silent > duration || !seen) return 'NotReady';
  return agentSaysReady ? 'Ready' : 'NotReady';
}

/** A SandboxNode as the scheduler sees it, given its health. */
export function toNodeInfo(node: SandboxNode, health: NodeHealth): NodeInfo {
  const a = node.status?.allocatable ?? {};
  return {
    name: node.metadata.name ?? '',
    labels: node.metadata.labels ?? {},
    ready: health === 'Ready',
    unschedulable: node.spec?.unschedulable ?? false,
    pressure: PRESSURE_CONDITIONS.filter((c) => isTrue(node.status?.conditions, c)),
    allocatable: {
      ...(a.cpu !== undefined ? { milliCpu: milliCpu(a.cpu) } : {}),
      ...(a.memory !== undefined ? { memory: bytes(a.memory) } : {}),
      ...(a.sandboxes !== undefined ? { sandboxes: a.sandboxes } : {}),
    },
  };
}

export const agentSaysReady = (node: SandboxNode | undefined) => isTrue(node?.status?.conditions, 'Ready');

/**
 * Tracks lease changes per node as they arrive from the Lease informer.
 * Silence only counts while we could have heard: while the Lease informer
 * has lost the API server (blind), every node's health stays as it was when
 * contact broke, and once it lists again the blind time is added to every
 * lease seen before it. Otherwise an API server outage longer than the
 * grace would fail every sandbox of every node with NodeLost on its return,
 * before the first renewal arrives.
 */
export class LeaseTracker {
  readonly #seen = new Map<string, LeaseSeen>();
  readonly #firstSeen = new Map<string, number>();
  #blindSince: number | undefined;

  /** The Lease informer lost its stream (an error, the API server away). */
  blind(now = Date.now()): void {
    this.#blindSince ??= now;
  }

  /** The Lease informer listed again (after its upserts were observed). */
  seeing(now = Date.now()): void {
    const since = this.#blindSince;
    if (since === undefined) return;
    this.#blindSince = undefined;
    const gap = Math.max(0, now - since);
    for (const s of this.#seen.values()) if (s.seenAt < since) s.seenAt += gap;
    for (const [node, t] of this.#firstSeen) if (t < since) this.#firstSeen.set(node, t + gap);
  }

  get isBlind(): boolean {
    return this.#blindSince !== undefined;
  }

  observe(
    node: string,
    spec: { holderIdentity?: string | null; renewTime?: string | null; leaseDurationSeconds?: number },
    now = Date.now(),
  ): void {
    const record = `${spec.holderIdentity}|${spec.renewTime}`;
    const prev = this.#seen.get(node);
    if (prev?.record === record) return;
    this.#seen.set(node, { record, seenAt: now, durationMs: (spec.leaseDurationSeconds ?? 40) * 1000 });
  }

  forget(node: string): void {
    this.#seen.delete(node);
    this.#firstSeen.delete(node);
  }

  health(node: string, sandboxNode: SandboxNode | undefined, graceMs: number, now = Date.now()): NodeHealth {
    const at = this.#blindSince ?? now;
    if (!this.#firstSeen.has(node)) this.#firstSeen.set(node, at);
    return nodeHealth(this.#seen.get(node), agentSaysReady(sandboxNode), at, graceMs, this.#firstSeen.get(node)!);
  }
}
