import assert from 'node:assert/strict';
import {
  attrNested,
  attrString,
  attrU32,
  decodeAttrs,
  decodeMessages,
  encodeAttrs,
  encodeMessage,
  IFLA_IFNAME,
  IFLA_LINKINFO,
  IFLA_INFO_KIND,
  IFLA_MTU,
  ifinfomsg,
  NLA_F_NESTED,
  RTM_NEWLINK,
} from './codec.js';

describe('unit: rtnetlink codec', () => {
  it('pads attributes to 4 bytes and nests them', () => {
    const buf = encodeAttrs([
      attrString(IFLA_IFNAME, 'sandpit0'),
      attrNested(IFLA_LINKINFO, [attrString(IFLA_INFO_KIND, 'veth')]),
    ]);
    // "sandpit0\0" is 9 bytes: header 4 + 9 = 13, padded to 16.
    assert.equal(buf.readUInt16LE(0), 13);
    assert.equal(buf.readUInt16LE(18), IFLA_LINKINFO | NLA_F_NESTED);
    const top = decodeAttrs(buf);
    assert.equal(top.get(IFLA_IFNAME)!.toString(), 'sandpit0\0');
    assert.equal(decodeAttrs(top.get(IFLA_LINKINFO)!).get(IFLA_INFO_KIND)!.toString(), 'veth\0');
  });

  it('frames messages with length, type, flags and sequence', () => {
    const msg = encodeMessage(RTM_NEWLINK, 0x605, 42, ifinfomsg({ index: 3 }), [attrU32(IFLA_MTU, 1500)]);
    assert.equal(msg.length % 4, 0);
    const [m] = decodeMessages(Buffer.concat([msg, msg]).subarray(0, msg.length));
    assert.equal(m!.type, RTM_NEWLINK);
    assert.equal(m!.flags, 0x605);
    assert.equal(m!.seq, 42);
    assert.equal(m!.payload.readInt32LE(4), 3);
    assert.equal(decodeAttrs(m!.payload.subarray(16)).get(IFLA_MTU)!.readUInt32LE(0), 1500);
  });
});
