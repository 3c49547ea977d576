import assert from 'node:assert/strict';
import { ImageError } from './errors.js';
import { backoffDelay, cacheDecision, PullBackoff } from './pull-policy.js';

const pinned = `sha256:${'a'.repeat(64)}`;
const other = `sha256:${'b'.repeat(64)}`;

describe('unit: images: pull policy and back-off', () => {
  const table: [
    policy: 'Always' | 'IfNotPresent' | 'Never',
    present: string | undefined,
    pin: string | undefined,
    want: string,
  ][] = [
    ['Never', undefined, undefined, 'missing'],
    ['Never', other, undefined, 'cached'],
    ['Never', other, pinned, 'cached'],
    ['IfNotPresent', undefined, undefined, 'pull'],
    ['IfNotPresent', other, undefined, 'cached'],
    ['Always', other, undefined, 'pull'],
    ['Always', pinned, pinned, 'cached'], // a pinned digest on disk needs no round trip
    ['Always', other, pinned, 'pull'],
    ['Always', undefined, pinned, 'pull'],
  ];
  for (const [policy, present, pin, want] of table) {
    it(`${policy}, ${present ? 'present' : 'absent'}${pin ? `, pinned to ${pin === present ? 'it' : 'another'}` : ''}: ${want}`, () => {
      assert.equal(cacheDecision(policy, present, pin), want);
    });
  }

  it('doubles the back-off from its first delay up to its cap', () => {
    const delays = { initial: 10_000, max: 300_000 };
    assert.deepEqual(
      [1, 2, 3, 5, 6, 7].map((n) => backoffDelay(n, delays)),
      [10_000, 20_000, 40_000, 160_000, 300_000, 300_000],
    );
  });

  it('refuses a pull while it backs off, with the last error, and forgets it on success', () => {
    let now = 1_000_000;
    const b = new PullBackoff({ initial: 100, max: 1000 }, () => now);
    assert.equal(b.admit('r/app:1', 'sb'), 0);
    const first = b.failed('r/app:1', 0, new Error('connection reset'));
    assert.ok(first instanceof ImageError);
    assert.equal(first.reason, 'ErrImagePull');
    assert.equal(first.message, 'pull: connection reset');
    assert.throws(
      () => b.admit('r/app:1', 'sb'),
      (e: unknown) =>
        e instanceof ImageError &&
        e.reason === 'ImagePullBackOff' &&
        e.retryable &&
        e.message === 'sandbox sb: pull: back-off pulling r/app:1 (1 failures); last error: pull: connection reset',
    );
    assert.equal(b.admit('other:1', 'sb'), 0, 'per image name');
    now += 100;
    assert.equal(b.admit('r/app:1', 'sb'), 1, 'after the delay, with the count so far');
    const refused = new ImageError({
      reason: 'Unauthorized',
      step: 'pull',
      message: 'no',
      hint: 'check the pull secret',
    });
    assert.equal(b.failed('r/app:1', 1, refused), refused, 'an ImageError is kept as it is');
    now += 199;
    assert.throws(
      () => b.admit('r/app:1', 'sb'),
      (e: unknown) => e instanceof ImageError && e.hint === 'check the pull secret',
    );
    now += 1;
    b.succeeded('r/app:1');
    assert.equal(b.admit('r/app:1', 'sb'), 0);
  });
});
