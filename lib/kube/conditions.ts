import type { Condition } from '../../crds/common.js';

/** Condition types sandpit writes on a Sandbox. Reconciling and Stalled are kstatus' abnormal-true pair. */
export const ConditionType = {
  Scheduled: 'Scheduled',
  ImagesReady: 'ImagesReady',
  NetworkReady: 'NetworkReady',
  Ready: 'Ready',
  Reconciling: 'Reconciling',
  Stalled: 'Stalled',
} as const;

export type ConditionInput = Omit<Condition, 'lastTransitionTime'> & { lastTransitionTime?: string };

/**
 * Sets a condition in place, like apimachinery's meta.SetStatusCondition:
 * lastTransitionTime moves only when the status flips, so "since when" stays
 * true. Returns whether anything changed, so the caller can skip the write.
 */
export function setCondition(list: Condition[], input: ConditionInput, now = new Date().toISOString()): boolean {
  const i = list.findIndex((c) => c.type === input.type);
  if (i < 0) {
    list.push({ ...input, lastTransitionTime: input.lastTransitionTime ?? now });
    return true;
  }
  const cur = list[i]!;
  const next: Condition = {
    ...cur,
    status: input.status,
    reason: input.reason,
    message: input.message,
    observedGeneration: input.observedGeneration ?? cur.observedGeneration,
    lastTransitionTime: cur.status === input.status ? cur.lastTransitionTime : (input.lastTransitionTime ?? now),
  };
  if (sameCondition(cur, next)) return false;
  list[i] = next;
  return true;
}

/** Removes a condition; returns whether it was there. kstatus wants Reconciling/Stalled absent when not true. */
export function removeCondition(list: Condition[], type: string): boolean {
  const i = list.findIndex((c) => c.type === type);
  if (i < 0) return false;
  list.splice(i, 1);
  return true;
}

export function findCondition(list: Condition[] | undefined, type: string): Condition | undefined {
  return list?.find((c) => c.type === type);
}

export const isTrue = (list: Condition[] | undefined, type: string) => findCondition(list, type)?.status === 'True';

function sameCondition(a: Condition, b: Condition): boolean {
  return (
    a.status === b.status &&
    a.reason === b.reason &&
    a.message === b.message &&
    a.observedGeneration === b.observedGeneration &&
    a.lastTransitionTime === b.lastTransitionTime
  );
}

/** Merges conditions written by someone else with ours: ours win per type, theirs otherwise stay. */
export function mergeConditions(
  theirs: Condition[] | undefined,
  ours: ConditionInput[],
  now?: string,
): { list: Condition[]; changed: boolean } {
  const list = structuredClone(theirs ?? []);
  let changed = false;
  for (const c of ours) changed = setCondition(list, c, now) || changed;
  return { list, changed };
}
