import type { Logger } from '../../lib/log.js';
import type { BridgeNetworkProvider } from '../network/provider.js';
import { LoopbackOnlyNetwork } from './none-network.js';
import type {
  ImageProvider,
  NetworkProvider,
  NetworkRequest,
  NetworkResult,
  PreparedImage,
  PullOptions,
  SandboxId,
  SandboxRef,
} from '../contracts.js';

/** `dir:` references come from unpacked directories, everything else from registries. */
export class RoutedImageProvider implements ImageProvider {
  readonly #dir: ImageProvider;
  readonly #oci: ImageProvider;
  constructor(dir: ImageProvider, oci: ImageProvider) {
    this.#dir = dir;
    this.#oci = oci;
  }
  prepare(reference: string, opts: PullOptions): Promise<PreparedImage> {
    return reference.startsWith('dir:') ? this.#dir.prepare(reference, opts) : this.#oci.prepare(reference, opts);
  }
  async release(sandbox: SandboxId): Promise<void> {
    await this.#dir.release(sandbox);
    await this.#oci.release(sandbox);
  }
}

/** network.mode None gets loopback only; Bridge goes to the node bridge. Teardown asks both: it is idempotent by name. */
export class ModeNetworkProvider implements NetworkProvider {
  readonly #bridge: NetworkProvider;
  readonly #none: NetworkProvider;
  constructor(bridge: NetworkProvider, none: NetworkProvider) {
    this.#bridge = bridge;
    this.#none = none;
  }
  setup(req: NetworkRequest, log: Logger): Promise<NetworkResult> {
    return req.network.mode === 'None' ? this.#none.setup(req, log) : this.#bridge.setup(req, log);
  }
  async teardown(sandbox: SandboxRef, log: Logger): Promise<void> {
    await this.#none.teardown(sandbox, log);
    await this.#bridge.teardown(sandbox, log);
  }
  collectGarbage(live: Set<SandboxId>, log: Logger): Promise<void> {
    return this.#bridge.collectGarbage(live, log);
  }
}

/** The agent's networks: Bridge through `bridge`; None on loopback, still reporting the node's address as hostIP. */
export function nodeNetworks(bridge: BridgeNetworkProvider): ModeNetworkProvider {
  return new ModeNetworkProvider(bridge, new LoopbackOnlyNetwork(() => bridge.nodeIP()));
}
