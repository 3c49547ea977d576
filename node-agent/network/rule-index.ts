import type { SandboxId } from '../contracts.js';
import { NftError, type Nft, type NftObject } from './nftables.js';

/*
 * Every rule of a sandbox carries the comment `sandpit:<id> ...`, so teardown
 * and GC find its rules by listing the table: no stored state. This module
 * reads those comments back, and keeps the index of rules by sandbox that
 * deletes go by (nft deletes a rule by handle).
 */

/** The comment every rule of a sandbox carries; the part after the id says what the rule is. */
export const sandboxComment = (id: SandboxId, what: string) => `sandpit:${id} ${what}`;

/** The sandbox a rule belongs to, from its comment. */
export function ruleOwner(comment: string | undefined): SandboxId | undefined {
  return /^sandpit:([0-9a-f]{12})(?: |$)/.exec(comment ?? '')?.[1];
}

export interface ListedRule {
  family: string;
  chain: string;
  handle: number;
  comment: string | undefined;
}

/** The rules of a `list table`/`list chain` JSON listing. */
export function rulesOf(listing: NftObject[]): ListedRule[] {
  return listing
    .filter((o) => o.rule)
    .map((o) => ({
      family: String(o.rule!.family ?? 'inet'),
      chain: String(o.rule!.chain),
      handle: Number(o.rule!.handle),
      comment: o.rule!.comment as string | undefined,
    }));
}

/** Deletes every rule of the sandboxes `doomed` says yes to, from our table `c.table` of the rule's family. */
export function deleteSandboxRulesScript(
  c: { table: string },
  rules: ListedRule[],
  doomed: (id: SandboxId) => boolean,
): string {
  return rules
    .filter((r) => {
      const owner = ruleOwner(r.comment);
      return owner !== undefined && doomed(owner);
    })
    .map((r) => `delete rule ${r.family} ${c.table} ${r.chain} handle ${r.handle}\n`)
    .join('');
}

/**
 * The rules a script adds, without handles (-1): what the index remembers
 * after a setup, until a listing tells it the handles.
 */
export function plannedRules(script: string): ListedRule[] {
  const out: ListedRule[] = [];
  for (const line of script.split('\n')) {
    const m = /^add rule (\S+) \S+ (\S+) .* comment "([^"]*)"$/.exec(line.trim());
    if (m) out.push({ family: m[1]!, chain: m[2]!, handle: -1, comment: m[3] });
  }
  return out;
}

/** Sandboxes that have rules in the listing. */
export const sandboxesWithRules = (rules: ListedRule[]) =>
  new Set(rules.map((r) => ruleOwner(r.comment)).filter((id): id is SandboxId => id !== undefined));

/**
 * Per-sandbox rules of our tables (`inet <table>` and `bridge <table>`), read
 * from the kernel once and then kept in memory. Listing the table (or asking
 * nft to echo handles) costs ~30-70 µs per rule in the table, too slow for
 * every setup on a busy node, so a setup only adds rules and records them
 * without handles (-1); the first delete that needs a handle lists the table
 * once and learns the handles of every sandbox. GC invalidates it, and so does
 * a delete nft refuses as stale (someone else removed the rule).
 */
export class RuleIndex {
  readonly #nft: Nft;
  readonly #table: string;
  #index: Map<SandboxId, ListedRule[]> | undefined;

  constructor(nft: Nft, table: string) {
    this.#nft = nft;
    this.#table = table;
  }

  /** Every per-sandbox rule, listing the tables first when the index is not known. */
  rules(): ListedRule[] {
    return [...this.#byOwner().values()].flat();
  }

  /** Forgets the index: the next read lists the tables again. */
  invalidate(): void {
    this.#index = undefined;
  }

  /**
   * Applies a sandbox's rule script, together with the deletion of the rules
   * an earlier setup of the same sandbox left, in one transaction: a repeated
   * setup never duplicates.
   */
  install(id: SandboxId, script: string): void {
    this.#retryWithFreshIndex(() => {
      const stale = deleteSandboxRulesScript(
        { table: this.#table },
        this.#withHandles((owner) => owner === id),
        () => true,
      );
      if (!stale && !script) return;
      this.#nft.apply(stale + script);
      this.#byOwner().set(id, plannedRules(script));
    });
  }

  /** Deletes every rule of the sandboxes `doomed` picks. */
  remove(doomed: (id: SandboxId) => boolean): void {
    this.#retryWithFreshIndex(() => {
      const script = deleteSandboxRulesScript({ table: this.#table }, this.#withHandles(doomed), () => true);
      if (script) this.#nft.apply(script);
      const index = this.#byOwner();
      for (const i of [...index.keys()].filter(doomed)) index.delete(i);
    });
  }

  /** The indexed rules of the sandboxes `which` picks, listing the table first if some handle is not known yet. */
  #withHandles(which: (id: SandboxId) => boolean): ListedRule[] {
    const pick = () => [...this.#byOwner()].filter(([id]) => which(id)).flatMap(([, rules]) => rules);
    if (pick().some((r) => r.handle < 0)) this.#index = undefined;
    return pick();
  }

  /** Runs `fn`; if nft refuses (a handle someone else deleted), re-reads the table and runs it once more. */
  #retryWithFreshIndex(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof NftError)) throw err;
      this.#index = undefined;
      fn();
    }
  }

  #byOwner(): Map<SandboxId, ListedRule[]> {
    if (!this.#index) {
      this.#index = new Map();
      for (const r of rulesOf(this.#listTables())) {
        const owner = ruleOwner(r.comment);
        if (owner) this.#index.set(owner, [...(this.#index.get(owner) ?? []), r]);
      }
    }
    return this.#index;
  }

  /** Our tables (inet, and bridge for anti-spoofing) as one listing. */
  #listTables(): NftObject[] {
    return ['inet', 'bridge'].flatMap((family) => {
      try {
        return this.#nft.list(`list table ${family} ${this.#table}`);
      } catch (err) {
        if (err instanceof NftError && err.notFound) return [];
        throw err;
      }
    });
  }
}
