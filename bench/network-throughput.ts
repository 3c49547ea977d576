import { benchNode, iperf, sandboxRef, writeResult, log } from './network-lib.js';

/*
 * Sandbox↔sandbox TCP throughput over the bridge (veths, bridge, br_netfilter,
 * our nftables forward chain) against a raw veth pair between two plain
 * namespaces, measured in the same run with iperf3 (single stream).
 */
const { world, provider, done } = benchNode('bthr');
try {
  const a = sandboxRef('a');
  const b = sandboxRef('b');
  await provider.setup(
    { sandbox: a, netnsPath: world.addNamespace('a'), hostname: 'a', network: { mode: 'Bridge', egress: 'Allow' } },
    log,
  );
  const rb = await provider.setup(
    { sandbox: b, netnsPath: world.addNamespace('b'), hostname: 'b', network: { mode: 'Bridge', egress: 'Allow' } },
    log,
  );
  const ours = await iperf(world, 'b', 'a', rb.sandboxIP!, 5201);

  world.addNamespace('rawa');
  world.addNamespace('rawb');
  world.exec('rawa', 'ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', world.ns('rawb'));
  world.exec('rawa', 'ip', 'addr', 'add', '10.197.0.1/30', 'dev', 'eth0');
  world.exec('rawb', 'ip', 'addr', 'add', '10.197.0.2/30', 'dev', 'eth0');
  for (const ns of ['rawa', 'rawb']) {
    world.exec(ns, 'ip', 'link', 'set', 'eth0', 'up');
    world.exec(ns, 'ip', 'link', 'set', 'lo', 'up');
  }
  const theirs = await iperf(world, 'rawb', 'rawa', '10.197.0.2', 5201);
  writeResult({
    name: 'network-throughput',
    metric: 'sandbox↔sandbox TCP throughput (iperf3, 1 stream, median of 3×3 s)',
    unit: 'Gbit/s',
    ours: Number(ours.toFixed(2)),
    peer: 'raw veth pair between two namespaces',
    theirs: Number(theirs.toFixed(2)),
    command: 'node dist/bench/network-throughput.js',
    note: 'target ≥ 0.9; br_netfilter on, 2 vCPU',
  });
} finally {
  done();
}
