import { SandpitError } from '../../lib/errors.js';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../lib/log.js';
import { OciImageProvider } from '../images/provider.js';
import { BridgeNetworkProvider } from '../network/provider.js';
import type { RuntimeFlags } from '../config.js';
import { parseUsernsRange } from '../namespaces/userns.js';
import { defaultConfig, type RuntimeConfig } from './config.js';
import { DirectoryImageProvider } from './directory-image.js';
import { networkOptionsFromEnv } from './env.js';
import { NodeGarbageCollector } from './gc.js';
import { nodeNetworks, RoutedImageProvider } from './providers.js';
import { SandboxSupervisor } from './supervisor.js';
import { nodeEffects, type RuntimeDeps } from './deps.js';
import { RuntimeService } from './service.js';

/** The --registry-ca-file certificates, read once at start: a missing or empty file stops the agent with the path in the message. */
function registryCA(file: string | undefined): string | undefined {
  if (!file) return undefined;
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SandpitError({
      step: 'read --registry-ca-file',
      message: `${file}: ${(err as Error).message}`,
      hint: 'mount the CA bundle at that path or drop the flag',
      cause: err,
    });
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----'))
    throw new SandpitError({
      step: 'read --registry-ca-file',
      message: `${file} holds no PEM certificate`,
      hint: 'the file must hold one or more -----BEGIN CERTIFICATE----- blocks',
    });
  return pem;
}

/**
 * Entry point the agent loads (node-agent/main.ts); the standalone CLI builds its own (any dir: image).
 * Environment:
 * - SANDPIT_STATE_DIR   base directory (default /var/lib/sandpit): sandboxes/ and images/ below it
 * - SANDPIT_STATE_ROOT  sandbox state directory, overriding $SANDPIT_STATE_DIR/sandboxes
 * - SANDPIT_IMAGE_ROOT  image store, overriding $SANDPIT_STATE_DIR/images
 * - SANDPIT_CGROUP_PARENT  cgroup parent name (default sandpit)
 * - SANDPIT_ALLOW_PRIVILEGED=true  honour privileged containers and capability adds
 * - SANDPIT_USERNS_RANGE  FIRST:COUNT host ids for hostUsers: false sandboxes, 65536 each (default 1073741824:1073741824)
 * - SANDPIT_INSECURE_REGISTRIES  comma-separated host:port list pulled over plain HTTP
 * - flags (node-agent/config.ts RuntimeFlags): --allow-capability [SANDPIT_ALLOW_CAPABILITIES], --registry-ca-file [SANDPIT_REGISTRY_CA_FILE]
 * - SANDPIT_RUN_DIR, SANDPIT_BRIDGE, SANDPIT_SUBNET, SANDPIT_NFT_TABLE  the node network (see networkOptionsFromEnv)
 * - SANDPIT_GC_INTERVAL_SECONDS  period of the garbage collection of leaked sandbox network objects and
 *   unreferenced image content (default 300; 0 runs it only once, at start after re-adoption)
 * `flags.allowDirImages` (agent flag --allow-dir-images) are the directories at or
 * below which a `dir:` image may be; none (the default) refuses every `dir:` image.
 */
export async function createRuntime(opts: {
  node: string;
  log: Logger;
  flags?: RuntimeFlags;
  config?: Partial<RuntimeConfig>;
  deps?: Partial<RuntimeDeps>;
}): Promise<RuntimeService> {
  const base = process.env.SANDPIT_STATE_DIR ?? '/var/lib/sandpit';
  const stateRoot = process.env.SANDPIT_STATE_ROOT ?? join(base, 'sandboxes');
  const config = defaultConfig({
    stateRoot,
    cgroupParent: process.env.SANDPIT_CGROUP_PARENT ?? 'sandpit',
    allowPrivileged: process.env.SANDPIT_ALLOW_PRIVILEGED === 'true',
    ...(process.env.SANDPIT_USERNS_RANGE ? { usernsRange: parseUsernsRange(process.env.SANDPIT_USERNS_RANGE) } : {}),
    ...(opts.flags ? { allowedCapabilities: opts.flags.allowedCapabilities } : {}),
    ...opts.config,
  });
  mkdirSync(config.stateRoot, { recursive: true, mode: 0o700 });
  const log = opts.log.child({ component: 'runtime' });
  const plainHttpHosts = (process.env.SANDPIT_INSECURE_REGISTRIES ?? '')
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  const imageRoot = process.env.SANDPIT_IMAGE_ROOT ?? join(base, 'images');
  const ca = registryCA(opts.flags?.registryCAFile);
  const oci = opts.deps?.images
    ? undefined
    : new OciImageProvider({ root: imageRoot, registry: { plainHttpHosts, ...(ca ? { ca } : {}) }, log });
  const deps: RuntimeDeps = {
    images:
      opts.deps?.images ??
      new RoutedImageProvider(new DirectoryImageProvider({ allowedRoots: opts.flags?.allowDirImages ?? [] }), oci!),
    network: opts.deps?.network ?? nodeNetworks(new BridgeNetworkProvider(networkOptionsFromEnv(process.env))),
    log,
    ...(await nodeEffects(config)),
  };
  const service = new RuntimeService(await SandboxSupervisor.start(config, deps), oci);
  const gcSeconds = Number(process.env.SANDPIT_GC_INTERVAL_SECONDS ?? 300);
  new NodeGarbageCollector({
    live: () => new Set(service.runtime.list().map((r) => r.id)),
    network: deps.network,
    images: oci,
    log: log.child({ component: 'gc' }),
    intervalMs: Number.isFinite(gcSeconds) && gcSeconds > 0 ? gcSeconds * 1000 : 0,
  }).start();
  return service;
}
