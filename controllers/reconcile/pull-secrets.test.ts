import assert from 'node:assert/strict';
import { dockerConfigOf } from './pull-secrets.js';

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64');
const auths = { 'registry.example:5000': { auth: b64('alice:s3cret') } };

describe('unit: pull secrets: the Docker config of a Secret', () => {
  it('takes .dockerconfigjson of a kubernetes.io/dockerconfigjson Secret', () => {
    assert.deepEqual(
      dockerConfigOf(
        { type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': b64({ auths }) } },
        'ns/reg',
      ),
      { dockerConfigJson: JSON.stringify({ auths }) },
    );
  });
  it('wraps the bare auths map of a legacy kubernetes.io/dockercfg Secret', () => {
    assert.deepEqual(
      dockerConfigOf({ type: 'kubernetes.io/dockercfg', data: { '.dockercfg': b64(auths) } }, 'ns/reg'),
      { dockerConfigJson: JSON.stringify({ auths }) },
    );
  });
  it('names the Secret and what is wrong with it otherwise', () => {
    const err = (s: Parameters<typeof dockerConfigOf>[0]) => (dockerConfigOf(s, 'ns/reg') as { error: string }).error;
    assert.match(
      err({ type: 'Opaque', data: {} }),
      /^Secret ns\/reg has type Opaque; an image pull Secret has type kubernetes.io\/dockerconfigjson/,
    );
    assert.equal(
      err({ type: 'kubernetes.io/dockerconfigjson', data: {} }),
      'Secret ns/reg has no .dockerconfigjson key',
    );
    assert.equal(
      err({ type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': b64('{not json') } }),
      'Secret ns/reg: .dockerconfigjson is not JSON',
    );
    assert.equal(
      err({ type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': b64({ registry: 'x' }) } }),
      'Secret ns/reg: .dockerconfigjson has no "auths" object',
    );
  });
});
