import assert from 'node:assert/strict';
import type { SandpitError } from '../../lib/errors.js';
import {
  ALL_CAPS,
  allowPrivilegedHint,
  boundingCaps,
  capMask,
  containerCaps,
  DEFAULT_CAPS,
  parseAllowedCapabilities,
} from './capabilities.js';

const policy = { allowPrivileged: false, allowedCapabilities: ['NET_ADMIN'] };

describe('unit: capabilities', () => {
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
  it('hands on only what the agent holds: privileged is its bounding set, an add outside it is refused', () => {
    // A node whose bounding set lacks SYS_RESOURCE (24), as this project's e2e VM's does.
    const bounding = boundingCaps('Name:\tnode\nCapBnd:\t000001fffeffffff\n');
    assert.equal(bounding.has('SYS_RESOURCE'), false);
    assert.equal(bounding.size, ALL_CAPS.length - 1);
    const privileged = containerCaps(
      { privileged: true },
      { allowPrivileged: true, allowedCapabilities: [], bounding },
    );
    assert.equal(capMask(privileged).toString(16), '1fffeffffff');
    assert.throws(
      () => containerCaps({ add: ['SYS_RESOURCE'] }, { allowPrivileged: true, allowedCapabilities: [], bounding }),
      /not in the agent's bounding set/,
    );
    assert.deepEqual(boundingCaps('no such line'), new Set(ALL_CAPS), 'unknown: assume everything, capset decides');
  });
});

describe('unit: capability allow-list flags', () => {
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
    assert.match(
      refusal('cluster'),
      /--allow-capability SYS_TIME \(env SANDPIT_ALLOW_CAPABILITIES, chart value agent\.allowCapabilities\)/,
    );
    assert.equal(refusal('standalone'), 'start the agent with --allow-capability SYS_TIME');
    assert.match(allowPrivilegedHint('cluster'), /SANDPIT_ALLOW_PRIVILEGED=true.*agent\.allowPrivileged/);
    assert.equal(allowPrivilegedHint('standalone'), 'start the agent with --allow-privileged');
  });
});
