import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { gatewayOf } from '../node-agent/network/cidr.js';
import { hostListeners } from '../node-agent/network/hostports/listeners.js';
import { NETLINK_SOCK_DIAG } from '../node-agent/network/netlink/sockdiag.js';
import { RtnlSocket } from '../node-agent/network/netlink/socket.js';
import { benchNode, log, percentile, sandboxRef, writeResult } from './network-lib.js';

/*
 * Time to set up and to tear down one sandbox's network (IPAM lease, veth
 * created in the sandbox netns, addresses, route, hairpin, sysctls, one
 * published port's DNAT rule), against doing the link part with one `ip` exec
 * per step as a shell-script or CNI-exec approach would. Namespaces are made
 * beforehand and are not timed.
 */
const N = 200;
const PEER_N = 50;
const { world, provider, done } = benchNode('bset');
try {
  const refs = Array.from({ length: N }, (_, i) => sandboxRef(`s${i}`));
  const paths = refs.map((r) => world.addNamespace(r.name));
  // Warm-up: the first setup creates the bridge and the table.
  const warm = sandboxRef('warm');
  provider.setupSync(
    {
      sandbox: warm,
      netnsPath: world.addNamespace('warm'),
      hostname: 'warm',
      network: { mode: 'Bridge', egress: 'Allow' },
    },
    log,
  );
  provider.teardownSync(warm, log);

  const setup: number[] = [];
  const teardown: number[] = [];
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    provider.setupSync(
      {
        sandbox: refs[i]!,
        netnsPath: paths[i]!,
        hostname: refs[i]!.name,
        network: {
          mode: 'Bridge',
          egress: 'Allow',
          ports: [{ containerPort: 80, hostPort: 30000 + i, protocol: 'TCP' }],
        },
      },
      log,
    );
    setup.push(performance.now() - t0);
  }
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    provider.teardownSync(refs[i]!, log);
    teardown.push(performance.now() - t0);
  }

  // The part of setup that looks for node programs on the hostPort (sock_diag, filtered by port in the kernel).
  const diag = new RtnlSocket(NETLINK_SOCK_DIAG);
  const check: number[] = [];
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    hostListeners(diag, [{ hostPort: 30000 + i, protocol: 'TCP' }]);
    check.push(performance.now() - t0);
  }
  diag.close();

  // Peer: the link part alone, one `ip` exec per step.
  const gw = gatewayOf(provider.subnet);
  const peer: number[] = [];
  for (let i = 0; i < PEER_N; i++) {
    const ns = world.ns(refs[i]!.name);
    const host = `sppeer${i}`;
    const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'ignore' });
    const t0 = performance.now();
    ip('link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('link', 'set', host, 'master', world.bridge, 'up');
    ip('link', 'set', host, 'type', 'bridge_slave', 'hairpin', 'on');
    ip('-n', ns, 'addr', 'add', `10.199.${world.k}.${100 + (i % 100)}/24`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'route', 'add', 'default', 'via', gw);
    peer.push(performance.now() - t0);
    ip('link', 'del', host);
  }
  const p50 = percentile(setup, 50);
  writeResult({
    name: 'network-setup',
    metric: 'network setup per sandbox, p50 (veth in netns, address, route, hairpin, sysctls, lease, DNAT rule)',
    unit: 'ms',
    ours: Number(p50.toFixed(2)),
    peer: 'same links via one `ip` exec per step (7 execs)',
    theirs: Number(percentile(peer, 50).toFixed(2)),
    command: 'node dist/bench/network-setup.js',
    note: `target ≤ 5 ms; p90 ${percentile(setup, 90).toFixed(2)} ms; teardown p50 ${percentile(teardown, 50).toFixed(2)} ms (kernel veth unregister); of setup, the hostPort-in-use check p50 ${(percentile(check, 50) * 1000).toFixed(0)} µs; ${N} sandboxes; load average ${loadavg()[0]!.toFixed(1)}`,
  });
} finally {
  done();
}
