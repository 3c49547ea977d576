import { benchNode, iperf, sandboxRef, writeResult, log } from './network-lib.js';

/*
 * Throughput through a published port (node 127.0.0.1:hostPort → DNAT →
 * masquerade → sandbox) against the node connecting to the sandbox address
 * directly, same run, iperf3 single stream.
 */
const { world, provider, done } = benchNode('bpub');
try {
  const a = sandboxRef('a');
  const r = await provider.setup(
    {
      sandbox: a,
      netnsPath: world.addNamespace('a'),
      hostname: 'a',
      network: { mode: 'Bridge', egress: 'Allow', ports: [{ containerPort: 5201, hostPort: 15201, protocol: 'TCP' }] },
    },
    log,
  );
  const ours = await iperf(world, 'a', 'node', '127.0.0.1', 15201, 5201);
  const theirs = await iperf(world, 'a', 'node', r.sandboxIP!, 5201);
  writeResult({
    name: 'network-published',
    metric: 'TCP throughput node→sandbox via published port on 127.0.0.1 (iperf3, 1 stream, median of 3×3 s)',
    unit: 'Gbit/s',
    ours: Number(ours.toFixed(2)),
    peer: 'node→sandbox address directly (no NAT)',
    theirs: Number(theirs.toFixed(2)),
    command: 'node dist/bench/network-published.js',
  });
} finally {
  done();
}
