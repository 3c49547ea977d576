import assert from 'node:assert/strict';
import { capMask, containerCaps, DEFAULT_CAPS } from './capabilities.js';

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
