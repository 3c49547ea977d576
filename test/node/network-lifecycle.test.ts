import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../../lib/log.js';
import type { SandboxRef } from '../../node-agent/contracts.js';
import type { BridgeNetworkOptions } from '../../node-agent/network/config.js';
import { hostVethName } from '../../node-agent/network/config.js';
import { BridgeNetworkProvider } from '../../node-agent/network/provider.js';
import { NetworkError, NetworkReason } from '../../node-agent/network/status.js';
import { NetWorld, sandboxRef } from '../harness/network/world.js';

/*
 * Node tier (root, real kernel): the life cycle of sandbox networks — teardown,
 * leaks, garbage collection, 500 create/delete cycles, an agent killed midway.
 * Runs inside a test node namespace (see test/harness/network/world.ts).
 */

describe('node: network lifecycle: teardown, GC, cycles, agent restart (root)', function () {
  this.timeout(180_000);
  const log = createLogger('test-network-lifecycle');
  const world = new NetWorld('life');
  let options: BridgeNetworkOptions;
  let provider: BridgeNetworkProvider;

  const spvLinks = () =>
    (JSON.parse(world.exec('node', 'ip', '-j', 'link', 'show')) as { ifname: string }[])
      .map((l) => l.ifname)
      .filter((n) => n.startsWith('spv'));
  const rules = () =>
    ['inet', 'bridge'].flatMap((family) =>
      (
        JSON.parse(world.exec('node', 'nft', '-j', 'list', 'table', family, world.table)) as {
          nftables: { rule?: { comment?: string } }[];
        }
      ).nftables
        .filter((o) => o.rule)
        .map((o) => o.rule!.comment ?? ''),
    );
  const sandboxRules = (id?: string) =>
    rules().filter((c) => (id ? c.startsWith(`sandpit:${id} `) : /^sandpit:[0-9a-f]{12} /.test(c)));
  const setup = (
    ref: SandboxRef,
    p = provider,
    extra: Partial<{
      egress: 'Allow' | 'Deny';
      ports: { containerPort: number; hostPort: number; protocol: 'TCP' | 'UDP' }[];
    }> = {},
  ) =>
    p.setup(
      {
        sandbox: ref,
        netnsPath: world.addNamespace(ref.name),
        hostname: ref.name,
        network: { mode: 'Bridge', egress: extra.egress ?? 'Allow', ports: extra.ports },
      },
      log,
    );

  before(() => {
    world.enter({ brNetfilter: true, forwardDrop: 'iptables-nft' });
    options = { subnet: world.subnet, bridge: world.bridge, table: world.table, stateDir: world.stateDir, mtu: 1500 };
    provider = new BridgeNetworkProvider(options);
  });

  after(() => {
    try {
      provider?.removeNode(log, true);
      provider?.close();
    } finally {
      world.leave();
    }
  });

  it('deleting a sandbox removes its veth, its rules and its lease, and a second delete is a no-op', async () => {
    const s = sandboxRef('del');
    const r = await setup(s, provider, {
      egress: 'Deny',
      ports: [{ containerPort: 80, hostPort: 18080, protocol: 'TCP' }],
    });
    assert.ok(spvLinks().includes(hostVethName(s.id)));
    assert.equal(sandboxRules(s.id).length, 6, 'one DNAT rule, three egress rules, two anti-spoof rules');
    assert.equal(provider.leases()[r.sandboxIP!], s.id);
    await provider.teardown(s, log);
    assert.deepEqual(spvLinks(), []);
    assert.deepEqual(sandboxRules(s.id), []);
    assert.deepEqual(provider.leases(), {});
    await provider.teardown(s, log);
    world.deleteNamespace(s.name);
    await provider.teardown(s, log);
  });

  it('a repeated setup is idempotent: same address, one veth, no duplicate rules', async () => {
    const s = sandboxRef('again');
    const ports = [{ containerPort: 80, hostPort: 18081, protocol: 'TCP' as const }];
    const first = await setup(s, provider, { ports });
    const second = await provider.setup(
      {
        sandbox: s,
        netnsPath: world.path(s.name),
        hostname: s.name,
        network: { mode: 'Bridge', egress: 'Allow', ports },
      },
      log,
    );
    assert.equal(second.sandboxIP, first.sandboxIP);
    assert.deepEqual(spvLinks(), [hostVethName(s.id)]);
    assert.equal(sandboxRules(s.id).length, 3);
    await provider.teardown(s, log);
  });

  it('mode None brings loopback up and takes nothing from the node', async () => {
    const s = sandboxRef('none');
    const r = await provider.setup(
      {
        sandbox: s,
        netnsPath: world.addNamespace(s.name),
        hostname: 'lonely',
        network: { mode: 'None', egress: 'Allow' },
      },
      log,
    );
    assert.equal(r.sandboxIP, undefined);
    assert.match(r.hosts, /^127\.0\.1\.1\tlonely$/m);
    assert.match(world.exec(s.name, 'ip', '-br', 'addr', 'show', 'lo'), /127\.0\.0\.1/);
    assert.deepEqual(spvLinks(), []);
    assert.deepEqual(provider.leases(), {});
  });

  it('a hostPort taken by another sandbox fails with HostPortConflict and leaves nothing behind', async () => {
    const owner = sandboxRef('owner');
    const late = sandboxRef('late');
    const ok = await setup(owner, provider, { ports: [{ containerPort: 80, hostPort: 18082, protocol: 'TCP' }] });
    assert.ok(ok.sandboxIP);
    let failure: unknown;
    try {
      await setup(late, provider, { ports: [{ containerPort: 81, hostPort: 18082, protocol: 'TCP' }] });
    } catch (err) {
      failure = err;
    }
    assert.ok(failure instanceof NetworkError, String(failure));
    assert.equal(failure.reason, NetworkReason.HostPortConflict);
    assert.match(failure.message, /hostPort 18082\/TCP is already published/);
    assert.deepEqual(spvLinks(), [hostVethName(owner.id)]);
    assert.deepEqual(Object.values(provider.leases()), [owner.id]);
    assert.deepEqual(sandboxRules(late.id), []);
    await provider.teardown(owner, log);
  });

  it('holds published hostPorts like docker-proxy: no program of the node can bind them until the sandbox goes, and a restarted agent holds them again', async () => {
    // A program of the node, as most are written (Node.js sets SO_REUSEADDR): did it get the port?
    const canBind = (proto: 'tcp' | 'udp', port: number, host = '0.0.0.0') => {
      const code =
        proto === 'tcp'
          ? `require('net').createServer().once('error', (e) => { console.log(e.code); process.exit(0); }).listen(${port}, '${host}', function () { console.log('bound'); this.close(); })`
          : `const s = require('dgram').createSocket('${host.includes(':') ? 'udp6' : 'udp4'}'); s.once('error', (e) => { console.log(e.code); process.exit(0); }); s.bind(${port}, '${host}', () => { console.log('bound'); s.close(); })`;
      const out = world.exec('node', process.execPath, '-e', code).trim();
      if (out !== 'bound' && out !== 'EADDRINUSE') throw new Error(`binding ${host}:${port}/${proto}: ${out}`);
      return out === 'bound';
    };
    const s = sandboxRef('held');
    const ports = [
      { containerPort: 80, hostPort: 18181, protocol: 'TCP' as const },
      { containerPort: 53, hostPort: 18182, protocol: 'UDP' as const },
    ];
    assert.ok(canBind('tcp', 18181) && canBind('udp', 18182), 'free before');
    await setup(s, provider, { ports });
    assert.equal(canBind('tcp', 18181), false, 'TCP on every address is held');
    assert.equal(canBind('tcp', 18181, '127.0.0.1'), false, 'and on a single address');
    assert.equal(canBind('udp', 18182), false, 'UDP is held');

    // The agent dies (its sockets with it) and a new one starts: the rules still name the ports, and it binds them again.
    const live = new Set(Object.values(provider.leases()));
    provider.close();
    assert.ok(canBind('tcp', 18181), 'nothing holds the port while no agent runs');
    provider = new BridgeNetworkProvider(options);
    provider.collectGarbageSync(live, log); // what the agent runs at start, after re-adopting its sandboxes
    assert.equal(canBind('tcp', 18181), false, 'held again after the restart');
    assert.equal(canBind('udp', 18182), false);

    await provider.teardown(s, log);
    assert.ok(canBind('tcp', 18181) && canBind('udp', 18182), 'free again once the sandbox is deleted');
    world.deleteNamespace(s.name);
  });

  it('a missing network namespace fails with NetnsNotFound', async () => {
    const s = sandboxRef('ghost');
    await assert.rejects(
      provider.setup(
        {
          sandbox: s,
          netnsPath: '/run/netns/sptest-does-not-exist',
          hostname: s.name,
          network: { mode: 'Bridge', egress: 'Allow' },
        },
        log,
      ),
      (err: unknown) => err instanceof NetworkError && err.reason === NetworkReason.NetnsNotFound,
    );
    assert.deepEqual(provider.leases(), {});
  });

  it('works through the nft binary when libnftables is not used', async () => {
    const viaBinary = new BridgeNetworkProvider({ ...options, nftBackend: 'nft' });
    try {
      assert.equal(viaBinary.nftBackend, 'nft');
      const s = sandboxRef('binary');
      await setup(s, viaBinary, { ports: [{ containerPort: 80, hostPort: 18083, protocol: 'UDP' }] });
      assert.equal(sandboxRules(s.id).length, 3);
      await viaBinary.teardown(s, log);
      assert.deepEqual(sandboxRules(s.id), []);
    } finally {
      viaBinary.close();
    }
  });

  it('GC removes what non-live sandboxes left, and puts back node rules a firewall reload flushed', async () => {
    const keep = sandboxRef('keep');
    const leak = sandboxRef('leak');
    await setup(keep, provider, { egress: 'Deny' });
    await setup(leak, provider, { egress: 'Deny', ports: [{ containerPort: 80, hostPort: 18084, protocol: 'TCP' }] });
    world.exec('node', 'nft', 'flush', 'chain', 'inet', world.table, 'forward');
    world.exec('node', 'nft', 'flush', 'chain', 'ip', 'filter', 'FORWARD');
    const got = provider.collectGarbageSync(new Set([keep.id]), log);
    assert.deepEqual(got.links, [hostVethName(leak.id)]);
    assert.deepEqual(got.rules, [leak.id]);
    assert.deepEqual(got.leases, [leak.id]);
    assert.deepEqual(spvLinks(), [hostVethName(keep.id)]);
    assert.equal(sandboxRules(keep.id).length, 5);
    assert.ok(rules().includes('sandpit: no direct access to sandbox addresses'), 'forward chain rules are back');
    const forward = world.exec('node', 'nft', 'list', 'chain', 'ip', 'filter', 'FORWARD');
    assert.equal(
      forward.match(new RegExp(`sandpit bridge ${world.bridge}`, 'g'))?.length,
      2,
      "accept rules are back in iptables' FORWARD, once",
    );
    await provider.teardown(keep, log);
  });

  it('refuses a sandbox subnet the node already uses, with SubnetInUse', () => {
    world.exec('node', 'ip', 'link', 'add', `${world.bridge}x`, 'type', 'veth', 'peer', 'name', `${world.bridge}z`);
    world.exec('node', 'ip', 'addr', 'add', `10.199.${world.k + 1}.77/16`, 'dev', `${world.bridge}x`);
    const clashing = new BridgeNetworkProvider({
      ...options,
      subnet: `10.199.${world.k}.0/24`,
      bridge: `${world.bridge}y`,
      table: `${world.table}y`,
      stateDir: `${world.stateDir}-y`,
    });
    try {
      assert.throws(
        () => clashing.ensureNode(log),
        (err: unknown) =>
          err instanceof NetworkError &&
          err.reason === NetworkReason.SubnetInUse &&
          /overlaps 10\.199\./.test((err as Error).message),
      );
    } finally {
      clashing.close();
      rmSync(`${world.stateDir}-y`, { recursive: true, force: true });
      world.exec('node', 'ip', 'link', 'del', `${world.bridge}x`);
    }
  });

  it('500 create/delete cycles leave zero veths, rules and leases', async () => {
    const baseRules = rules().length;
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const s = sandboxRef(`cycle${i}`);
      const r = await setup(
        s,
        provider,
        i % 2 ? { egress: 'Deny', ports: [{ containerPort: 80, hostPort: 19000, protocol: 'TCP' }] } : {},
      );
      seen.add(r.sandboxIP!);
      await provider.teardown(s, log);
      world.deleteNamespace(s.name);
    }
    assert.ok(seen.size > 200, 'addresses rotate rather than being reused at once');
    assert.deepEqual(spvLinks(), []);
    assert.deepEqual(sandboxRules(), []);
    assert.equal(rules().length, baseRules);
    assert.deepEqual(provider.leases(), {});
  });

  it('an agent killed midway reconciles on restart without duplicates', async () => {
    const refs = Array.from({ length: 12 }, (_, i) => sandboxRef(`restart${i}`));
    const sandboxes = refs.map((ref) => ({ ref, netnsPath: world.addNamespace(ref.name) }));
    const script = fileURLToPath(new URL('../harness/network/agent-child.js', import.meta.url));
    const child = spawn(process.execPath, [script, JSON.stringify({ options, sandboxes })], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const ready: string[] = [];
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`stand-in agent exited early (${code})`)));
      child.stdout.on('data', (d: Buffer) => {
        ready.push(...d.toString().split('\n').filter(Boolean));
        if (ready.length >= 5) {
          child.removeAllListeners('exit');
          child.kill('SIGKILL');
          child.once('exit', () => resolve());
        }
      });
    });
    // The new agent: one sandbox is gone (deleted while the agent was down), the rest are live and set up again.
    const restarted = new BridgeNetworkProvider(options);
    try {
      const [gone, ...live] = refs;
      restarted.collectGarbageSync(new Set(live.map((r) => r.id)), log);
      for (const ref of live) {
        await restarted.setup(
          {
            sandbox: ref,
            netnsPath: world.path(ref.name),
            hostname: ref.name,
            network: {
              mode: 'Bridge',
              egress: 'Deny',
              ports: [{ containerPort: 80, hostPort: 20000 + refs.indexOf(ref), protocol: 'TCP' }],
            },
          },
          log,
        );
      }
      const leases = restarted.leases();
      assert.equal(Object.keys(leases).length, live.length, 'one lease per live sandbox');
      assert.deepEqual(new Set(Object.values(leases)), new Set(live.map((r) => r.id)));
      assert.deepEqual(spvLinks().sort(), live.map((r) => hostVethName(r.id)).sort());
      for (const ref of live) assert.equal(sandboxRules(ref.id).length, 6, `rules of ${ref.name}`);
      assert.deepEqual(sandboxRules(gone!.id), []);
      const forward = world.exec('node', 'nft', 'list', 'chain', 'ip', 'filter', 'FORWARD');
      assert.equal(forward.match(new RegExp(`sandpit bridge ${world.bridge}`, 'g'))?.length, 2);
      for (const ref of live) await restarted.teardown(ref, log);
      assert.deepEqual(spvLinks(), []);
      assert.deepEqual(sandboxRules(), []);
      assert.deepEqual(restarted.leases(), {});
    } finally {
      restarted.close();
    }
  });
});
