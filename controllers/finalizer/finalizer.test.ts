import assert from 'node:assert/strict';
import { FINALIZER } from '../../crds/common.js';
import { hasFinalizer, withFinalizer, withoutFinalizer } from './finalizer.js';

describe('unit: finalizer helpers', () => {
  it('adds ours once and keeps others', () => {
    assert.deepEqual(withFinalizer({ metadata: { finalizers: ['other/x'] } }), ['other/x', FINALIZER]);
    assert.equal(withFinalizer({ metadata: { finalizers: [FINALIZER] } }), undefined);
  });

  it('removes only ours', () => {
    assert.deepEqual(withoutFinalizer({ metadata: { finalizers: ['a', FINALIZER, 'b'] } }), ['a', 'b']);
    assert.equal(withoutFinalizer({ metadata: {} }), undefined);
    assert.equal(hasFinalizer({ metadata: { finalizers: [FINALIZER] } }), true);
  });
});
