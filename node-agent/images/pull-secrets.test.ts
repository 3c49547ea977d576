import assert from 'node:assert/strict';
import { Sandbox } from '../../crds/sandbox.js';
import { ImageError } from './errors.js';
import { holdPullSecrets, pullCredentials } from './pull-secrets.js';

const sandbox = (secrets: string[]) =>
  Sandbox.parse({
    apiVersion: 'sandpit.dev/v1alpha1',
    kind: 'Sandbox',
    metadata: { name: 'web', namespace: 'team', uid: 'u1' },
    spec: {
      containers: [{ name: 'main', image: 'registry.example/app' }],
      imagePullSecrets: secrets.map((name) => ({ name })),
    },
  });

describe('unit: pull secrets on the agent', () => {
  it('gives the pull the Docker configs the PUT carried for the Secrets the spec names', () => {
    const sbx = sandbox(['a', 'b']);
    holdPullSecrets(sbx, {
      pullSecrets: [
        { name: 'a', dockerConfigJson: '{"auths":{}}' },
        { name: 'b', dockerConfigJson: '{"auths":{"x":{}}}' },
        { name: 'other', dockerConfigJson: '{}' },
      ],
    });
    assert.deepEqual(pullCredentials(sbx, 'main'), ['{"auths":{}}', '{"auths":{"x":{}}}']);
    assert.deepEqual(pullCredentials(sandbox([]), 'main'), []);
  });
  it('fails the pull as a retryable ErrImagePull naming a Secret that could not be read or did not arrive', () => {
    const sbx = sandbox(['gone', 'late']);
    holdPullSecrets(sbx, { pullSecrets: [{ name: 'gone', error: 'Secret team/gone not found' }] });
    assert.throws(
      () => pullCredentials(sbx, 'main'),
      (err: unknown) => {
        assert.ok(err instanceof ImageError);
        assert.equal(err.reason, 'ErrImagePull');
        assert.equal(err.retryable, true);
        assert.match(
          err.message,
          /imagePullSecret gone: Secret team\/gone not found; no data for imagePullSecret late reached the agent/,
        );
        assert.equal(err.step, 'pull the image of container main');
        return true;
      },
    );
  });
  it('refuses a malformed list', () => {
    assert.throws(
      () => holdPullSecrets(sandbox(['a']), { pullSecrets: [{ name: 'a' }] }),
      /pullSecrets must be a list/,
    );
    assert.throws(() => holdPullSecrets(sandbox(['a']), { pullSecrets: 'x' }), /pullSecrets must be a list/);
  });
  it('keeps them off the Sandbox itself, so nothing that serialises it carries them', () => {
    const sbx = sandbox(['a']);
    holdPullSecrets(sbx, { pullSecrets: [{ name: 'a', dockerConfigJson: '{"auths":{"r":{"auth":"c2VjcmV0"}}}' }] });
    assert.doesNotMatch(JSON.stringify(sbx), /c2VjcmV0/);
  });
});
