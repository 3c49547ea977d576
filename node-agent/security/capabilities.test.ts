import assert from 'node:assert/strict';
import type { SandpitError } from '../../lib/errors.js';
import { allowPrivilegedHint, capMask, containerCaps, DEFAULT_CAPS, parseAllowedCapabilities } from './capabilities.js';

const policy = { allowPrivileged: false, allowedCapabilities: ['NET_ADMIN'] };

describe('capabilities (unit)', () => {
  it("is Docker's 14 by default, the same mask Docker shows", () => {
    assert.equal(DEFAULT_CAPS.length, 14);
    assert.equal(capMask(containerCaps({}, policy)).toString(16), 'a80425fb');
  });
  it('drops and adds within the node policy', () => {
    assert.deepEqual(containerCaps({ drop: ['ALL'], add: ['CAP_NET_BIND_SERVICE'] }, policy), ['NET_BIND_SERVICE']);
    assert.ok(containerCaps({ add: ['NET_ADMIN'] }, policy).includes('NET_ADMIN'));
    assert.throws(() => containerCaps({ add: ['SYS_ADMIN'] }, policy), /not allowed/);
    assert.throws(() => containerCaps({ privileged: true }, policy), /privileged/);
  });
});

describe('capability allow-list flags (unit)', () => {
  it('parses repeated and comma-separated names, with or without CAP_, once each', () => {
    assert.deepEqual(parseAllowedCapabilities(['CAP_SYS_TIME,net_admin', 'SYS_TIME']), ['SYS_TIME', 'NET_ADMIN']);
    assert.deepEqual(parseAllowedCapabilities([]), []);
  });
  it('stops the agent on an unknown name', () => {
    assert.throws(() => parseAllowedCapabilities(['SYS_TIMES']), /unknown capability SYS_TIMES/);
  });
  it("names the flag, env variable and chart value that exist in each agent's mode", () => {
    const refusal = (hints?: 'cluster' | 'standalone') => {
      try {
        containerCaps({ add: ['SYS_TIME'] }, { ...policy, ...(hints ? { hints } : {}) });
      } catch (err) {
        return (err as SandpitError).hint ?? '';
      }
      return assert.fail('SYS_TIME was not refused');
    };
    assert.match(refusal('cluster'), /--allow-capability SYS_TIME \(env SANDPIT_ALLOW_CAPABILITIES, chart value agent\.allowCapabilities\)/);
    assert.equal(refusal('standalone'), 'start the agent with --allow-capability SYS_TIME');
    assert.match(allowPrivilegedHint('cluster'), /SANDPIT_ALLOW_PRIVILEGED=true.*agent\.allowPrivileged/);
    assert.equal(allowPrivilegedHint('standalone'), 'start the agent with --allow-privileged');
  });
});
