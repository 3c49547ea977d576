import type { Sandbox } from '../../crds/sandbox.js';

/**
 * The uid@generation pairs an agent confirmed applying since this controller
 * started, so that a reconcile with nothing new does not PUT again. The
 * resync forgets a sandbox whose agent lost it, and the next reconcile
 * applies it afresh.
 */
export class AppliedGenerations {
  readonly #applied = new Set<string>();

  has(sbx: Pick<Sandbox, 'metadata'>): boolean {
    return this.#applied.has(appliedKey(sbx));
  }

  /** The agent took this generation; any older one is forgotten. */
  record(sbx: Pick<Sandbox, 'metadata'>): void {
    this.forget(sbx.metadata.uid ?? '');
    this.#applied.add(appliedKey(sbx));
  }

  forget(uid: string): void {
    for (const k of this.#applied) if (k.startsWith(`${uid}@`)) this.#applied.delete(k);
  }
}

const appliedKey = (sbx: Pick<Sandbox, 'metadata'>) => `${sbx.metadata.uid}@${sbx.metadata.generation}`;
