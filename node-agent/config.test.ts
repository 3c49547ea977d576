import assert from 'node:assert/strict';
import { parseAgentArgs } from './config.js';

const parse = (argv: string[], env: NodeJS.ProcessEnv = {}) => parseAgentArgs(argv, env, 'test').runtime;

describe('unit: agent flags of the runtime', () => {
  it('takes --allow-capability (repeatable) over SANDPIT_ALLOW_CAPABILITIES (comma-separated)', () => {
    assert.deepEqual(parse([]), { allowedCapabilities: [], allowDirImages: [] });
    assert.deepEqual(parse([], { SANDPIT_ALLOW_CAPABILITIES: 'SYS_TIME, CAP_NET_ADMIN' }).allowedCapabilities, [
      'SYS_TIME',
      'NET_ADMIN',
    ]);
    assert.deepEqual(
      parse(['--allow-capability', 'sys_nice', '--allow-capability', 'SYS_TIME'], {
        SANDPIT_ALLOW_CAPABILITIES: 'NET_ADMIN',
      }).allowedCapabilities,
      ['SYS_NICE', 'SYS_TIME'],
    );
    assert.throws(() => parse(['--allow-capability', 'FLY']), /unknown capability FLY/);
  });
  it('takes --registry-ca-file over SANDPIT_REGISTRY_CA_FILE', () => {
    assert.equal(parse([], { SANDPIT_REGISTRY_CA_FILE: '/etc/ca.pem' }).registryCAFile, '/etc/ca.pem');
    assert.equal(
      parse(['--registry-ca-file', '/x.pem'], { SANDPIT_REGISTRY_CA_FILE: '/etc/ca.pem' }).registryCAFile,
      '/x.pem',
    );
  });
  it('takes --allow-dir-images over SANDPIT_ALLOW_DIR_IMAGES, absolute directories only', () => {
    assert.deepEqual(parse([], { SANDPIT_ALLOW_DIR_IMAGES: '/srv/a, /srv/b' }).allowDirImages, ['/srv/a', '/srv/b']);
    assert.deepEqual(parse(['--allow-dir-images', '/x'], { SANDPIT_ALLOW_DIR_IMAGES: '/srv/a' }).allowDirImages, [
      '/x',
    ]);
    assert.throws(() => parse(['--allow-dir-images', 'relative']), /absolute directories/);
  });
});
