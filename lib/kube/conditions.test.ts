import assert from 'node:assert/strict';
import type { Condition } from '../../crds/common.js';
import { mergeConditions, removeCondition, setCondition } from './conditions.js';

describe('unit: status conditions', () => {
  const t0 = '2026-01-01T00:00:00Z';
  const t1 = '2026-01-01T00:01:00Z';

  it('adds a condition with the transition time', () => {
    const list: Condition[] = [];
    assert.equal(setCondition(list, { type: 'Ready', status: 'False', reason: 'Creating', message: '' }, t0), true);
    assert.equal(list[0]!.lastTransitionTime, t0);
  });

  it('keeps lastTransitionTime when only the reason or message changes', () => {
    const list: Condition[] = [];
    setCondition(list, { type: 'Ready', status: 'False', reason: 'Creating', message: 'a' }, t0);
    assert.equal(setCondition(list, { type: 'Ready', status: 'False', reason: 'Pulling', message: 'b' }, t1), true);
    assert.equal(list[0]!.lastTransitionTime, t0);
    assert.equal(list[0]!.reason, 'Pulling');
  });

  it('moves lastTransitionTime when the status flips', () => {
    const list: Condition[] = [];
    setCondition(list, { type: 'Ready', status: 'False', reason: 'Creating', message: '' }, t0);
    setCondition(list, { type: 'Ready', status: 'True', reason: 'Running', message: '' }, t1);
    assert.equal(list[0]!.lastTransitionTime, t1);
  });

  it('reports no change for an identical condition, so callers skip the write', () => {
    const list: Condition[] = [];
    setCondition(list, { type: 'Scheduled', status: 'True', reason: 'Bound', message: 'm', observedGeneration: 1 }, t0);
    assert.equal(
      setCondition(
        list,
        { type: 'Scheduled', status: 'True', reason: 'Bound', message: 'm', observedGeneration: 1 },
        t1,
      ),
      false,
    );
  });

  it('removes abnormal-true conditions and merges others without touching theirs', () => {
    const theirs: Condition[] = [
      { type: 'Scheduled', status: 'True', reason: 'Bound', message: '', lastTransitionTime: t0 },
    ];
    const { list, changed } = mergeConditions(
      theirs,
      [{ type: 'Ready', status: 'True', reason: 'Running', message: '' }],
      t1,
    );
    assert.equal(changed, true);
    assert.deepEqual(
      list.map((c) => c.type),
      ['Scheduled', 'Ready'],
    );
    assert.equal(theirs.length, 1, 'the input is not mutated');
    assert.equal(removeCondition(list, 'Stalled'), false);
    assert.equal(removeCondition(list, 'Ready'), true);
  });
});
