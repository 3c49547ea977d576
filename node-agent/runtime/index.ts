import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Sandbox } from '../../crds/sandbox.js';
import type { Logger } from '../../lib/log.js';
import {
  sandboxIdFor,
  type SandboxNotice,
  type SandboxObservation,
  type SandboxRef,
  type SandboxRuntime as RuntimeSeam,
} from '../contracts.js';
import { OciImageProvider } from '../images/provider.js';
import { TABLE_NAME, type BridgeNetworkOptions } from '../network/config.js';
import { BridgeNetworkProvider } from '../network/provider.js';
import type { RuntimeFlags } from '../config.js';
import { defaultConfig, type RuntimeConfig } from './config.js';
import { DirectoryImageProvider } from './directory-image.js';
import { NodeGarbageCollector } from './gc.js';
import { parseUsernsRange } from '../namespaces/userns.js';
import { deriveConditions } from '../status/derive.js';
import { classifyCreateFailure, creatingObservation, failureObservation, retryDelayMs } from '../status/failures.js';
import { nodeNetworks, RoutedImageProvider } from './providers.js';
import { changedContainerFields, diffSpec } from './spec-diff.js';
import { SandboxRuntime, type RuntimeDeps, type SandboxRecord } from './runtime.js';

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
  return {
    ref: rec.ref,
    generation,
    status: {
      ...status,
      ...(sandboxIPs ? { sandboxIPs } : {}),
      ...(publishedPorts ? { publishedPorts } : {}),
      conditions: deriveConditions(status, generation),
    },
  };
}

const DISK_USAGE_MAX_AGE_MS = 60_000;
/** How long a failed pull reads ErrImagePull before ImagePullBackOff (the status writer holds a Pending write 1 s). */
const BACKOFF_SHOWN_AFTER_MS = 3_000;

/** A sandbox the agent accepted whose create has not succeeded yet. */
interface Pending {
  /** The Sandbox asked for last: the work creates this one. */
  sandbox: Sandbox;
  /** Failed attempts at this generation (the back-off grows with them). */
  failures: number;
  /** What get/list answer meanwhile: ContainerCreating, or the last failure. */
  obs: SandboxObservation;
  /** The background work, while it runs. */
  worker?: Promise<void>;
  /** Set by remove: the work stops after the attempt under way. */
  cancelled: boolean;
  /** Set once created: the entry goes. */
  done?: boolean;
  /** Ends a back-off wait early (a new generation, a removal). */
  wake: () => void;
}

const identify = (s: Sandbox) => ({
  uid: (s.metadata as { uid?: string }).uid!,
  generation: (s.metadata as { generation?: number }).generation ?? 0,
});
const refOf = (s: Sandbox): SandboxObservation['ref'] => {
  const meta = s.metadata as { namespace?: string; name?: string; uid?: string };
  return {
    id: sandboxIdFor(meta.uid!),
    namespace: meta.namespace ?? 'default',
    name: meta.name ?? 'sandbox',
    uid: meta.uid!,
  };
};

export class RuntimeService implements RuntimeSeam {
  readonly runtime: SandboxRuntime;
  readonly #listeners = new Set<(obs: SandboxObservation) => void>();
  readonly #noticeListeners = new Set<(ref: SandboxRef, notice: SandboxNotice) => void>();
  /** Sandboxes being removed: their containers' exits on the way out are not news for the cluster. */
  readonly #removing = new Set<string>();
  readonly #imageStore: { diskUsage(): { total: number } } | undefined;
  #diskUsage: { at: number; bytes: number } | undefined;
  /** Sandboxes accepted and not yet created: being created, backing off, or failed for good (until a new generation). */
  readonly #pending = new Map<string, Pending>();
  readonly #backoff: { initialMs: number; maxMs: number };

  constructor(
    runtime: SandboxRuntime,
    imageStore?: { diskUsage(): { total: number } },
    opts: { retryBackoff?: { initialMs: number; maxMs: number } } = {},
  ) {
    this.runtime = runtime;
    this.#imageStore = imageStore;
    this.#backoff = opts.retryBackoff ?? { initialMs: 10_000, maxMs: 300_000 };
    runtime.subscribe((rec) => {
      if (rec.phase === 'Deleting' || this.#removing.has(rec.id)) return;
      this.#emit(observe(runtime, rec));
    });
  }

  /**
   * Accepts a Sandbox and answers at once with what the node has of it;
   * whatever takes time (removing the old generation, pulling, creating)
   * runs in the background (#work), with progress and failures reported
   * through onChange, as kubelet works a Pod. The same generation is a no-op;
   * a change of `paused` alone freezes or thaws on the spot.
   */
  async apply(sandbox: Sandbox): Promise<SandboxObservation> {
    const { uid, generation } = identify(sandbox);
    const id = sandboxIdFor(uid);
    const pending = this.#pending.get(id);
    if (pending) {
      if (identify(pending.sandbox).generation !== generation) {
        pending.sandbox = sandbox;
        pending.failures = 0;
        pending.obs = creatingObservation(refOf(sandbox), sandbox.spec, generation);
        if (!this.#editsInPlace(this.runtime.get(id), sandbox)) this.#emit(pending.obs);
        pending.wake();
        if (!pending.worker) this.#startWork(id, pending);
      }
      return this.get(uid)!;
    }
    const rec = this.runtime.get(id);
    if (rec && this.#converged(rec, sandbox)) {
      // The applied generation is news even when no runtime record changed with it (observedGeneration follows).
      const obs = observe(this.runtime, rec);
      this.#emit(obs);
      return obs;
    }
    const p: Pending = {
      sandbox,
      failures: 0,
      obs: creatingObservation(refOf(sandbox), sandbox.spec, generation),
      cancelled: false,
      wake: () => undefined,
    };
    // An edit the running sandbox takes in place (spec-diff.ts) keeps answering with that sandbox meanwhile.
    this.#pending.set(id, p);
    this.#startWork(id, p);
    return this.get(uid)!;
  }

  /**
   * Whether the record already is the sandbox asked for, after freezing or
   * thawing it when only `paused` differs (no recreate for that).
   */
  #converged(rec: SandboxRecord, sandbox: Sandbox): boolean {
    const { generation } = identify(sandbox);
    if ((rec.generation ?? 0) === generation) return true;
    const diff = diffSpec(rec.spec, sandbox.spec);
    if (diff.recreateReasons.length || diff.restartContainers.length) return false;
    // Fields read when they are used (restart policy, deadline, grace, pull secrets) take effect as they are.
    rec.spec = sandbox.spec;
    rec.generation = generation;
    if (diff.pauseChange !== undefined) this.runtime.pause(rec.id, diff.pauseChange);
    return true;
  }

  /** Whether the sandbox asked for is the running one with some containers restarted (no new sandbox). */
  #editsInPlace(rec: SandboxRecord | undefined, sandbox: Sandbox): boolean {
    return !!rec && rec.phase !== 'Deleting' && diffSpec(rec.spec, sandbox.spec).recreateReasons.length === 0;
  }

  /**
   * Restarts the containers whose definition changed (as kubelet restarts an
   * edited Pod's container), each with a Killing Event naming the fields,
   * then takes the new generation. A container whose new run cannot start
   * keeps its old run (runtime.restartContainer checks before it stops).
   */
  async #restartChanged(rec: SandboxRecord, sandbox: Sandbox): Promise<void> {
    const diff = diffSpec(rec.spec, sandbox.spec);
    for (const name of diff.restartContainers) {
      const fields = changedContainerFields(
        rec.spec.containers.find((c) => c.name === name)!,
        sandbox.spec.containers.find((c) => c.name === name)!,
      );
      this.#notice(rec.ref, {
        type: 'Normal',
        reason: 'Killing',
        note: `Container ${name} definition changed (${fields.join(', ')}), will be restarted`,
      });
      await this.runtime.restartContainer(rec.id, name, sandbox);
    }
    rec.spec = sandbox.spec;
    rec.generation = identify(sandbox).generation;
    if (diff.pauseChange !== undefined) this.runtime.pause(rec.id, diff.pauseChange);
  }

  #startWork(id: string, p: Pending): void {
    p.worker = this.#work(id, p).finally(() => {
      delete p.worker;
      if (this.#pending.get(id) === p && p.done) this.#pending.delete(id);
    });
  }

  /**
   * Drives one sandbox to its desired generation: removes an older one,
   * creates, and on failure reports it (status/failures.ts). What a retry may
   * fix is retried with kubelet's back-off (10 s doubling to 5 min; a pull
   * failure shows ImagePullBackOff while it waits); what cannot waits for a
   * new generation (apply wakes it) or a removal (cancelled). Every failed
   * attempt is torn down by the runtime: nothing is left on the node.
   */
  async #work(id: string, p: Pending): Promise<void> {
    while (!p.cancelled) {
      const want = p.sandbox;
      const { generation } = identify(want);
      const old = this.runtime.get(id);
      if (old && old.phase !== 'Deleting' && this.#converged(old, want)) {
        p.done = true;
        this.#emit(observe(this.runtime, old));
        return;
      }
      if (old && this.#editsInPlace(old, want)) {
        try {
          await this.#restartChanged(old, want);
          if (p.cancelled || p.sandbox !== want) continue;
          p.done = true;
          this.#emit(observe(this.runtime, old));
          return;
        } catch (err) {
          if (p.cancelled) return;
          if (p.sandbox !== want) continue;
          // The old runs go on: say why the edit did not take, and retry what a retry may fix.
          const failure = classifyCreateFailure(err);
          p.failures++;
          this.#notice(old.ref, { type: 'Warning', reason: 'Failed', note: `${failure.reason}: ${failure.message}` });
          if (!failure.retryable) return;
          await this.#sleep(p, retryDelayMs(p.failures, this.#backoff.initialMs, this.#backoff.maxMs));
          continue;
        }
      }
      if (old) {
        const reasons = diffSpec(old.spec, want.spec).recreateReasons;
        if (old.phase !== 'Deleting')
          this.#notice(old.ref, {
            type: 'Normal',
            reason: 'SandboxChanged',
            note: `Sandbox spec changed (${reasons.join(', ')}), it will be killed and re-created`,
          });
        await this.#delete(id); // recreated below; the old generation's exits are not reported
      }
      if (p.cancelled) return;
      if (p.sandbox !== want) continue;
      try {
        const rec = await this.runtime.create(want);
        if (want.spec.paused) this.runtime.pause(id, true);
        if (p.cancelled || p.sandbox !== want) continue; // removed (remove() deletes it) or changed meanwhile (recreated)
        p.done = true;
        this.#emit(observe(this.runtime, rec));
        return;
      } catch (err) {
        if (p.cancelled) return;
        if (p.sandbox !== want) continue;
        const failure = classifyCreateFailure(err);
        p.failures++;
        p.obs = failureObservation(refOf(want), want.spec, generation, failure);
        this.#emit(p.obs);
        if (!failure.retryable) return; // until a new generation (apply starts the work again) or a removal
        const delay = retryDelayMs(p.failures, this.#backoff.initialMs, this.#backoff.maxMs);
        // Between attempts a pull failure reads ImagePullBackOff, once ErrImagePull has had its own write.
        const shown = failure.reason === 'ErrImagePull' ? Math.min(BACKOFF_SHOWN_AFTER_MS, delay / 2) : undefined;
        await this.#sleep(
          p,
          delay,
          shown === undefined
            ? undefined
            : [
                shown,
                () => {
                  p.obs = failureObservation(refOf(want), want.spec, generation, failure, { backingOff: true });
                  this.#emit(p.obs);
                },
              ],
        );
      }
    }
  }

  /** Waits `ms`, or until apply or remove wakes the work; `at` runs once on the way. */
  #sleep(p: Pending, ms: number, at?: [number, () => void]): Promise<void> {
    return new Promise((resolve) => {
      const timers = [setTimeout(done, ms)];
      if (at)
        timers.push(
          setTimeout(() => {
            if (p.wake === done) at[1]();
          }, at[0]),
        );
      for (const t of timers) t.unref();
      function done() {
        for (const t of timers) clearTimeout(t);
        p.wake = () => undefined;
        resolve();
      }
      p.wake = done;
    });
  }

  #emit(obs: SandboxObservation): void {
    for (const fn of this.#listeners) fn(obs);
  }

  /** Cancels a pending create (waiting for one under way to end), then stops and removes everything of the sandbox. */
  async remove(uid: string): Promise<void> {
    const id = sandboxIdFor(uid);
    const p = this.#pending.get(id);
    if (p) {
      p.cancelled = true;
      p.wake();
      await p.worker;
      if (this.#pending.get(id) === p) this.#pending.delete(id);
    }
    await this.#delete(id);
  }

  async #delete(id: string): Promise<void> {
    this.#removing.add(id);
    try {
      await this.runtime.delete(id);
    } finally {
      this.#removing.delete(id);
    }
  }

  /**
   * A sandbox being deleted is already gone as far as the agent API is
   * concerned; one still to be created (or whose create failed) answers
   * with its pending observation.
   */
  get(uid: string): SandboxObservation | undefined {
    const id = sandboxIdFor(uid);
    const rec = this.runtime.get(id);
    const p = this.#pending.get(id);
    if (
      rec &&
      rec.phase !== 'Deleting' &&
      (!p || (rec.generation ?? 0) === identify(p.sandbox).generation || this.#editsInPlace(rec, p.sandbox))
    )
      return observe(this.runtime, rec);
    return p?.obs;
  }

  list(): SandboxObservation[] {
    const ids = new Set([
      ...this.runtime
        .list()
        .filter((r) => r.phase !== 'Deleting')
        .map((r) => r.id),
      ...this.#pending.keys(),
    ]);
    return [...ids].flatMap((id) => {
      const uid =
        this.runtime.get(id)?.ref.uid ?? (this.#pending.get(id) && identify(this.#pending.get(id)!.sandbox).uid);
      const obs = uid ? this.get(uid) : undefined;
      return obs ? [obs] : [];
    });
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
    if (!TABLE_NAME.test(env.SANDPIT_NFT_TABLE))
      throw new Error(
        `SANDPIT_NFT_TABLE=${env.SANDPIT_NFT_TABLE} is not a valid nftables table name (a letter, then up to 31 letters, digits, _ or -)`,
      );
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
  if (!pem.includes('-----BEGIN CERTIFICATE-----'))
    throw new Error(`--registry-ca-file ${file} holds no PEM certificate`);
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
