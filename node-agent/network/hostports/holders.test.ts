import assert from 'node:assert/strict';
import { holdPlan, sockaddr } from './holders.js';

describe('unit: published port holders', () => {
  it('holds each port once on IPv4, and on [::] too for a wildcard port of a dual-stack node', () => {
    const ports = [
      { protocol: 'TCP' as const, hostPort: 8080 },
      { protocol: 'TCP' as const, hostPort: 8080 }, // the same port twice in a spec is held once
      { protocol: 'UDP' as const, hostPort: 8080 },
      { protocol: 'UDP' as const, hostPort: 53, hostIP: '192.0.2.2' },
    ];
    const plan = (dual: boolean) =>
      holdPlan(ports, dual).map((h) => `${h.family} ${h.port.protocol} ${h.port.hostIP ?? '*'}:${h.port.hostPort}`);
    assert.deepEqual(plan(false), ['ipv4 TCP *:8080', 'ipv4 UDP *:8080', 'ipv4 UDP 192.0.2.2:53']);
    assert.deepEqual(
      plan(true),
      ['ipv4 TCP *:8080', 'ipv6 TCP *:8080', 'ipv4 UDP *:8080', 'ipv6 UDP *:8080', 'ipv4 UDP 192.0.2.2:53'],
      'an address-bound port is IPv4 only',
    );
  });

  it('lays out sockaddr_in and sockaddr_in6 as the kernel reads them', () => {
    assert.equal(sockaddr('ipv4', 8080, '192.0.2.2').toString('hex'), '02001f90c0000202' + '00'.repeat(8));
    assert.equal(sockaddr('ipv4', 53).toString('hex'), '02000035' + '00'.repeat(12), 'no address: 0.0.0.0');
    const v6 = sockaddr('ipv6', 443);
    assert.equal(v6.length, 28);
    assert.equal(v6.toString('hex'), '0a0001bb' + '00'.repeat(24), 'AF_INET6, port 443, [::]');
  });
});
