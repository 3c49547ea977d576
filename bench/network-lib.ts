import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../lib/log.js';
import { BridgeNetworkProvider } from '../node-agent/network/provider.js';
import { NetWorld, sandboxRef } from '../test/harness/network/world.js';
import type { BenchResult } from './results-table.js';

/*
 * Shared parts of the network benchmarks: a test node namespace (as in the node
 * tier, so the machine's root namespace is untouched), iperf3 runs, and the
 * result file. Traffic stays inside namespaces the benchmark creates.
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function writeResult(r: Omit<BenchResult, 'date' | 'ratio'> & { ratio?: number | null }): void {
  const result: BenchResult = {
    ...r,
    ratio: r.ratio ?? (r.theirs ? Number((r.ours / r.theirs).toFixed(3)) : null),
    date: new Date().toISOString(),
  };
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', `${r.name}.json`), `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result));
}

export const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

export const log = createLogger('bench-network');

/** A node namespace with a provider in it; `done()` removes everything. */
export function benchNode(name: string): { world: NetWorld; provider: BridgeNetworkProvider; done: () => void } {
  const world = new NetWorld(name);
  world.enter({ brNetfilter: true, forwardDrop: false });
  // Leases on tmpfs, as on a real node (/run/sandpit): this machine's /run is on disk.
  const stateDir = `/dev/shm/sptest-${world.tag}-bench-state`;
  const provider = new BridgeNetworkProvider({
    subnet: world.subnet,
    bridge: world.bridge,
    table: world.table,
    stateDir,
    mtu: 1500,
  });
  return {
    world,
    provider,
    done: () => {
      try {
        provider.removeNode(log, true);
        provider.close();
      } finally {
        world.leave();
        rmSync(stateDir, { recursive: true, force: true });
      }
    },
  };
}

export { sandboxRef };

/** Runs iperf3 server in namespace `server` (or the node) and client in `client`; returns receiver Gbit/s (median of `runs`). */
export async function iperf(
  world: NetWorld,
  server: string,
  client: string,
  host: string,
  port: number,
  serverPort = port,
  runs = 3,
  seconds = 3,
): Promise<number> {
  const results: number[] = [];
  for (let i = 0; i < runs; i++) {
    const argv = ['iperf3', '-s', '-1', '-p', String(serverPort)];
    const srv =
      server === 'node'
        ? spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' })
        : spawn('ip', ['netns', 'exec', world.ns(server), ...argv], { stdio: 'ignore' });
    for (let t = 0; t < 100; t++) {
      if (new RegExp(`:${serverPort}\\b`).test(world.exec(server, 'ss', '-Hltn'))) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const cargs = ['-c', host, '-p', String(port), '-t', String(seconds), '-J'];
    const out =
      client === 'node'
        ? execFileSync('iperf3', cargs)
        : execFileSync('ip', ['netns', 'exec', world.ns(client), 'iperf3', ...cargs]);
    const json = JSON.parse(out.toString()) as { end: { sum_received: { bits_per_second: number } } };
    results.push(json.end.sum_received.bits_per_second / 1e9);
    srv.kill('SIGKILL');
  }
  return percentile(results, 50);
}
