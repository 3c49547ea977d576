import assert from 'node:assert/strict';
import { registryError, registryErrorCodes } from './registry-errors.js';

const doc = JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] });

describe('unit: images: registry refusals', () => {
  it('reads the codes of a distribution error document, and nothing from other bodies', () => {
    assert.equal(registryErrorCodes(doc), 'MANIFEST_UNKNOWN: manifest unknown');
    assert.equal(registryErrorCodes('<html>502</html>'), '');
    assert.equal(registryErrorCodes('null'), '');
    assert.equal(registryErrorCodes(''), '');
  });
  const table: [status: number, body: string, reason: string, message: string, retryable: boolean][] = [
    [
      404,
      doc,
      'ManifestUnknown',
      'pull: manifest a/b:1 not found (MANIFEST_UNKNOWN: manifest unknown) (check the image name and tag)',
      false,
    ],
    [404, '', 'ManifestUnknown', 'pull: manifest a/b:1 not found (check the image name and tag)', false],
    [403, '', 'Unauthorized', 'pull: manifest a/b:1: access denied', false],
    [400, doc, 'ErrImagePull', 'pull: manifest a/b:1: HTTP 400 (MANIFEST_UNKNOWN: manifest unknown)', true],
  ];
  for (const [status, body, reason, message, retryable] of table) {
    it(`HTTP ${status}${body ? ' with an error document' : ''} is ${reason}`, () => {
      const e = registryError(status, body, 'manifest a/b:1');
      assert.equal(e.reason, reason);
      assert.equal(e.message, message);
      assert.equal(e.retryable, retryable);
    });
  }
});
