import type { Condition } from '../crds/common.js';
import type { Sandbox, SandboxStatus } from '../crds/sandbox.js';
import { mergeConditions, removeCondition } from '../lib/kube/conditions.js';
import type { SandboxObservation } from './agent-api.js';

/** Status fields the agent owns once the sandbox runs on its node; an absent one is cleared. */
const AGENT_FIELDS = [
  'phase',
  'hostIP',
  'sandboxIP',
  'sandboxIPs',
  'publishedPorts',
  'containerStatuses',
  'startTime',
  'message',
  'reason',
  'usage',
] as const;

/**
 * Condition types whose presence the agent decides: kstatus wants Reconciling and
 * Stalled only while true, and Ready absent once a sandbox is Paused or Succeeded.
 */
const AGENT_DECIDED = ['Ready', 'Reconciling', 'Stalled'];

/**
 * The status patch that makes the Sandbox say what the runtime observed, or
 * undefined when it already does (no write). Pure. Conditions the agent does
 * not own (Scheduled, set by the controller) are kept. With `usage: false`
 * a difference in status.usage alone is no reason to write (a sample that
 * moves all the time; the periodic re-report refreshes it), though a patch
 * written for another reason carries the fresh one.
 */
export function desiredStatusPatch(
  sbx: Pick<Sandbox, 'status'>,
  obs: SandboxObservation,
  node: string,
  opts: { usage?: boolean } = {},
): Record<string, unknown> | undefined {
  const cur = (sbx.status ?? {}) as Record<string, unknown>;
  const next: Record<string, unknown> = {};
  for (const f of AGENT_FIELDS) {
    const v = (obs.status as Record<string, unknown>)[f];
    next[f] = v === undefined ? null : v;
  }
  next.nodeName = node;
  next.observedGeneration = obs.generation;
  const theirs = sbx.status?.conditions ?? [];
  const ours = (obs.status.conditions ?? []) as Condition[];
  const { list } = mergeConditions(
    theirs,
    ours.map((c) => ({ ...c, observedGeneration: c.observedGeneration ?? obs.generation })),
  );
  for (const t of AGENT_DECIDED) if (!ours.some((c) => c.type === t)) removeCondition(list, t);
  // The API server hands objects back with their keys sorted: compare key order out.
  const compared = Object.entries(next).filter(([k]) => opts.usage !== false || k !== 'usage');
  const changed =
    compared.some(([k, v]) => canonical(cur[k] ?? null) !== canonical(v)) || canonical(theirs) !== canonical(list);
  return changed ? { ...next, conditions: list } : undefined;
}

/** A sandbox the cluster gave up on (NodeLost) is not revived by a returning agent's report. */
export const givenUp = (status: SandboxStatus | undefined) =>
  status?.phase === 'Failed' && status.reason === 'NodeLost';

/** JSON with object keys sorted at every level, so equal values compare equal whatever order their keys came in. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(
          Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : x,
  );
}
