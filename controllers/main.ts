#!/usr/bin/env node
import { exitOnStartFailure, packageVersion, parseFlagsOrExit } from '../lib/binary.js';
import { createLogger } from '../lib/log.js';
import { KubeClient } from '../lib/kube/client.js';
import { loadKubeConfig } from '../lib/kube/kubeconfig.js';
import { parseControllerArgs, USAGE } from './config.js';
import { Manager } from './manager.js';

async function main(): Promise<void> {
  const log = createLogger('controller');
  const cfg = parseFlagsOrExit(() => parseControllerArgs(process.argv.slice(2), process.env), USAGE);
  const client = await KubeClient.fromKubeConfig(
    loadKubeConfig(cfg.kubeconfig),
    `sandpit-controller/${packageVersion()}`,
  );
  const manager = new Manager(client, cfg, log.child({ identity: cfg.identity }));
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'Stopping: finishing in-flight reconciles and releasing the lease');
    manager
      .stop()
      .then(() => process.exit(0))
      .catch((err: Error) => {
        log.error({ err: err.message }, 'Unclean stop');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  await manager.start();
  log.info(
    { namespace: cfg.namespace, leaderElection: cfg.leaderElection, server: client.server.origin },
    'sandpit-controller started',
  );
}

main().catch((err: unknown) => exitOnStartFailure(createLogger('controller'), 'sandpit-controller', err));
