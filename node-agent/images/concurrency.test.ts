import assert from 'node:assert/strict';
import { Semaphore, SingleFlight } from './concurrency.js';

describe('unit: images concurrency', () => {
  it('single-flight: concurrent callers of one key share one run; a later call runs again', async () => {
    const sf = new SingleFlight<number>();
    let runs = 0;
    const fn = async () => ++runs;
    const [a, b] = await Promise.all([sf.do('k', fn), sf.do('k', fn)]);
    assert.deepEqual([a, b, runs], [1, 1, 1]);
    assert.equal(await sf.do('k', fn), 2);
  });

  it('semaphore: at most n run at once, and a failure frees its place', async () => {
    const sem = new Semaphore(2);
    let running = 0;
    let most = 0;
    const job = (fail: boolean) =>
      sem.run(async () => {
        most = Math.max(most, ++running);
        await new Promise((r) => setImmediate(r));
        running--;
        if (fail) throw new Error('boom');
      });
    const results = await Promise.allSettled([job(true), job(false), job(false), job(false), job(false)]);
    assert.equal(most, 2);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled'],
    );
  });
});
