import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { Sandbox } from '../crds/sandbox.js';
import { SandpitError } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { sandboxIdFor } from './contracts.js';
import { defaultConfig, type RuntimeConfig } from './runtime/config.js';
import { DirectoryImageProvider } from './runtime/directory-image.js';
import { nodeNetworks, RoutedImageProvider } from './runtime/providers.js';
import { OciImageProvider } from './images/provider.js';
import { BridgeNetworkProvider } from './network/provider.js';
import { parseUsernsRange } from './namespaces/userns.js';
import { parseAllowedCapabilities } from './security/capabilities.js';
import { SandboxSupervisor } from './runtime/supervisor.js';
import { nodeEffects } from './runtime/deps.js';
import type { SandboxRecord } from './runtime/record.js';
import { readJson } from './state/store.js';
import { check, libc } from './sys/libc.js';

/*
 * sandpit-agent's standalone mode: runs sandboxes without Kubernetes.
 * Usage: node dist/node-agent/standalone.js <command> ...
 *   run -f sandbox.yaml [--rm]        create (or re-adopt) and supervise until SIGINT/SIGTERM
 *   serve --manifests DIR             static sandboxes: every *.yaml in DIR is kept running,
 *                                     removed files are deleted, changed files recreated
 *   ps                                sandboxes on this node (from the state dir)
 *   logs ID CONTAINER                 the container's CRI log
 *   delete ID                         stop and remove one sandbox
 * The agent exiting (or being killed) leaves sandboxes running; the next start re-adopts them.
 */

const log = createLogger('sandpit-agent');

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    file: { type: 'string', short: 'f' },
    manifests: { type: 'string' },
    'state-root': { type: 'string' },
    'cgroup-parent': { type: 'string' },
    'allow-privileged': { type: 'boolean' },
    'allow-capability': { type: 'string', multiple: true },
    'restart-backoff-ms': { type: 'string' },
    'poll-ms': { type: 'string' },
    'userns-range': { type: 'string' },
    rm: { type: 'boolean' },
  },
});

const config: RuntimeConfig = defaultConfig({
  ...(values['state-root'] ? { stateRoot: values['state-root'] } : {}),
  ...(values['cgroup-parent'] ? { cgroupParent: values['cgroup-parent'] } : {}),
  allowPrivileged: values['allow-privileged'] ?? false,
  allowedCapabilities: parseAllowedCapabilities(values['allow-capability'] ?? []),
  hints: 'standalone',
  ...(values['restart-backoff-ms']
    ? { restartBackoff: { baseMs: Number(values['restart-backoff-ms']), maxMs: 300_000 } }
    : {}),
  ...(values['poll-ms'] ? { pollMs: Number(values['poll-ms']) } : {}),
  ...(values['userns-range'] ? { usernsRange: parseUsernsRange(values['userns-range']) } : {}),
});

function readSandboxes(file: string): Sandbox[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as Record<string, unknown> | null)
    .filter((d): d is Record<string, unknown> => !!d)
    .map((d) => {
      const meta = (d.metadata ?? {}) as Record<string, unknown>;
      const parsed = Sandbox.safeParse({ ...d, metadata: { namespace: 'default', ...meta } });
      if (!parsed.success)
        throw new SandpitError({ step: 'read manifest', message: `${file}: ${parsed.error.message}` });
      return parsed.data;
    });
}

const keyOf = (s: Sandbox) =>
  (s.metadata as { uid?: string }).uid ??
  `${(s.metadata as { namespace?: string }).namespace ?? 'default'}/${(s.metadata as { name?: string }).name}`;

/** One agent per state root: a second one would supervise the same sandboxes twice. */
function lockStateRoot(): void {
  const flock = libc.func('int flock(int fd, int op)');
  const fd = openSync(join(config.stateRoot, '.agent.lock'), 'a');
  check(
    'flock',
    { step: 'lock state root' },
    () => flock(fd, 2 | 4 /* LOCK_EX|LOCK_NB */),
    'another sandpit-agent uses this state root',
  );
}

async function startRuntime(): Promise<SandboxSupervisor> {
  mkdirSync(config.stateRoot, { recursive: true, mode: 0o700 });
  lockStateRoot();
  const base = join(config.stateRoot, '..');
  return SandboxSupervisor.start(config, {
    ...(await nodeEffects(config)),
    images: new RoutedImageProvider(
      new DirectoryImageProvider(),
      new OciImageProvider({ root: join(base, 'images'), log }),
    ),
    network: nodeNetworks(new BridgeNetworkProvider()),
    log,
  });
}

function summary(rec: SandboxRecord): string {
  const cs = rec.containers.map((c) => {
    const st = c.state?.running
      ? 'running'
      : c.state?.terminated
        ? `exited(${c.state.terminated.exitCode})`
        : `waiting(${c.state?.waiting?.reason ?? ''})`;
    return `${c.name}=${st} restarts=${c.restartCount}`;
  });
  return `${rec.ref.namespace}/${rec.ref.name} id=${rec.id} phase=${rec.phase} ${cs.join(' ')}`;
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

async function run(): Promise<void> {
  if (!values.file) throw new SandpitError({ step: 'run', message: 'run needs -f sandbox.yaml' });
  const rt = await startRuntime();
  const recs: SandboxRecord[] = [];
  for (const sb of readSandboxes(values.file)) recs.push(await rt.create(sb));
  for (const r of recs) console.log(summary(r));
  const stop = waitForSignal();
  if (values.rm) {
    await Promise.race([
      stop,
      new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (recs.every((r) => r.phase === 'Succeeded' || r.phase === 'Failed')) {
            clearInterval(t);
            resolve();
          }
        }, 100);
      }),
    ]);
    for (const r of recs) console.log(summary(r));
    for (const r of recs) await rt.delete(r.id);
  } else await stop;
  await rt.close();
}

async function serve(): Promise<void> {
  const dir = values.manifests;
  if (!dir) throw new SandpitError({ step: 'serve', message: 'serve needs --manifests DIR' });
  const rt = await startRuntime();
  const applied = new Map<string, { file: string; mtime: number; id: string }>();
  let syncing = false;
  const sync = async () => {
    if (syncing) return;
    syncing = true;
    try {
      const seen = new Set<string>();
      for (const f of readdirSync(dir)
        .filter((f) => /\.ya?ml$/.test(f))
        .sort()) {
        const file = join(dir, f);
        const mtime = statSync(file).mtimeMs;
        let sandboxes: Sandbox[];
        try {
          sandboxes = readSandboxes(file);
        } catch (err) {
          log.error({ err, file }, 'skipping invalid manifest');
          continue;
        }
        for (const sb of sandboxes) {
          const key = keyOf(sb);
          seen.add(key);
          const prev = applied.get(key);
          if (prev && prev.mtime === mtime) continue;
          if (prev) await rt.delete(prev.id);
          const rec = await rt.create(sb).catch((err: unknown) => {
            log.error({ err, file }, 'sandbox failed to start');
            return undefined;
          });
          if (rec) {
            applied.set(key, { file, mtime, id: rec.id });
            console.log(summary(rec));
          }
        }
      }
      for (const [key, a] of applied) {
        if (seen.has(key)) continue;
        await rt.delete(a.id);
        applied.delete(key);
        console.log(`deleted ${key}`);
      }
    } finally {
      syncing = false;
    }
  };
  // Sandboxes re-adopted from a previous run count as applied when their manifest is unchanged.
  for (const rec of rt.list()) applied.set(rec.ref.uid, { file: '', mtime: -1, id: rec.id });
  for (const f of existsSync(dir) ? readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)) : []) {
    const file = join(dir, f);
    for (const sb of readSandboxes(file)) {
      const a = applied.get(keyOf(sb));
      if (a) applied.set(keyOf(sb), { file, mtime: statSync(file).mtimeMs, id: a.id });
    }
  }
  await sync();
  const timer = setInterval(() => void sync(), 1000);
  await waitForSignal();
  clearInterval(timer);
  await rt.close();
}

function ps(): void {
  if (!existsSync(config.stateRoot)) return;
  for (const id of readdirSync(config.stateRoot)) {
    const rec = readJson<SandboxRecord>(join(config.stateRoot, id, 'sandbox.json'));
    if (rec) console.log(summary(rec));
  }
}

async function main(): Promise<void> {
  const cmd = positionals[0];
  switch (cmd) {
    case 'run':
      return run();
    case 'serve':
      return serve();
    case 'ps':
      return ps();
    case 'logs': {
      const [, id, container] = positionals;
      process.stdout.write(readFileSync(join(config.stateRoot, id!, 'logs', `${container}.log`)));
      return;
    }
    case 'delete': {
      const rt = await startRuntime();
      const arg = positionals[1]!;
      await rt.delete(/^[0-9a-f]{12}$/.test(arg) ? arg : sandboxIdFor(arg.includes('/') ? arg : `default/${arg}`));
      await rt.close();
      return;
    }
    default:
      console.error(
        'usage: sandpit-agent run -f sandbox.yaml [--rm] | serve --manifests DIR | ps | logs ID CONTAINER | delete ID|NAME  [--state-root DIR] [--cgroup-parent NAME]',
      );
      process.exitCode = 2;
  }
}

main().then(
  () => {
    if (process.exitCode === undefined) process.exitCode = 0;
    // Launcher threads are unref'd; nothing else should keep us alive.
    setImmediate(() => process.exit());
  },
  (err: unknown) => {
    log.error({ err }, 'sandpit-agent failed');
    console.error(String(err instanceof Error ? err.message : err));
    process.exit(1);
  },
);
