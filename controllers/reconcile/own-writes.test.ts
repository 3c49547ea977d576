import assert from 'node:assert/strict';
import type { Sandbox } from '../../crds/sandbox.js';
import { AppliedGenerations } from './applied.js';
import { OwnWrites } from './own-writes.js';

const sbx = (uid: string, resourceVersion: string, generation = 1) =>
  ({
    apiVersion: 'sandpit.dev/v1alpha1',
    kind: 'Sandbox',
    metadata: { name: uid, namespace: 'ns', uid, resourceVersion, generation },
    spec: { containers: [{ name: 'main', image: 'busybox' }] },
  }) as Sandbox;

describe('unit: what the reconciler remembers of its own writes', () => {
  it('goes on from the answer: metadata and status written, our spec, managedFields dropped', () => {
    const own = new OwnWrites();
    const before = sbx('u1', '10');
    const next = own.carryOn(before, {
      metadata: { ...before.metadata, resourceVersion: '11', managedFields: [{}] },
      status: { nodeName: 'n1' },
      spec: { ignored: true },
    });
    assert.equal(next.metadata.resourceVersion, '11');
    assert.equal('managedFields' in next.metadata, false);
    assert.deepEqual(next.status, { nodeName: 'n1' });
    assert.equal(next.spec, before.spec);
  });

  it('answers each version it carried on from once, and no other', () => {
    const own = new OwnWrites();
    own.carryOn(sbx('u1', '10'), { metadata: sbx('u1', '11').metadata });
    own.carryOn(sbx('u1', '11'), { metadata: sbx('u1', '12').metadata });
    const seen = ['11', '13', '11', '12', '12'].map((rv) => own.isContinued(sbx('u1', rv)));
    assert.deepEqual(seen, [true, false, false, true, false]);
    assert.equal(own.isContinued(sbx('u2', '11')), false);
  });

  it('does not keep versions whose events never came beyond a few, nor those of a forgotten sandbox', () => {
    const own = new OwnWrites();
    for (let rv = 1; rv <= 10; rv++) own.carryOn(sbx('u1', '0'), { metadata: sbx('u1', String(rv)).metadata });
    assert.equal(own.isContinued(sbx('u1', '1')), false, 'cleared once more than 8 were pending');
    assert.equal(own.isContinued(sbx('u1', '10')), true);
    own.carryOn(sbx('u1', '0'), { metadata: sbx('u1', '20').metadata });
    own.forget('u1');
    assert.equal(own.isContinued(sbx('u1', '20')), false);
  });
});

describe('unit: the generations agents confirmed', () => {
  it('knows the generation recorded, forgets older ones and all of a forgotten uid', () => {
    const applied = new AppliedGenerations();
    applied.record(sbx('u1', '1', 1));
    applied.record(sbx('u2', '1', 1));
    assert.equal(applied.has(sbx('u1', '5', 1)), true);
    applied.record(sbx('u1', '6', 2));
    assert.deepEqual([applied.has(sbx('u1', '1', 1)), applied.has(sbx('u1', '6', 2))], [false, true]);
    applied.forget('u1');
    assert.deepEqual([applied.has(sbx('u1', '6', 2)), applied.has(sbx('u2', '1', 1))], [false, true]);
  });
});
