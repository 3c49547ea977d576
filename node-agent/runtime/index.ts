import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Sandbox } from '../../crds/sandbox.js';
import type { Logger } from '../../lib/log.js';
import { sandboxIdFor, type SandboxNotice, type SandboxObservation, type SandboxRef, type SandboxRuntime as RuntimeSeam } from '../contracts.js';
import { OciImageProvider } from '../images/provider.js';
import { TABLE_NAME, type BridgeNetworkOptions } from '../network/config.js';
import { BridgeNetworkProvider } from '../network/provider.js';
import type { RuntimeFlags } from '../config.js';
import { defaultConfig, type RuntimeConfig } from './config.js';
import { DirectoryImageProvider } from './directory-image.js';
import { NodeGarbageCollector } from './gc.js';
import { parseUsernsRange } from '../namespaces/userns.js';
import { NetworkError } from '../network/status.js';
import { deriveConditions, networkFailureConditions } from '../status/derive.js';
import { nodeNetworks, RoutedImageProvider } from './providers.js';
import { changedContainerFields, diffSpec } from './spec-diff.js';
import { isContainerConfigError, SandboxRuntime, type RuntimeDeps, type SandboxRecord } from './runtime.js';

/*
 * The runtime as the agent API drives it (node-agent/contracts.ts): keyed by
 * Kubernetes UID, level-based. The same generation is a no-op; a new one
 * restarts the containers whose definition changed, recreates the sandbox
 * when the edit needs a new one (an Event names the fields: spec-diff.ts),
 * and freezes/thaws for `paused`.
 */

/** The runtime's view of a sandbox, with the conditions the agent reports (status/derive.ts). */
function observe(rt: SandboxRuntime, rec: SandboxRecord): SandboxObservation {
  const generation = rec.generation ?? 0;
  let status;
  try {
    status = rt.status(rec.id);
  } catch {
    // Early in a create the runtime has no cgroup to read yet: that is Pending, not Unknown.
    status = { phase: rec.phase === 'Creating' ? ('Pending' as const) : ('Unknown' as const) };
  }
  const publishedPorts = rec.network?.publishedPorts;
  const sandboxIPs = rec.network?.sandboxIPs?.map((ip) => ({ ip }));
  return { ref: rec.ref, generation, status: { ...status, ...(sandboxIPs ? { sandboxIPs } : {}), ...(publishedPorts ? { publishedPorts } : {}), conditions: deriveConditions(status, generation) } };
}

const DISK_USAGE_MAX_AGE_MS = 60_000;

export class RuntimeService implements RuntimeSeam {
  readonly runtime: SandboxRuntime;
  readonly #listeners = new Set<(obs: SandboxObservation) => void>();
  readonly #noticeListeners = new Set<(ref: SandboxRef, notice: SandboxNotice) => void>();
  /** Sandboxes being removed: their containers' exits on the way out are not news for the cluster. */
  readonly #removing = new Set<string>();
  readonly #imageStore: { diskUsage(): { total: number } } | undefined;
  #diskUsage: { at: number; bytes: number } | undefined;

  constructor(runtime: SandboxRuntime, imageStore?: { diskUsage(): { total: number } }) {
    this.runtime = runtime;
    this.#imageStore = imageStore;
    runtime.subscribe((rec) => {
      if (rec.phase === 'Deleting' || this.#removing.has(rec.id)) return;
      const obs = observe(runtime, rec);
      for (const fn of this.#listeners) fn(obs);
    });
  }

  async apply(sandbox: Sandbox): Promise<SandboxObservation> {
    const uid = (sandbox.metadata as { uid?: string }).uid!;
    const generation = (sandbox.metadata as { generation?: number }).generation ?? 0;
    const id = sandboxIdFor(uid);
    let rec = this.runtime.get(id);
    // --- edits (spec-diff.ts): restart changed containers in place, or recreate and say why.
    if (rec && (rec.generation ?? 0) !== generation) {
      const diff = diffSpec(rec.spec, sandbox.spec);
      if (diff.recreateReasons.length) {
        this.#notice(rec.ref, { type: 'Normal', reason: 'SandboxChanged', note: `Sandbox spec changed (${diff.recreateReasons.join(', ')}), it will be killed and re-created` });
        await this.remove(uid); // recreated below; the old generation's exits are not reported
        rec = undefined;
      } else {
        const before = rec.spec;
        for (const name of diff.restartContainers) {
          const fields = changedContainerFields(before.containers.find((c) => c.name === name)!, sandbox.spec.containers.find((c) => c.name === name)!);
          this.#notice(rec.ref, { type: 'Normal', reason: 'Killing', note: `Container ${name} definition changed (${fields.join(', ')}), will be restarted` });
          await this.runtime.restartContainer(id, name, sandbox);
        }
        rec.spec = sandbox.spec;
        rec.generation = generation;
        if (diff.pauseChange !== undefined) this.runtime.pause(id, diff.pauseChange);
      }
    }
    // --- end of edits
    if (!rec) {
      rec = await this.runtime.create(sandbox).catch((err: unknown) => {
        this.#reportNetworkFailure(sandbox, err);
        this.#reportConfigFailure(sandbox, err);
        throw err;
      });
      if (sandbox.spec.paused) this.runtime.pause(id, true);
    }
    // The applied generation is news even when no runtime record changed with it (observedGeneration follows).
    const obs = observe(this.runtime, rec);
    for (const fn of this.#listeners) fn(obs);
    return obs;
  }

  /**
   * A create that failed on the network (a hostPort in use, no address left)
   * leaves no record behind, so say why in the status (NetworkReady=False with
   * the reason) and still fail the apply: the controller retries it, and a
   * later success overwrites this.
   */
  #reportNetworkFailure(sandbox: Sandbox, err: unknown): void {
    if (!(err instanceof NetworkError)) return;
    const meta = sandbox.metadata as { namespace?: string; name?: string; uid?: string; generation?: number };
    const uid = meta.uid!;
    const generation = meta.generation ?? 0;
    const obs: SandboxObservation = {
      ref: { id: sandboxIdFor(uid), namespace: meta.namespace ?? 'default', name: meta.name ?? 'sandbox', uid },
      generation,
      status: { phase: 'Pending', reason: err.reason, message: err.message, conditions: networkFailureConditions(err.reason, err.message, generation) },
    };
    for (const fn of this.#listeners) fn(obs);
  }

  /**
   * A container whose configuration cannot work (an image user the image
   * does not define, runAsNonRoot against UID 0) leaves no record either: say
   * so as kubelet does, the container waiting with CreateContainerConfigError.
   * The controller keeps retrying; a fixed spec or image then starts it.
   */
  #reportConfigFailure(sandbox: Sandbox, err: unknown): void {
    if (!isContainerConfigError(err)) return;
    const meta = sandbox.metadata as { namespace?: string; name?: string; uid?: string; generation?: number };
    const uid = meta.uid!;
    const generation = meta.generation ?? 0;
    const status = {
      phase: 'Pending' as const, reason: err.reason, message: err.message,
      containerStatuses: sandbox.spec.containers.map((c) => ({
        name: c.name, image: c.image, ready: false, restartCount: 0,
        state: { waiting: c.name === err.container ? { reason: err.reason, message: err.message } : { reason: 'ContainerCreating' } },
      })),
    };
    const obs: SandboxObservation = {
      ref: { id: sandboxIdFor(uid), namespace: meta.namespace ?? 'default', name: meta.name ?? 'sandbox', uid },
      generation,
      status: {
        ...status,
        conditions: [
          { type: 'Ready', status: 'False', reason: err.reason, message: err.message, observedGeneration: generation, lastTransitionTime: new Date().toISOString() },
          { type: 'Reconciling', status: 'True', reason: 'RetryingCreate', message: 'The controller retries creating the sandbox', observedGeneration: generation, lastTransitionTime: new Date().toISOString() },
        ],
      },
    };
    for (const fn of this.#listeners) fn(obs);
  }

  async remove(uid: string): Promise<void> {
    const id = sandboxIdFor(uid);
    this.#removing.add(id);
    try {
      await this.runtime.delete(id);
    } finally {
      this.#removing.delete(id);
    }
  }

  /** A sandbox being deleted is already gone as far as the agent API is concerned. */
  get(uid: string): SandboxObservation | undefined {
    const rec = this.runtime.get(sandboxIdFor(uid));
    return rec && rec.phase !== 'Deleting' ? observe(this.runtime, rec) : undefined;
  }

  list(): SandboxObservation[] {
    return this.runtime
      .list()
      .filter((r) => r.phase !== 'Deleting')
      .map((r) => observe(this.runtime, r));
  }

  /** The image store's size, walked at most once a minute (the walk visits every unpacked file). */
  imageDiskUsageBytes(): number | undefined {
    if (!this.#imageStore) return undefined;
    const now = Date.now();
    if (!this.#diskUsage || now - this.#diskUsage.at > DISK_USAGE_MAX_AGE_MS) {
      try {
        this.#diskUsage = { at: now, bytes: this.#imageStore.diskUsage().total };
      } catch {
        return this.#diskUsage?.bytes; // a file vanished mid-walk (GC): keep the last figure, walk again next time
      }
    }
    return this.#diskUsage.bytes;
  }

  onNotice(listener: (ref: SandboxRef, notice: SandboxNotice) => void): () => void {
    this.#noticeListeners.add(listener);
    return () => this.#noticeListeners.delete(listener);
  }

  #notice(ref: SandboxRef, notice: SandboxNotice): void {
    for (const fn of this.#noticeListeners) fn(ref, notice);
  }

  onChange(listener: (obs: SandboxObservation) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

/**
 * The node network as the Helm chart configures it: SANDPIT_RUN_DIR (leases in
 * its network/ subdir, default /run/sandpit), SANDPIT_BRIDGE (sandpit0) and
 * SANDPIT_SUBNET (10.88.0.0/24), SANDPIT_NFT_TABLE (sandpit: the name of the
 * `inet` and `bridge` tables; a second agent or a test on the same host needs
 * its own). Unset variables keep the provider's defaults.
 */
export function networkOptionsFromEnv(env: NodeJS.ProcessEnv): BridgeNetworkOptions {
  const opts: BridgeNetworkOptions = {};
  if (env.SANDPIT_RUN_DIR) opts.stateDir = join(env.SANDPIT_RUN_DIR, 'network');
  if (env.SANDPIT_BRIDGE) opts.bridge = env.SANDPIT_BRIDGE;
  if (env.SANDPIT_SUBNET) opts.subnet = env.SANDPIT_SUBNET;
  if (env.SANDPIT_NFT_TABLE) {
    if (!TABLE_NAME.test(env.SANDPIT_NFT_TABLE)) throw new Error(`SANDPIT_NFT_TABLE=${env.SANDPIT_NFT_TABLE} is not a valid nftables table name (a letter, then up to 31 letters, digits, _ or -)`);
    opts.table = env.SANDPIT_NFT_TABLE;
  }
  // Optional: an IPv6 ULA prefix makes the node dual-stack (node-agent/network/README.md).
  if (env.SANDPIT_SUBNET6) opts.subnet6 = env.SANDPIT_SUBNET6;
  return opts;
}

/** The --registry-ca-file certificates, read once at start: a missing or empty file stops the agent with the path in the message. */
function registryCA(file: string | undefined): string | undefined {
  if (!file) return undefined;
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`--registry-ca-file ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`--registry-ca-file ${file} holds no PEM certificate`);
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
export async function createRuntime(opts: { node: string; log: Logger; flags?: RuntimeFlags; config?: Partial<RuntimeConfig>; deps?: Partial<RuntimeDeps> }): Promise<RuntimeService> {
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
  const plainHttpHosts = (process.env.SANDPIT_INSECURE_REGISTRIES ?? '').split(',').map((h) => h.trim()).filter(Boolean);
  const imageRoot = process.env.SANDPIT_IMAGE_ROOT ?? join(base, 'images');
  const ca = registryCA(opts.flags?.registryCAFile);
  const oci = opts.deps?.images ? undefined : new OciImageProvider({ root: imageRoot, registry: { plainHttpHosts, ...(ca ? { ca } : {}) }, log });
  const deps: RuntimeDeps = {
    images: opts.deps?.images ?? new RoutedImageProvider(new DirectoryImageProvider({ allowedRoots: opts.flags?.allowDirImages ?? [] }), oci!),
    network: opts.deps?.network ?? nodeNetworks(new BridgeNetworkProvider(networkOptionsFromEnv(process.env))),
    log,
  };
  const service = new RuntimeService(await SandboxRuntime.start(config, deps), oci);
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
