import assert from 'node:assert/strict';
import { SandpitError } from '../../../lib/errors.js';
import { NetlinkError } from './socket.js';

describe('unit: netlink errors', () => {
  it('are SandpitErrors naming the refused request as the step and the errno name as the code', () => {
    const err = new NetlinkError('create veth spv0123', 'EEXIST');
    assert.ok(err instanceof SandpitError);
    assert.equal(err.message, 'create veth spv0123: EEXIST');
    assert.equal(err.step, 'create veth spv0123');
    assert.equal(err.code, 'EEXIST');
    assert.equal(err.name, 'NetlinkError');
  });
});
