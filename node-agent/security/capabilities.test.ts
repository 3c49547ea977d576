import assert from 'node:assert/strict';
import { ALL_CAPS, boundingCaps, capMask, containerCaps, DEFAULT_CAPS } from './capabilities.js';

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
  it('hands on only what the agent holds: privileged is its bounding set, an add outside it is refused', () => {
    // A node whose bounding set lacks SYS_RESOURCE (24), as this project's e2e VM's does.
    const bounding = boundingCaps('Name:\tnode\nCapBnd:\t000001fffeffffff\n');
    assert.equal(bounding.has('SYS_RESOURCE'), false);
    assert.equal(bounding.size, ALL_CAPS.length - 1);
    const privileged = containerCaps({ privileged: true }, { allowPrivileged: true, allowedCapabilities: [], bounding });
    assert.equal(capMask(privileged).toString(16), '1fffeffffff');
    assert.throws(() => containerCaps({ add: ['SYS_RESOURCE'] }, { allowPrivileged: true, allowedCapabilities: [], bounding }), /not in the agent's bounding set/);
    assert.deepEqual(boundingCaps('no such line'), new Set(ALL_CAPS), 'unknown: assume everything, capset decides');
  });
});
