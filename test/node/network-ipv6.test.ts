import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../lib/log.js';
import type { NetworkResult, SandboxRef } from '../../node-agent/contracts.js';
import { bytesToIp6, ip6ToBytes } from '../../node-agent/network/cidr6.js';
import { hostVethName } from '../../node-agent/network/config.js';
import { BridgeNetworkProvider } from '../../node-agent/network/provider.js';
import { NetWorld, sandboxRef } from '../harness/network/world.js';

/*
 * Node tier (root, real kernel): a dual-stack node (an IPv6 ULA prefix next to
 * the IPv4 subnet). Sandboxes get both addresses, reach each other and an
 * outside host over IPv6 (masqueraded behind the node's IPv6 address), are
 * reached through published ports on the node's IPv6 address, and egress Deny
 * covers IPv6. The host has Docker-style iptables-nft FORWARD chains with policy
 * DROP for both families and br_netfilter on.
 */

describe('node: network: dual-stack IPv6 (root)', function () {
  this.timeout(60_000);
  const log = createLogger('test-network-ipv6');
  const world = new NetWorld('six');
  let dir = '';
  let provider: BridgeNetworkProvider | undefined;
  const a = sandboxRef('a6');
  const b = sandboxRef('b6');
  const deny = sandboxRef('deny6');
  const results = new Map<string, NetworkResult>();
  const ip6 = (s: SandboxRef) => results.get(s.id)!.sandboxIPs![1]!;
  const rules = () => world.exec('node', 'nft', 'list', 'ruleset');
  /** socat reports an IPv6 peer as [expanded form]: compare canonically. */
  const ask6 = (from: string, host: string, port: number) =>
    bytesToIp6(ip6ToBytes(world.ask(from, host, port, 'tcp').replace(/^\[|\]$/g, '')));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sptest-net6-'));
    world.enter({ brNetfilter: true, forwardDrop: 'iptables-nft' });
    // What ip6tables-nft leaves when Docker runs with IPv6.
    world.exec('node', 'nft', 'add table ip6 filter');
    world.exec(
      'node',
      'nft',
      'add chain ip6 filter FORWARD { type filter hook forward priority filter; policy drop; }',
    );
    world.addOutsideHost();
    world.addOutsideHost6();
    writeFileSync(join(dir, 'resolv.conf'), `nameserver ${world.outsideIP6}\n`);
    provider = new BridgeNetworkProvider({
      subnet: world.subnet,
      subnet6: world.subnet6,
      bridge: world.bridge,
      table: world.table,
      stateDir: world.stateDir,
      hostIP: world.nodeLanIP,
      mtu: 1500,
      resolvConfPath: join(dir, 'resolv.conf'),
      upstreamResolvConfPath: join(dir, 'missing'),
    });
    const specs = [
      {
        ref: a,
        network: {
          mode: 'Bridge' as const,
          egress: 'Allow' as const,
          ports: [{ containerPort: 80, hostPort: 8080, protocol: 'TCP' as const }],
        },
      },
      { ref: b, network: { mode: 'Bridge' as const, egress: 'Allow' as const } },
      { ref: deny, network: { mode: 'Bridge' as const, egress: 'Deny' as const } },
    ];
    for (const s of specs)
      results.set(
        s.ref.id,
        await provider.setup(
          { sandbox: s.ref, netnsPath: world.addNamespace(s.ref.name), hostname: s.ref.name, network: s.network },
          log,
        ),
      );
    await world.serveWhoAmI(a.name, 80, 'tcp6');
    await world.serveWhoAmI(b.name, 80, 'tcp6');
    await world.serveWhoAmI('out', 8080, 'tcp6');
    await world.serveWhoAmI('out', 53, 'tcp6');
  });

  after(() => {
    try {
      provider?.removeNode(log, true);
      provider?.close();
    } finally {
      world.leave();
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives each sandbox an IPv6 address paired with its IPv4 one, in its hosts file too', () => {
    const r = results.get(a.id)!;
    const prefix = world.subnet6.replace('::/64', ':');
    assert.equal(r.sandboxIPs?.[0], r.sandboxIP);
    assert.ok(r.sandboxIPs?.[1]?.startsWith(prefix), `${r.sandboxIPs?.[1]} is in ${world.subnet6}`);
    assert.notEqual(ip6(a), ip6(b));
    assert.match(r.hosts, new RegExp(`^${ip6(a)}\\ta6$`, 'm'));
    assert.match(world.exec(a.name, 'ip', '-6', 'route', 'show', 'default'), /default via fd00:199:/);
  });

  it('two sandboxes reach each other over IPv6, seeing each other’s real address', () => {
    assert.equal(ask6(b.name, ip6(a), 80), ip6(b));
  });

  it('a sandbox reaches an outside host over IPv6, which sees the node’s IPv6 address (masquerade)', () => {
    assert.equal(ask6(a.name, world.outsideIP6, 8080), world.nodeLanIP6);
  });

  it('a published port answers an outside host on the node’s IPv6 address, keeping the client address', () => {
    assert.equal(ask6('out', world.nodeLanIP6, 8080), world.outsideIP6);
  });

  it('egress Deny covers IPv6 but lets DNS to an IPv6 resolver through', () => {
    assert.ok(world.cannotReach(deny.name, world.outsideIP6, 8080, 'tcp'), 'the outside host is out of reach');
    assert.ok(world.cannotReach(deny.name, ip6(b), 80, 'tcp'), 'so is another sandbox');
    assert.equal(ask6(deny.name, world.outsideIP6, 53), world.nodeLanIP6, 'DNS to the resolver is allowed');
  });

  it('a sandbox cannot send from an IPv6 address that is not its own', () => {
    const spoofed = ip6(b).replace(/:[0-9a-f]+$/, ':fffe');
    world.exec(a.name, 'ip', '-6', 'addr', 'add', `${spoofed}/128`, 'dev', 'eth0', 'nodad');
    assert.ok(
      world.cannotReach(a.name, world.outsideIP6, 8080, 'tcp', spoofed),
      'frames from a foreign address are dropped at the bridge port',
    );
    world.exec(a.name, 'ip', '-6', 'addr', 'del', `${spoofed}/128`, 'dev', 'eth0');
  });

  it('teardown removes the IPv6 rules with the rest, and the accept rules of both iptables families are there once', async () => {
    const ruleset = rules();
    for (const family of ['ip', 'ip6']) {
      const chain = world.exec('node', 'nft', 'list', 'chain', family, 'filter', 'FORWARD');
      assert.equal(
        chain.match(new RegExp(`sandpit bridge ${world.bridge}`, 'g'))?.length,
        2,
        `${family} filter FORWARD`,
      );
    }
    assert.match(ruleset, /dnat ip6 to \[fd00:199:/);
    for (const s of [a, b, deny]) await provider!.teardown(s, log);
    assert.doesNotMatch(rules(), /sandpit:[0-9a-f]{12} /);
    assert.doesNotMatch(world.exec('node', 'ip', '-br', 'link'), new RegExp(hostVethName(a.id)));
    assert.deepEqual(provider!.leases(), {});
  });
});
