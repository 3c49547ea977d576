import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { Sandbox } from '../../crds/sandbox.js';
import type { Logger } from '../../lib/log.js';
import { sandboxIdFor, type SandboxObservation, type SandboxRuntime } from '../contracts.js';
import { defaultConfig, type RuntimeConfig } from '../runtime/config.js';
import { OciImageProvider } from '../images/provider.js';
import { BridgeNetworkProvider } from '../network/provider.js';
import { DirectoryImageProvider } from '../runtime/directory-image.js';
import { LoopbackOnlyNetwork } from '../runtime/none-network.js';
import { ModeNetworkProvider, RoutedImageProvider } from '../runtime/providers.js';
import { SandboxRuntime as NodeRuntime, type SandboxRecord } from '../runtime/runtime.js';
import { deriveConditions } from '../status/derive.js';

/**
 * The node runtime (node-agent/runtime/) seen through the contract the agent
 * API drives (contracts.ts SandboxRuntime): UID-keyed, level-based apply.
 * The same generation is a no-op; a change of `paused` alone freezes or
 * thaws in place; any other spec change recreates the sandbox on the node.
 * Conditions are derived here from the runtime's observation.
 */
export class RuntimeSeam implements SandboxRuntime {
  readonly #listeners = new Set<(obs: SandboxObservation) => void>();

  constructor(readonly rt: NodeRuntime) {
    rt.subscribe((rec) => {
      if (rec.phase === 'Deleting') return;
      const obs = this.#observe(rec);
      if (!obs) return;
      for (const l of this.#listeners) l(obs);
    });
  }

  #observe(rec: SandboxRecord): SandboxObservation | undefined {
    let status;
    try {
      status = this.rt.status(rec.id);
    } catch {
      return undefined; // removed meanwhile
    }
    const generation = rec.generation ?? 0;
    return { ref: rec.ref, generation, status: { ...status, conditions: deriveConditions(status, generation) } };
  }

  async apply(sandbox: Sandbox): Promise<SandboxObservation> {
    const uid = sandbox.metadata.uid ?? `${sandbox.metadata.namespace}/${sandbox.metadata.name}`;
    const id = sandboxIdFor(uid);
    const generation = sandbox.metadata.generation ?? 0;
    let rec = this.rt.get(id);
    if (rec && rec.generation !== generation) {
      if (isDeepStrictEqual({ ...rec.spec, paused: sandbox.spec.paused }, sandbox.spec)) {
        rec.generation = generation; // persisted by pause()'s save
        this.rt.pause(id, sandbox.spec.paused);
      } else {
        await this.rt.delete(id);
        rec = undefined;
      }
    }
    if (!rec) {
      rec = await this.rt.create(sandbox);
      if (sandbox.spec.paused) this.rt.pause(id, true);
    }
    return this.#observe(rec)!;
  }

  async remove(uid: string): Promise<void> {
    await this.rt.delete(sandboxIdFor(uid));
  }

  get(uid: string): SandboxObservation | undefined {
    const rec = this.rt.get(sandboxIdFor(uid));
    return rec && rec.phase !== 'Deleting' ? this.#observe(rec) : undefined;
  }

  list(): SandboxObservation[] {
    return this.rt
      .list()
      .filter((r) => r.phase !== 'Deleting')
      .map((r) => this.#observe(r))
      .filter((o): o is SandboxObservation => o !== undefined);
  }

  onChange(listener: (obs: SandboxObservation) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

/**
 * What the agent main loads (SANDPIT_RUNTIME_MODULE overrides it), wired like
 * the standalone agent: OCI images from registries (dir:/path for unpacked
 * directories), the bridge network for mode Bridge and loopback for None.
 * SANDPIT_STATE_ROOT and SANDPIT_CGROUP_PARENT place its state; the image
 * store sits beside the state root unless SANDPIT_IMAGE_ROOT says otherwise.
 */
export async function createRuntime(opts: { node: string; log: Logger }): Promise<SandboxRuntime> {
  const over: Partial<RuntimeConfig> = {};
  if (process.env.SANDPIT_STATE_ROOT) over.stateRoot = process.env.SANDPIT_STATE_ROOT;
  if (process.env.SANDPIT_CGROUP_PARENT) over.cgroupParent = process.env.SANDPIT_CGROUP_PARENT;
  const config = defaultConfig(over);
  mkdirSync(config.stateRoot, { recursive: true, mode: 0o700 });
  const log = opts.log.child({ component: 'runtime' });
  const rt = await NodeRuntime.start(config, {
    images: new RoutedImageProvider(new DirectoryImageProvider(), new OciImageProvider({ root: process.env.SANDPIT_IMAGE_ROOT ?? join(config.stateRoot, '..', 'images'), log })),
    network: new ModeNetworkProvider(new BridgeNetworkProvider(), new LoopbackOnlyNetwork()),
    log,
  });
  return new RuntimeSeam(rt);
}
