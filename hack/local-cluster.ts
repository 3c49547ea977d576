import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger } from '../lib/log.js';
import { BridgeNetworkProvider } from '../node-agent/network/provider.js';
import { ControlPlane } from '../test/harness/control-plane.js';

/*
 * The quick start's local control plane: etcd + kube-apiserver kept running in
 * the background under a state dir, so kubectl can be used after hack/up.sh
 * returns. `serve` runs in the foreground (hack/up.sh starts it with nohup);
 * `down` stops it by the PID it recorded.
 *
 *   node dist/hack/local-cluster.js serve --dir DIR [--port 6443]
 *   node dist/hack/local-cluster.js down --dir DIR
 *   node dist/hack/local-cluster.js remove-node-network
 *     removes the node-level network the agent made (bridge, nft tables,
 *     FORWARD accept rules) once no sandbox is left
 */

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? process.argv[i + 1] : fallback;
  if (value === undefined) throw new Error(`--${name} is required`);
  return value;
}

async function serve(dir: string, port: number): Promise<void> {
  await rm(join(dir, 'ready'), { force: true });
  const cp = await ControlPlane.start({ dir, port });
  await writeFile(join(dir, 'pid'), String(process.pid));
  await writeFile(join(dir, 'ready'), cp.kubeconfigPath + '\n');
  console.log(`control plane ready at ${cp.server}; kubeconfig ${cp.kubeconfigPath}`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await cp.stop();
    await rm(join(dir, 'pid'), { force: true });
    await rm(join(dir, 'ready'), { force: true });
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function down(dir: string): Promise<void> {
  const pidFile = join(dir, 'pid');
  if (!existsSync(pidFile)) {
    console.log('no local control plane is running');
    return;
  }
  const pid = Number(await readFile(pidFile, 'utf8'));
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    await rm(pidFile, { force: true });
    return;
  }
  for (let i = 0; i < 150 && existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 100));
  console.log('local control plane stopped');
}

async function removeNodeNetwork(): Promise<void> {
  const provider = new BridgeNetworkProvider();
  provider.removeNode(createLogger('quickstart'), true);
  provider.close();
}

const [command] = process.argv.slice(2);
if (command === 'serve') await serve(arg('dir'), Number(arg('port', '6443')));
else if (command === 'down') await down(arg('dir'));
else if (command === 'remove-node-network') await removeNodeNetwork();
else {
  console.error('usage: local-cluster.js serve|down --dir DIR [--port N]');
  process.exit(2);
}
