import type { Sandbox } from '../../crds/sandbox.js';
import { sandboxDemand } from '../../crds/demand.js';
import { addUsage, type NodeUsage } from './scheduler.js';

/**
 * Bindings written but not yet seen in the cache, so that capacity counts
 * them (kube-scheduler's assume cache): without it, a burst of sandboxes
 * scheduled before their bindings come back through the informer would all
 * see the same free node and pile onto it.
 */
export class AssumeCache {
  readonly #nodeOf = new Map<string, string>();

  assume(uid: string, node: string): void {
    this.#nodeOf.set(uid, node);
  }

  /** The node a sandbox was bound to by us and the cache does not show yet. */
  nodeOf(uid: string): string | undefined {
    return this.#nodeOf.get(uid);
  }

  /** The cache shows the binding (or the sandbox is going away): the assumption has done its work. */
  forget(uid: string): void {
    this.#nodeOf.delete(uid);
  }

  /**
   * Capacity in use per node: every sandbox bound or assumed there that has
   * not ended. Assumptions about sandboxes the cache no longer lists are
   * dropped here, so a deleted sandbox frees its room.
   */
  usage(sandboxes: readonly Sandbox[]): Map<string, NodeUsage> {
    const usage = new Map<string, NodeUsage>();
    const seen = new Set<string>();
    for (const s of sandboxes) {
      const uid = s.metadata.uid ?? '';
      seen.add(uid);
      const node = s.status?.nodeName ?? this.#nodeOf.get(uid);
      if (!node || s.status?.phase === 'Succeeded' || s.status?.phase === 'Failed') continue;
      addUsage(usage, node, sandboxDemand(s.spec));
    }
    for (const uid of this.#nodeOf.keys()) if (!seen.has(uid)) this.#nodeOf.delete(uid);
    return usage;
  }
}
