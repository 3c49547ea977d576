import assert from 'node:assert/strict';
import { mergeContainerConfig } from './container-config.js';

const image = { entrypoint: ['/ep'], cmd: ['--default'], env: ['PATH=/bin', 'A=1'], workingDir: '/app', user: 'app:staff' };

describe('images: image config merged into a container like Kubernetes (unit)', () => {
  it('keeps ENTRYPOINT and CMD when the container sets neither', () => {
    assert.deepEqual(mergeContainerConfig(image, {}).argv, ['/ep', '--default']);
  });
  it('args replace CMD only', () => {
    assert.deepEqual(mergeContainerConfig(image, { args: ['x'] }).argv, ['/ep', 'x']);
  });
  it('command replaces ENTRYPOINT and drops CMD', () => {
    assert.deepEqual(mergeContainerConfig(image, { command: ['/bin/sh'] }).argv, ['/bin/sh']);
    assert.deepEqual(mergeContainerConfig(image, { command: ['/bin/sh'], args: ['-c', 'true'] }).argv, ['/bin/sh', '-c', 'true']);
  });
  it('adds env to the image env, container winning, with $(VAR) expansion', () => {
    const m = mergeContainerConfig(image, { env: [{ name: 'A', value: '2' }, { name: 'B', value: '$(A)-$$(A)' }], args: ['$(B)'] });
    assert.deepEqual(m.env, ['PATH=/bin', 'A=2', 'B=2-$(A)']);
    assert.deepEqual(m.argv, ['/ep', '2-$(A)']);
  });
  it('workingDir falls back to the image then /', () => {
    assert.equal(mergeContainerConfig(image, {}).workingDir, '/app');
    assert.equal(mergeContainerConfig(image, { workingDir: '/w' }).workingDir, '/w');
    assert.equal(mergeContainerConfig({ cmd: ['x'] }, {}).workingDir, '/');
  });
  it('runAsUser/runAsGroup override the image user', () => {
    assert.deepEqual(mergeContainerConfig(image, {}).user, { user: 'app', group: 'staff' });
    assert.deepEqual(mergeContainerConfig(image, { securityContext: { runAsUser: 1000 } }).user, { uid: 1000, group: 'staff' });
    assert.deepEqual(mergeContainerConfig({ cmd: ['x'], user: '5:6' }, { securityContext: { runAsGroup: 7 } }).user, { uid: 5, gid: 7 });
  });
  it('refuses a container with nothing to run', () => {
    assert.throws(() => mergeContainerConfig({}, {}), /no command/);
  });
});
