#!/usr/bin/env node
import { exitOnStartFailure, packageVersion, parseFlagsOrExit } from '../lib/binary.js';
import { KubeClient } from '../lib/kube/client.js';
import { loadKubeConfig } from '../lib/kube/kubeconfig.js';
import { createLogger, type Logger } from '../lib/log.js';
import { Agent } from './agent.js';
import { AGENT_USAGE, parseAgentArgs, type RuntimeFlags } from './config.js';
import type { SandboxRuntime } from './contracts.js';

/**
 * The runtime is plugged in here and nowhere else: a module exporting
 * `createRuntime({ node, log, flags })` that resolves to a SandboxRuntime (see
 * node-agent/contracts.ts), by default node-agent/runtime/index.js.
 * SANDPIT_RUNTIME_MODULE swaps it.
 */
async function loadRuntime(node: string, log: Logger, flags: RuntimeFlags): Promise<SandboxRuntime> {
  const modulePath = process.env.SANDPIT_RUNTIME_MODULE ?? new URL('./runtime/index.js', import.meta.url).href;
  const mod = (await import(modulePath)) as {
    createRuntime?: (opts: { node: string; log: Logger; flags: RuntimeFlags }) => Promise<SandboxRuntime>;
  };
  if (typeof mod.createRuntime !== 'function')
    throw new Error(`${modulePath} does not export createRuntime({ node, log })`);
  return mod.createRuntime({ node, log, flags });
}

async function main(): Promise<void> {
  const cfg = parseFlagsOrExit(() => parseAgentArgs(process.argv.slice(2), process.env, packageVersion()), AGENT_USAGE);
  const log = createLogger('agent', { node: cfg.node });
  const client = await KubeClient.fromKubeConfig(loadKubeConfig(cfg.kubeconfig), `sandpit-agent/${packageVersion()}`);
  const runtime = await loadRuntime(cfg.node, log, cfg.runtime);
  const agent = new Agent(runtime, client, cfg, log);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'Stopping the agent; sandboxes keep running');
    agent
      .stop()
      .then(() => process.exit(0))
      .catch(() => process.exit(1));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  await agent.start();
  log.info({ endpoint: agent.endpoint }, 'sandpit-agent started');
}

main().catch((err: unknown) => exitOnStartFailure(createLogger('agent'), 'sandpit-agent', err));
