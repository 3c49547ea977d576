import assert from 'node:assert/strict';
import { defaultPullPolicy, formatReference, parseReference, registryHost } from './reference.js';

describe('unit: images: reference normalisation', () => {
  const cases: [string, string][] = [
    ['busybox', 'docker.io/library/busybox:latest'],
    ['library/busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest'],
    ['user/app', 'docker.io/user/app:latest'],
    ['127.0.0.1:5000/app', '127.0.0.1:5000/app:latest'],
    ['localhost/app:v1', 'localhost/app:v1'],
    ['quay.io/a/b/c:1', 'quay.io/a/b/c:1'],
    [`busybox@sha256:${'a'.repeat(64)}`, `docker.io/library/busybox@sha256:${'a'.repeat(64)}`],
    [`r.example:5000/x:t@sha256:${'b'.repeat(64)}`, `r.example:5000/x:t@sha256:${'b'.repeat(64)}`],
  ];
  for (const [input, want] of cases) {
    it(`${input} → ${want}`, () => assert.equal(formatReference(parseReference(input)), want));
  }
  for (const bad of [
    '',
    'Busybox',
    'host/UPPER',
    'a b',
    'busybox@sha256:ABC',
    `x@sha256:${'g'.repeat(64)}`,
    'x:tag!',
    'a//b',
    '../x',
    'x:',
  ]) {
    it(`refuses ${JSON.stringify(bad)}`, () => assert.throws(() => parseReference(bad)));
  }
  it('talks to registry-1.docker.io for Docker Hub', () =>
    assert.equal(registryHost(parseReference('busybox')), 'registry-1.docker.io'));
  it('defaults the pull policy like Kubernetes', () => {
    assert.equal(defaultPullPolicy('busybox'), 'Always');
    assert.equal(defaultPullPolicy('busybox:latest'), 'Always');
    assert.equal(defaultPullPolicy('busybox:1.36'), 'IfNotPresent');
    assert.equal(defaultPullPolicy(`busybox@sha256:${'a'.repeat(64)}`), 'IfNotPresent');
  });
});
