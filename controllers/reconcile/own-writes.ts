import type { Sandbox } from '../../crds/sandbox.js';

/** Versions whose events never came (a relist skipped them) are not kept past this many per sandbox. */
const MAX_PENDING = 8;

/**
 * Per uid, the resourceVersions our own writes produced and the reconcile
 * that wrote them already carried on from (finalizer added → bound → applied
 * on the node): their watch events bring nothing new, so they need no
 * reconcile of their own.
 */
export class OwnWrites {
  readonly #pending = new Map<string, Set<string>>();

  /**
   * The Sandbox as a write of ours left it, to go on from within the same
   * reconcile: metadata and status from the API server's answer, the spec we
   * parsed (the write was guarded by resourceVersion, so the spec is the same;
   * parsing the whole answer again cost more CPU than the rest of the step).
   */
  carryOn(sbx: Sandbox, written: unknown): Sandbox {
    const w = written as Pick<Sandbox, 'metadata' | 'status'>;
    // managedFields go, as from the cache: the object goes on to the agent, which has no use for them.
    const { managedFields: _fields, ...metadata } = w.metadata as Sandbox['metadata'] & { managedFields?: unknown };
    const next: Sandbox = { ...sbx, metadata, ...(w.status ? { status: w.status } : {}) };
    const uid = next.metadata.uid ?? '';
    const rvs = this.#pending.get(uid) ?? new Set<string>();
    if (rvs.size > MAX_PENDING) rvs.clear();
    rvs.add(next.metadata.resourceVersion ?? '');
    this.#pending.set(uid, rvs);
    return next;
  }

  /**
   * Whether a watched version of a Sandbox is one our own write produced and
   * the reconcile that wrote it went on from (so queueing it again would only
   * repeat that work). Each version is answered once.
   */
  isContinued(sbx: Pick<Sandbox, 'metadata'>): boolean {
    const uid = sbx.metadata.uid ?? '';
    const rvs = this.#pending.get(uid);
    if (!rvs || !rvs.delete(sbx.metadata.resourceVersion ?? '')) return false;
    if (rvs.size === 0) this.#pending.delete(uid);
    return true;
  }

  forget(uid: string): void {
    this.#pending.delete(uid);
  }
}
