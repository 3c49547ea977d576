import assert from 'node:assert/strict';
import { parseChallenges } from './auth.js';
import { parseReference } from './reference.js';
import { accessRefused, pickChallenge, pullScopes, scopesAskedFor } from './registry-auth.js';

describe('unit: images: registry authorisation decisions', () => {
  it('answers a bearer challenge before a basic one, and nothing else', () => {
    assert.equal(pickChallenge(parseChallenges('Basic realm="r", Bearer realm="https://t"'))?.scheme, 'bearer');
    assert.equal(pickChallenge(parseChallenges('Basic realm="r"'))?.scheme, 'basic');
    assert.equal(pickChallenge(parseChallenges('Negotiate')), null);
    assert.equal(pickChallenge([]), null);
  });
  it('asks for pull on the repository first, then what the registry asked for, once each', () => {
    assert.deepEqual(pullScopes('a/b', []), ['repository:a/b:pull']);
    assert.deepEqual(pullScopes('a/b', ['repository:a/b:pull', 'repository:c/d:pull']), [
      'repository:a/b:pull',
      'repository:c/d:pull',
    ]);
  });
  it('reads the scopes of an insufficient_scope challenge only', () => {
    assert.deepEqual(
      scopesAskedFor(
        'Bearer realm="https://t",error="insufficient_scope",scope="repository:a/b:pull repository:c:pull"',
      ),
      ['repository:a/b:pull', 'repository:c:pull'],
    );
    assert.equal(
      scopesAskedFor('Bearer realm="https://t",error="invalid_token",scope="repository:a/b:pull"'),
      undefined,
    );
    assert.equal(scopesAskedFor('Bearer realm="https://t",error="insufficient_scope"'), undefined);
    assert.equal(scopesAskedFor(undefined), undefined);
  });
  it('says whose access was refused and what to do', () => {
    const ref = parseReference('r.example:5000/team/app:1');
    const anon = accessRefused(ref, undefined);
    assert.equal(anon.reason, 'Unauthorized');
    assert.equal(
      anon.message,
      'pull: r.example:5000 refused anonymous access to team/app (add an imagePullSecret with credentials for this registry)',
    );
    assert.equal(
      accessRefused(ref, { username: 'bob', password: 'x' }).message,
      'pull: r.example:5000 refused the credentials for user "bob" to team/app (check the pull secret)',
    );
    assert.match(accessRefused(ref, { identityToken: 't' }).message, /user "\(token\)"/);
  });
});
