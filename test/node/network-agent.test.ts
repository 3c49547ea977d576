import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../lib/log.js';
import type { SandboxObservation } from '../../node-agent/contracts.js';
import { OciImageProvider } from '../../node-agent/images/provider.js';
import type { ImageRecord } from '../../node-agent/images/store.js';
import { hostVethName } from '../../node-agent/network/config.js';
import { BridgeNetworkProvider } from '../../node-agent/network/provider.js';
import { NetworkReason } from '../../node-agent/network/status.js';
import { DirectoryImageProvider } from '../../node-agent/runtime/directory-image.js';
import { NodeGarbageCollector } from '../../node-agent/runtime/gc.js';
import { RuntimeService } from '../../node-agent/runtime/service.js';
import { nodeNetworks, RoutedImageProvider } from '../../node-agent/runtime/providers.js';
import { SandboxSupervisor } from '../../node-agent/runtime/supervisor.js';
import { nodeEffects } from '../../node-agent/runtime/deps.js';
import { desiredStatusPatch } from '../../protocol/status-patch.js';
import { NetWorld, sandboxRef } from '../harness/network/world.js';
import { applied, cleanupRuntime, idOf, ROOTFS, sandbox, testConfig } from './runtime-env.js';

/*
 * Node tier (root, real kernel, real runtime): the network as the agent sees
 * it through the runtime seam — published ports in the observation that
 * becomes the Sandbox status, NetworkReady=False with a reason a person can act
 * on when a hostPort is taken (by a sandbox, or by a program of the node), and
 * the agent's garbage collection of what a crashed create left behind (leases,
 * veths, rules, image references and blobs) next to live sandboxes it must keep.
 * The runtime runs inside a test node namespace (test/harness/network/world.ts).
 */

describe('node: network through the agent runtime: status, hostPort clashes, garbage collection (root)', function () {
  this.timeout(120_000);
  const log = createLogger('test-network-agent');
  const world = new NetWorld('agent');
  const config = testConfig();
  const imageRoot = mkdtempSync(join(tmpdir(), 'sptest-agent-images-'));
  let bridge: BridgeNetworkProvider;
  let oci: OciImageProvider;
  let svc: RuntimeService;
  let gc: NodeGarbageCollector;

  const spvLinks = () =>
    (JSON.parse(world.exec('node', 'ip', '-j', 'link', 'show')) as { ifname: string }[])
      .map((l) => l.ifname)
      .filter((n) => n.startsWith('spv'))
      .sort();
  const ruleComments = () =>
    ['inet', 'bridge'].flatMap((family) =>
      (
        JSON.parse(world.exec('node', 'nft', '-j', 'list', 'table', family, world.table)) as {
          nftables: { rule?: { comment?: string } }[];
        }
      ).nftables
        .filter((o) => o.rule?.comment?.startsWith('sandpit:'))
        .map((o) => o.rule!.comment!),
    );
  const rulesOf = (id: string) => ruleComments().filter((c) => c.startsWith(`sandpit:${id} `));
  const bridged = (
    name: string,
    ports: { name?: string; containerPort: number; hostPort: number; protocol: 'TCP' | 'UDP' }[],
  ) =>
    sandbox(name, {
      network: { mode: 'Bridge', ports },
      containers: [{ name: 'main', image: `dir:${ROOTFS}`, command: ['/bin/sleep', '3600'] }],
    });
  const condition = (obs: SandboxObservation | undefined, type: string) =>
    obs?.status.conditions?.find((c) => c.type === type);

  const web = bridged('web', [{ name: 'http', containerPort: 80, hostPort: 8080, protocol: 'TCP' }]);

  before(async () => {
    world.enter({ brNetfilter: true, forwardDrop: 'iptables-nft' });
    bridge = new BridgeNetworkProvider({
      subnet: world.subnet,
      bridge: world.bridge,
      table: world.table,
      stateDir: world.stateDir,
      mtu: 1500,
    });
    oci = new OciImageProvider({ root: imageRoot, log });
    const network = nodeNetworks(bridge);
    // Launchers fork from this thread, so the sandboxes' infra processes start out in the test node namespace.
    const rt = await SandboxSupervisor.start(config, {
      ...(await nodeEffects(config)),
      images: new RoutedImageProvider(new DirectoryImageProvider(), oci),
      network,
      log,
    });
    svc = new RuntimeService(rt);
    gc = new NodeGarbageCollector({
      live: () => new Set(rt.list().map((r) => r.id)),
      network,
      images: oci,
      log,
      intervalMs: 0,
    });
  });

  after(async () => {
    try {
      await cleanupRuntime(svc?.runtime, config);
    } finally {
      try {
        bridge?.removeNode(log, true);
        bridge?.close();
        await oci?.close();
      } finally {
        world.leave();
        rmSync(imageRoot, { recursive: true, force: true });
      }
    }
  });

  it('reports the published ports, the sandbox address and NetworkReady in the observation the agent writes to status', async () => {
    const obs = await applied(svc, web);
    assert.deepEqual(obs.status.publishedPorts, [
      { name: 'http', containerPort: 80, hostPort: 8080, protocol: 'TCP', hostIP: '0.0.0.0' },
    ]);
    assert.match(obs.status.sandboxIP ?? '', /^10\.199\./);
    assert.equal(condition(obs, 'NetworkReady')?.status, 'True');
    assert.deepEqual(svc.get(web.metadata.uid as string)?.status.publishedPorts, obs.status.publishedPorts);
    const patch = desiredStatusPatch({ status: { phase: 'Pending' } }, obs, 'node-a');
    assert.deepEqual(patch?.publishedPorts, obs.status.publishedPorts, 'the status patch carries them');
    assert.equal(
      desiredStatusPatch({ status: {} }, { ...obs, status: { ...obs.status, publishedPorts: undefined } }, 'node-a')
        ?.publishedPorts,
      null,
      'and clears them when gone',
    );
  });

  it("reports the node's address as hostIP in network mode None too, as a Pod's hostIP", async () => {
    const none = sandbox('none-host-ip', {
      network: { mode: 'None' },
      containers: [{ name: 'main', image: `dir:${ROOTFS}`, command: ['/bin/sleep', '3600'] }],
    });
    const obs = await applied(svc, none);
    assert.equal(obs.status.phase, 'Running');
    assert.equal(obs.status.sandboxIP, undefined);
    assert.notEqual(obs.status.hostIP, '127.0.0.1');
    assert.equal(obs.status.hostIP, bridge.nodeIP());
    assert.equal(
      obs.status.hostIP,
      (await svc.apply(web)).status.hostIP,
      'the same address as a bridged sandbox on the node',
    );
    await svc.remove(none.metadata.uid as string);
  });

  it('refuses a second sandbox asking for the same hostPort: NetworkReady=False HostPortConflict naming the holder, nothing left behind', async () => {
    const before = { links: spvLinks(), leases: bridge.leases() };
    const late = bridged('late', [{ containerPort: 81, hostPort: 8080, protocol: 'TCP' }]);
    const reported = await applied(svc, late);
    assert.match(reported.status.message ?? '', /hostPort 8080\/TCP is already published by sandbox test\/web/);
    assert.equal(condition(reported, 'Reconciling')?.status, 'True', 'retried: the port may be freed');
    assert.equal(condition(reported, 'NetworkReady')?.status, 'False');
    assert.equal(condition(reported, 'NetworkReady')?.reason, NetworkReason.HostPortConflict);
    assert.match(condition(reported, 'NetworkReady')?.message ?? '', /test\/web/);
    assert.equal(reported?.status.reason, NetworkReason.HostPortConflict);
    assert.equal(condition(reported, 'Ready')?.status, 'False');
    assert.equal(svc.runtime.get(idOf(late)), undefined, 'no record');
    await svc.remove(late.metadata.uid as string);
    assert.deepEqual(spvLinks(), before.links);
    assert.deepEqual(bridge.leases(), before.leases);
    assert.deepEqual(rulesOf(idOf(late)), []);
  });

  it('refuses a hostPort a program of the node listens on: HostPortInUse naming the program, which keeps its traffic', async () => {
    await world.serveWhoAmI('node', 9090, 'tcp');
    const squatter = bridged('squatter', [{ containerPort: 80, hostPort: 9090, protocol: 'TCP' }]);
    const reported = await applied(svc, squatter);
    assert.match(
      reported.status.message ?? '',
      /hostPort 9090\/TCP is in use on the node by pid \d+ \(socat\), listening on 0\.0\.0\.0:9090/,
    );
    await svc.remove(squatter.metadata.uid as string);
    assert.equal(condition(reported, 'NetworkReady')?.reason, NetworkReason.HostPortInUse);
    assert.deepEqual(rulesOf(idOf(squatter)), []);
    assert.equal(world.ask('node', '127.0.0.1', 9090, 'tcp'), '127.0.0.1', 'the program still answers on its port');
    await world.serveWhoAmI('node', 9091, 'udp');
    const udp = bridged('squatter-udp', [{ containerPort: 53, hostPort: 9091, protocol: 'UDP' }]);
    const udpReport = await applied(svc, udp);
    assert.equal(udpReport.status.reason, NetworkReason.HostPortInUse);
    assert.match(udpReport.status.message ?? '', /9091\/UDP .* \(socat\)/);
    await svc.remove(udp.metadata.uid as string);
    assert.doesNotThrow(() => world.ask('node', '127.0.0.1', 9091, 'udp'));
  });

  it('GC reclaims the lease, veth, rules and image content a crashed create left, and keeps what a live sandbox uses', async () => {
    // A create that died after its network and images were set up: the runtime has no record of it.
    const crashed = sandboxRef('crashed');
    const leaked = await bridge.setup(
      {
        sandbox: crashed,
        netnsPath: world.addNamespace('crashed'),
        hostname: 'crashed',
        network: { mode: 'Bridge', egress: 'Deny', ports: [{ containerPort: 80, hostPort: 7070, protocol: 'TCP' }] },
      },
      log,
    );
    const blob = (text: string) => {
      const digest = `sha256:${createHash('sha256').update(text).digest('hex')}`;
      oci.store.writeBlob(digest, Buffer.from(text));
      return digest;
    };
    const image = (name: string, blobs: string[]): ImageRecord => ({
      reference: `registry.test/${name}:1`,
      topDigest: blobs[0]!,
      manifestDigest: blobs[0]!,
      configDigest: blobs[1]!,
      blobs,
      chainIDs: [],
      config: {},
      repository: `registry.test/${name}`,
    });
    const liveImage = image('live', [blob('live manifest'), blob('live config')]);
    const deadImage = image('dead', [blob('dead manifest'), blob('dead config')]);
    const cachedImage = image('cached', [blob('cached manifest'), blob('cached config')]);
    oci.store.addSandboxRef(idOf(web), liveImage);
    oci.store.addSandboxRef(crashed.id, deadImage);
    oci.store.writeImage(cachedImage);
    const pulling = blob('layer being pulled');
    const unlease = oci.store.lease([pulling]);
    assert.ok(spvLinks().includes(hostVethName(crashed.id)));
    assert.equal(bridge.leases()[leaked.sandboxIP!], crashed.id);
    assert.ok(rulesOf(crashed.id).length > 0);

    const report = await gc.run();

    assert.deepEqual(report.errors, []);
    assert.deepEqual(spvLinks(), [hostVethName(idOf(web))], 'the leaked veth is gone, the live one stays');
    assert.deepEqual(Object.values(bridge.leases()), [idOf(web)]);
    assert.deepEqual(rulesOf(crashed.id), []);
    assert.equal(rulesOf(idOf(web)).length, 3, 'the live sandbox keeps its DNAT and anti-spoof rules');
    assert.deepEqual(report.imageRefs, [crashed.id]);
    assert.deepEqual(new Set(report.images?.blobs), new Set(deadImage.blobs));
    for (const d of [...liveImage.blobs, ...cachedImage.blobs, pulling])
      assert.ok(oci.store.hasBlob(d), `${d} is kept`);
    assert.ok(!existsSync(join(imageRoot, 'sandboxes', crashed.id)));
    unlease();
    const again = await gc.run();
    assert.deepEqual(again.images?.blobs, [pulling], 'a blob is collectable once its pull lease ends');
    assert.equal(
      condition(svc.get(web.metadata.uid as string), 'Ready')?.status,
      'True',
      'the live sandbox still runs',
    );
  });
});
