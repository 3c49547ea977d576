import type { Sandbox } from '../../crds/sandbox.js';
import { findCondition } from '../../lib/kube/conditions.js';

/*
 * When the sandpit_sandbox_* histograms observe, and what: pure, so the
 * manager only feeds them the watch events and the bindings it sees.
 */

const createdAt = (s: Pick<Sandbox, 'metadata'>) => Date.parse(s.metadata.creationTimestamp ?? '');

/** sandpit_sandbox_schedule_seconds: from creation to the binding we just wrote. */
export function scheduleSeconds(bound: Pick<Sandbox, 'metadata'>, now = Date.now()): number | undefined {
  const created = createdAt(bound);
  return created ? (now - created) / 1000 : undefined;
}

/**
 * sandpit_sandbox_start_seconds: from creation to the first Ready=True of a
 * sandbox's first generation, observed on the update that makes it Ready (an
 * edited sandbox, or one first seen Ready on a relist, says nothing about
 * how long applying takes).
 */
export function applyToReadySeconds(obj: Sandbox, old: Sandbox | undefined, now = Date.now()): number | undefined {
  const ready = findCondition(obj.status?.conditions, 'Ready')?.status === 'True';
  const before = findCondition(old?.status?.conditions, 'Ready')?.status === 'True';
  const created = createdAt(obj);
  if (ready && !before && old && created && obj.metadata.generation === 1) return (now - created) / 1000;
  return undefined;
}
