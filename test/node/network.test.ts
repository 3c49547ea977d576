import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../lib/log.js';
import type { NetworkResult, SandboxRef } from '../../node-agent/contracts.js';
import { BridgeNetworkProvider } from '../../node-agent/network/provider.js';
import { NetWorld, sandboxRef } from '../harness/network/world.js';

/*
 * Node tier (root, real kernel): sandboxes on the bridge talk to each other,
 * to an outside host routed through the node, and are reached through
 * published ports. Run three times: on a plain host, and on hosts where
 * Docker-style iptables (nft-based, and legacy x_tables) left `filter FORWARD`
 * with policy DROP and br_netfilter sends bridged traffic through it.
 */

const variants = [
  { name: 'plain host', brNetfilter: false, forwardDrop: false as const },
  {
    name: 'host FORWARD policy DROP (iptables-nft) and br_netfilter on',
    brNetfilter: true,
    forwardDrop: 'iptables-nft' as const,
  },
  {
    name: 'host FORWARD policy DROP (iptables-legacy) and br_netfilter on',
    brNetfilter: true,
    forwardDrop: 'iptables-legacy' as const,
  },
];

for (const variant of variants) {
  describe(`node: network: ${variant.name} (root)`, function () {
    this.timeout(60_000);
    const log = createLogger('test-network');
    const world = new NetWorld('net');
    let dir = '';
    let provider: BridgeNetworkProvider | undefined;
    const a = sandboxRef('a');
    const b = sandboxRef('b');
    const deny = sandboxRef('deny');
    const results = new Map<string, NetworkResult>();
    const ip = (s: SandboxRef) => results.get(s.id)!.sandboxIP!;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sptest-net-'));
      world.enter(variant);
      world.addOutsideHost();
      // The node's resolver is the outside host: egress Deny must still let DNS to it through.
      writeFileSync(
        join(dir, 'resolv.conf'),
        `nameserver 127.0.0.53\nnameserver ${world.outsideIP}\nsearch sptest.example\n`,
      );
      provider = new BridgeNetworkProvider({
        subnet: world.subnet,
        bridge: world.bridge,
        table: world.table,
        stateDir: world.stateDir,
        hostIP: world.nodeLanIP,
        resolvConfPath: join(dir, 'resolv.conf'),
        upstreamResolvConfPath: join(dir, 'missing'),
      });
      const specs = [
        {
          ref: a,
          network: {
            mode: 'Bridge' as const,
            egress: 'Allow' as const,
            ports: [
              { containerPort: 80, hostPort: 8080, protocol: 'TCP' as const },
              { containerPort: 53, hostPort: 5353, protocol: 'UDP' as const },
            ],
          },
        },
        { ref: b, network: { mode: 'Bridge' as const, egress: 'Allow' as const } },
        {
          ref: deny,
          network: {
            mode: 'Bridge' as const,
            egress: 'Deny' as const,
            ports: [{ containerPort: 80, hostPort: 8081, protocol: 'TCP' as const }],
          },
        },
      ];
      for (const s of specs) {
        const netnsPath = world.addNamespace(s.ref.name);
        results.set(
          s.ref.id,
          await provider.setup({ sandbox: s.ref, netnsPath, hostname: s.ref.name, network: s.network }, log),
        );
      }
      await world.serveWhoAmI(a.name, 80, 'tcp');
      await world.serveWhoAmI(a.name, 53, 'udp');
      await world.serveWhoAmI(b.name, 80, 'tcp');
      await world.serveWhoAmI(deny.name, 80, 'tcp');
      await world.serveWhoAmI('out', 8080, 'tcp');
      await world.serveWhoAmI('out', 53, 'udp');
      await world.serveWhoAmI('out', 53, 'tcp');
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

    it('gives each sandbox its own address, the node address, and its resolv.conf and hosts', () => {
      const ips = [a, b, deny].map(ip);
      assert.equal(new Set(ips).size, 3);
      for (const addr of ips) assert.match(addr, new RegExp(`^10\\.199\\.${world.k}\\.\\d+$`));
      assert.equal(results.get(a.id)!.hostIP, world.nodeLanIP);
      assert.match(
        results.get(a.id)!.resolvConf,
        new RegExp(`^nameserver ${world.outsideIP.replaceAll('.', '\\.')}$`, 'm'),
      );
      assert.doesNotMatch(results.get(a.id)!.resolvConf, /127\.0\.0\.53/);
      assert.match(results.get(a.id)!.hosts, new RegExp(`^${ip(a).replaceAll('.', '\\.')}\\ta$`, 'm'));
      assert.match(
        world.exec(a.name, 'ip', '-4', 'route', 'show', 'default'),
        new RegExp(`via 10\\.199\\.${world.k}\\.1 dev eth0`),
      );
      assert.match(world.exec(a.name, 'ip', '-br', 'link', 'show', 'lo'), /UNKNOWN|UP/);
      assert.equal(world.exec(a.name, 'cat', '/proc/sys/net/ipv4/ip_unprivileged_port_start').trim(), '0');
    });

    it('two sandboxes reach each other by IP, and see each other’s real address', () => {
      assert.equal(world.ask(b.name, ip(a), 80, 'tcp'), ip(b));
      assert.equal(world.ask(a.name, ip(b), 80, 'tcp'), ip(a));
    });

    it('a sandbox reaches an outside host, which sees the node’s address (masquerade)', () => {
      assert.equal(world.ask(a.name, world.outsideIP, 8080, 'tcp'), world.nodeLanIP);
      assert.equal(world.ask(b.name, world.outsideIP, 53, 'udp'), world.nodeLanIP);
    });

    it('a published port answers an outside host (TCP and UDP), keeping the client address', () => {
      assert.equal(world.ask('out', world.nodeLanIP, 8080, 'tcp'), world.outsideIP);
      assert.equal(world.ask('out', world.nodeLanIP, 5353, 'udp'), world.outsideIP);
    });

    it('a published port answers the node’s own 127.0.0.1 and node address', () => {
      const gateway = `10.199.${world.k}.1`;
      assert.equal(world.ask('node', '127.0.0.1', 8080, 'tcp'), gateway);
      assert.equal(world.ask('node', '127.0.0.1', 5353, 'udp'), gateway);
      assert.equal(world.ask('node', world.nodeLanIP, 8080, 'tcp'), world.nodeLanIP);
    });

    it('a sandbox reaches its own and another sandbox’s published port through the node (hairpin)', () => {
      const gateway = `10.199.${world.k}.1`;
      assert.equal(world.ask(a.name, world.nodeLanIP, 8080, 'tcp'), gateway);
      assert.equal(world.ask(b.name, world.nodeLanIP, 8080, 'tcp'), gateway);
    });

    it('an outside host routing to the sandbox subnet cannot reach unpublished sandbox ports', () => {
      world.exec('out', 'ip', 'route', 'replace', world.subnet, 'via', world.nodeLanIP);
      assert.ok(world.cannotReach('out', ip(b), 80, 'tcp'), 'direct access to a sandbox address must be dropped');
      assert.ok(world.cannotReach('out', ip(a), 80, 'tcp'));
      // The published way in still works.
      assert.equal(world.ask('out', world.nodeLanIP, 8080, 'tcp'), world.outsideIP);
    });

    it('a port published on one hostIP answers on that address only', async () => {
      const local = sandboxRef('local');
      const lan = sandboxRef('lan');
      for (const [ref, hostIP, hostPort] of [
        [local, '127.0.0.1', 8090],
        [lan, world.nodeLanIP, 8091],
      ] as const) {
        const netnsPath = world.addNamespace(ref.name);
        const r = await provider!.setup(
          {
            sandbox: ref,
            netnsPath,
            hostname: ref.name,
            network: {
              mode: 'Bridge',
              egress: 'Allow',
              ports: [{ containerPort: 80, hostPort, protocol: 'TCP', hostIP }],
            },
          },
          log,
        );
        assert.deepEqual(
          r.publishedPorts?.map((p) => p.hostIP),
          [hostIP],
        );
        await world.serveWhoAmI(ref.name, 80, 'tcp');
      }
      try {
        const gateway = `10.199.${world.k}.1`;
        assert.equal(
          world.ask('node', '127.0.0.1', 8090, 'tcp'),
          gateway,
          'hostIP 127.0.0.1 answers the node on loopback',
        );
        assert.ok(
          world.cannotReach('out', world.nodeLanIP, 8090, 'tcp'),
          'and not an outside host on the node address',
        );
        assert.equal(
          world.ask('out', world.nodeLanIP, 8091, 'tcp'),
          world.outsideIP,
          'hostIP of the node address answers there',
        );
        assert.ok(world.cannotReach('node', '127.0.0.1', 8091, 'tcp'), "and not on the node's 127.0.0.1");
      } finally {
        await provider!.teardown(local, log);
        await provider!.teardown(lan, log);
      }
    });

    it('a UDP port published while a client is already sending is answered at once (stale flows forgotten)', async () => {
      const late = sandboxRef('late');
      const netnsPath = world.addNamespace(late.name);
      // The client sends before anything listens: conntrack remembers the flow, with no DNAT.
      assert.throws(
        () => world.ask('out', world.nodeLanIP, 5400, 'udp', 1, 40123, undefined, 1),
        'nothing answers yet',
      );
      const r = await provider!.setup(
        {
          sandbox: late,
          netnsPath,
          hostname: late.name,
          network: { mode: 'Bridge', egress: 'Allow', ports: [{ containerPort: 53, hostPort: 5400, protocol: 'UDP' }] },
        },
        log,
      );
      await world.serveWhoAmI(late.name, 53, 'udp');
      assert.equal(world.ask('out', world.nodeLanIP, 5400, 'udp', 2, 40123), world.outsideIP);
      assert.ok(r.sandboxIP);
      await provider!.teardown(late, log);
    });

    it('a sandbox cannot send from an address that is not its own (so egress Deny cannot be dodged)', () => {
      const spoofed = `10.199.${world.k}.250`;
      world.exec(deny.name, 'ip', 'addr', 'add', `${spoofed}/32`, 'dev', 'eth0');
      try {
        assert.ok(
          world.cannotReach(deny.name, world.outsideIP, 8080, 'tcp', spoofed),
          'a spoofed source must not get out',
        );
      } finally {
        world.exec(deny.name, 'ip', 'addr', 'del', `${spoofed}/32`, 'dev', 'eth0');
      }
    });

    it('egress Deny blocks the outside host and other sandboxes but lets DNS to its resolver through', () => {
      assert.ok(
        world.cannotReach(deny.name, world.outsideIP, 8080, 'tcp'),
        'egress to the outside host must be blocked',
      );
      assert.equal(world.ask(deny.name, world.outsideIP, 53, 'udp'), world.nodeLanIP);
      assert.equal(world.ask(deny.name, world.outsideIP, 53, 'tcp'), world.nodeLanIP);
      // The bridge sends its own traffic through netfilter, so this holds even with the global bridge-nf-call-iptables off.
      assert.ok(world.cannotReach(deny.name, ip(b), 80, 'tcp'), 'bridged traffic to another sandbox is blocked too');
      // Inbound still works: its published port answers, and so does a direct connection from a neighbour.
      assert.equal(world.ask('out', world.nodeLanIP, 8081, 'tcp'), world.outsideIP);
      assert.equal(world.ask(a.name, ip(deny), 80, 'tcp'), ip(a));
    });
  });
}
