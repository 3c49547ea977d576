import assert from 'node:assert/strict';
import { WorkQueue } from './queue.js';
import { ItemBackoff, TokenBucket } from './ratelimit.js';

describe('unit: work queue', () => {
  it('deduplicates a key that is already waiting', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('a');
    q.add('b');
    assert.equal(q.length, 2);
    assert.equal(await q.get(), 'a');
    assert.equal(await q.get(), 'b');
  });

  it('never hands a key in flight to a second worker, and requeues it on done when re-added', async () => {
    const q = new WorkQueue();
    q.add('a');
    const key = await q.get();
    assert.equal(key, 'a');
    q.add('a');
    assert.equal(q.length, 0, 'the key waits for its worker, not in the queue');
    q.done('a');
    assert.equal(q.length, 1);
    assert.equal(await q.get(), 'a');
  });

  it('wakes a waiting worker when a key arrives', async () => {
    const q = new WorkQueue();
    const pending = q.get();
    q.add('x');
    assert.equal(await pending, 'x');
  });

  it('keeps the earliest of two delays for one key', async () => {
    const q = new WorkQueue();
    q.addAfter('k', 60_000);
    q.addAfter('k', 1);
    assert.equal(await q.get(), 'k');
    q.shutdown();
  });

  it('resolves idle workers with undefined on shutdown', async () => {
    const q = new WorkQueue();
    const pending = q.get();
    q.shutdown();
    assert.equal(await pending, undefined);
    q.add('late');
    assert.equal(q.length, 0);
  });
});

describe('unit: rate limiters', () => {
  it('backs off exponentially per key up to the cap, and forget() resets', () => {
    const b = new ItemBackoff(5, 100);
    assert.deepEqual(
      [b.next('k'), b.next('k'), b.next('k'), b.next('k'), b.next('k'), b.next('k')],
      [5, 10, 20, 40, 80, 100],
    );
    assert.equal(b.next('other'), 5);
    b.forget('k');
    assert.equal(b.next('k'), 5);
  });

  it('lets a burst through and then spaces tokens at the rate', () => {
    let t = 0;
    const bucket = new TokenBucket(10, 3, () => t);
    assert.deepEqual([bucket.reserve(), bucket.reserve(), bucket.reserve()], [0, 0, 0]);
    assert.equal(Math.round(bucket.reserve()), 100);
    t = 1000;
    assert.equal(bucket.reserve(), 0);
  });
});
