import assert from 'node:assert/strict';
import { parseSubnet, gatewayOf, numberToIp, overlaps, subnetSize } from './cidr.js';
import { allocateAddress, emptyTable, reclaimAddresses, releaseAddress, type LeaseTable } from './ipam.js';

describe('unit: IPAM', () => {
  const subnet = parseSubnet('10.199.7.0/29'); // sandboxes get .2 to .6

  const take = (table: LeaseTable, id: string) => {
    const got = allocateAddress(table, subnet, id);
    assert.ok(got, `no address for ${id}`);
    return got;
  };

  it('skips the network, gateway and broadcast addresses', () => {
    assert.equal(gatewayOf(subnet), '10.199.7.1');
    assert.equal(numberToIp(subnet.network + subnetSize(subnet) - 1), '10.199.7.7');
    let table = emptyTable(subnet);
    const got: string[] = [];
    for (const id of ['a', 'b', 'c', 'd', 'e']) {
      const r = take(table, id);
      table = r.table;
      got.push(r.address);
    }
    assert.deepEqual(got, ['10.199.7.2', '10.199.7.3', '10.199.7.4', '10.199.7.5', '10.199.7.6']);
    assert.equal(allocateAddress(table, subnet, 'f'), undefined, 'a full subnet yields nothing');
  });

  it('gives a sandbox the address it already holds', () => {
    const first = take(emptyTable(subnet), 'a');
    const again = take(first.table, 'a');
    assert.equal(again.address, first.address);
    assert.equal(Object.keys(again.table.leases).length, 1);
  });

  it('never hands out a leased address, and moves past a just-released one', () => {
    let table = take(take(emptyTable(subnet), 'a').table, 'b').table;
    table = releaseAddress(table, 'a');
    const c = take(table, 'c');
    assert.equal(c.address, '10.199.7.4', 'round robin continues after the last handed out');
    assert.notEqual(c.address, '10.199.7.3');
    // Wrap around: fill the rest, the freed .2 comes back last.
    let t = c.table;
    const rest = ['d', 'e', 'f'].map((id) => {
      const r = take(t, id);
      t = r.table;
      return r.address;
    });
    assert.deepEqual(rest, ['10.199.7.5', '10.199.7.6', '10.199.7.2']);
    assert.equal(new Set(Object.keys(t.leases)).size, Object.keys(t.leases).length);
  });

  it('reclaims the leases of sandboxes that are not live', () => {
    let table = emptyTable(subnet);
    for (const id of ['a', 'b', 'c']) table = take(table, id).table;
    const { table: next, reclaimed } = reclaimAddresses(table, new Set(['b']));
    assert.deepEqual(reclaimed.sort(), ['a', 'c']);
    assert.deepEqual(Object.values(next.leases), ['b']);
  });

  it('tells overlapping ranges apart', () => {
    const sub = parseSubnet('10.88.0.0/24');
    assert.ok(overlaps(sub, parseSubnet('10.88.0.0/16')));
    assert.ok(overlaps(sub, { network: parseSubnet('10.88.0.128/25').network, prefixLength: 25 }));
    assert.ok(!overlaps(sub, parseSubnet('10.88.1.0/24')));
    assert.ok(overlaps(sub, { network: 0, prefixLength: 0 }), 'a default route overlaps everything: callers skip it');
  });

  it('rejects subnets without room for a gateway and a sandbox', () => {
    assert.throws(() => parseSubnet('10.0.0.0/31'));
    assert.throws(() => parseSubnet('10.0.0.300/24'));
    assert.equal(parseSubnet('10.88.0.77/24').cidr, '10.88.0.0/24');
  });
});
