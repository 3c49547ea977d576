import assert from 'node:assert/strict';
import { imagesReadyCondition } from './conditions.js';
import { ImageError, LayerRefusedError } from './errors.js';

describe('images: ImagesReady condition (unit)', () => {
  it('is True when every image is ready', () => {
    assert.deepEqual(imagesReadyCondition([{ image: 'a' }, { image: 'b' }]), { type: 'ImagesReady', status: 'True', reason: 'Pulled', message: '2 image(s) ready' });
  });
  it('carries the reason of the first failure and names every failing image', () => {
    const c = imagesReadyCondition([
      { image: 'ok' },
      { image: 'r/x:1', error: new ImageError({ reason: 'Unauthorized', step: 'pull', message: 'denied' }) },
      { image: 'r/y:1', error: new LayerRefusedError('../x', 'path traversal (..)') },
    ]);
    assert.equal(c.status, 'False');
    assert.equal(c.reason, 'Unauthorized');
    assert.match(c.message, /r\/x:1: pull: denied; r\/y:1: apply layer: entry "..\/x" refused/);
  });
  it('maps unknown errors to ErrImagePull', () => {
    assert.equal(imagesReadyCondition([{ image: 'a', error: new Error('boom') }]).reason, 'ErrImagePull');
  });
});
