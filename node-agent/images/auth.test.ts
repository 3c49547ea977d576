import assert from 'node:assert/strict';
import { credentialsFor, parseChallenges, TokenCache } from './auth.js';

const cfg = (auths: Record<string, unknown>) => JSON.stringify({ auths });
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('unit: images: registry auth', () => {
  it('parses bearer challenges with quoted commas', () => {
    const [c] = parseChallenges(
      'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push",error="insufficient_scope"',
    );
    assert.equal(c?.scheme, 'bearer');
    assert.deepEqual(c?.params, {
      realm: 'https://auth.example/token',
      service: 'reg',
      scope: 'repository:a/b:pull,push',
      error: 'insufficient_scope',
    });
  });
  it('parses basic challenges', () => {
    assert.deepEqual(parseChallenges('Basic realm="Registry Realm"'), [
      { scheme: 'basic', params: { realm: 'Registry Realm' } },
    ]);
  });
  it('finds the most specific pull-secret entry first', () => {
    const docs = [
      cfg({ 'r.example:5000': { auth: b64('host:1') } }),
      cfg({ 'r.example:5000/team': { username: 'team', password: '2' } }),
    ];
    const got = credentialsFor(docs, 'r.example:5000', 'team/app');
    assert.deepEqual(
      got.map((c) => c.username),
      ['team', 'host'],
    );
    assert.deepEqual(
      credentialsFor(docs, 'r.example:5000', 'other/app').map((c) => c.username),
      ['host'],
    );
  });
  it('matches ports exactly and globs per DNS label', () => {
    const docs = [cfg({ '*.example': { auth: b64('glob:x') }, 'https://r.example:443': { auth: b64('port:x') } })];
    assert.deepEqual(
      credentialsFor(docs, 'a.example', 'x').map((c) => c.username),
      ['glob'],
    );
    assert.deepEqual(credentialsFor(docs, 'a.b.example', 'x'), []);
    assert.deepEqual(
      credentialsFor(docs, 'r.example:443', 'x').map((c) => c.username),
      ['port'],
    );
    assert.deepEqual(credentialsFor(docs, 'r.example:5000', 'x'), []);
  });
  it('maps the legacy Docker Hub key and reads identity tokens and legacy .dockercfg', () => {
    const docs = [
      cfg({ 'https://index.docker.io/v1/': { identitytoken: 'rt' } }),
      JSON.stringify({ 'q.example': { auth: b64('legacy:pw') } }),
    ];
    assert.equal(credentialsFor(docs, 'docker.io', 'library/busybox')[0]?.identityToken, 'rt');
    assert.equal(credentialsFor(docs, 'q.example', 'x')[0]?.password, 'pw');
  });
  it('caches tokens until expiry, never shorter than 60 s', () => {
    let now = 0;
    const c = new TokenCache(() => now);
    c.set('k', 't', 5);
    now = 49_000;
    assert.equal(c.get('k'), 't');
    now = 51_000;
    assert.equal(c.get('k'), undefined);
  });
});
