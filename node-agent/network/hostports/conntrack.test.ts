import assert from 'node:assert/strict';
import { attrNested, attrU8, encodeAttrs } from '../netlink/codec.js';
import { originalUdpDstPort } from './conntrack.js';

describe('unit: conntrack dump decoding', () => {
  const port = (type: number, p: number) => {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(p);
    return { type, value: b };
  };
  const entry = (proto: number, dport: number) =>
    Buffer.concat([
      Buffer.from([2, 0, 0, 0]),
      encodeAttrs([attrNested(1, [attrNested(2, [attrU8(1, proto), port(2, 40123), port(3, dport)])])]),
    ]);

  it('finds the original UDP destination port and keeps the tuple to delete by', () => {
    const got = originalUdpDstPort(entry(17, 5400));
    assert.equal(got?.port, 5400);
    assert.ok(got!.tuple.length > 0);
  });

  it('ignores other protocols', () => {
    assert.equal(originalUdpDstPort(entry(6, 5400)), undefined);
  });
});
