import assert from 'node:assert/strict';
import { ApiError } from '../../lib/kube/client.js';
import { isStaleCache, reconcileOutcome } from './worker.js';

describe('unit: reconcile outcomes as controller-runtime counts them', () => {
  const cases: { name: string; result: { requeueAfterMs?: number }; outcome: string }[] = [
    { name: 'done', result: {}, outcome: 'success' },
    { name: 'come back at once', result: { requeueAfterMs: 0 }, outcome: 'requeue' },
    { name: 'come back later', result: { requeueAfterMs: 5000 }, outcome: 'requeue_after' },
  ];
  for (const c of cases) it(c.name, () => assert.equal(reconcileOutcome(c.result), c.outcome));

  it('a conflict is a stale cache (routine); other failures are not', () => {
    const err = (status: number, reason: string) =>
      new ApiError(status, reason, { step: 'PATCH /apis/sandpit.dev', message: reason }, {});
    assert.equal(isStaleCache(err(409, 'Conflict')), true);
    assert.equal(isStaleCache(err(403, 'Forbidden')), false);
    assert.equal(isStaleCache(new Error('409')), false);
  });
});
