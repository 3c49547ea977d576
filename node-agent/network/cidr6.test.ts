import assert from 'node:assert/strict';
import { bytesToIp6, ip6ToBytes, isIPv6, pairedIp6, parseSubnet6 } from './cidr6.js';

describe('unit: IPv6 sandbox prefix', () => {
  it('parses and prints addresses canonically', () => {
    assert.equal(bytesToIp6(ip6ToBytes('fd00:0088:0:0:0:0:0a58:0005')), 'fd00:88::a58:5');
    assert.equal(bytesToIp6(ip6ToBytes('::')), '::');
    assert.equal(bytesToIp6(ip6ToBytes('fd00::1')), 'fd00::1');
    for (const bad of ['fd00:::1', '1:2:3:4:5:6:7:8:9', 'fd00::g', '10.0.0.1', '1::2::3'])
      assert.equal(isIPv6(bad), false, bad);
  });

  it('takes a ULA prefix of /64 to /96, masked, and refuses others', () => {
    assert.equal(parseSubnet6('fd00:88::ffff/64').cidr, 'fd00:88::/64');
    assert.throws(() => parseSubnet6('2001:db8::/64'), /unique local/);
    assert.throws(() => parseSubnet6('fd00::/48'), /between \/64 and \/96/);
    assert.throws(() => parseSubnet6('fd00::/112'), /between \/64 and \/96/);
  });

  it('pairs each IPv4 lease with one IPv6 address, so the IPv6 side needs no lease of its own', () => {
    const s = parseSubnet6('fd00:88::/64');
    assert.equal(pairedIp6(s, '10.88.0.5'), 'fd00:88::a58:5');
    assert.equal(pairedIp6(s, '10.88.0.1'), 'fd00:88::a58:1');
    assert.notEqual(pairedIp6(s, '10.88.0.6'), pairedIp6(s, '10.88.0.5'));
  });
});
