import type { Logger } from '../../lib/log.js';
import type { NetworkProvider, NetworkRequest, NetworkResult, SandboxId, SandboxRef } from '../contracts.js';

/**
 * Network mode None: loopback only. The runtime brings `lo` up when it creates
 * the network namespace, so there is nothing to configure on the node; this
 * provider only writes the files every container gets. hostIP is still the
 * node's address, as a Pod's is whatever its network: `nodeIP` gives it (the
 * agent passes the bridge provider's; a bare runtime in tests has no node and
 * says 127.0.0.1).
 */
export class LoopbackOnlyNetwork implements NetworkProvider {
  readonly #nodeIP: () => string;
  constructor(nodeIP: () => string = () => '127.0.0.1') {
    this.#nodeIP = nodeIP;
  }
  async setup(req: NetworkRequest, _log: Logger): Promise<NetworkResult> {
    return {
      hostIP: this.#nodeIP(),
      resolvConf: noneResolvConf(req.network.dns),
      hosts: `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${req.hostname}\n`,
    };
  }
  async teardown(_sandbox: SandboxRef, _log: Logger): Promise<void> {}
  async collectGarbage(_live: Set<SandboxId>, _log: Logger): Promise<void> {}
}

/** Only what spec.network.dns names: a loopback-only sandbox has no resolver of the node's to reach. */
function noneResolvConf(dns: NetworkRequest['network']['dns']): string {
  const lines = (dns?.nameservers ?? []).map((n) => `nameserver ${n}`);
  if (dns?.searches?.length) lines.push(`search ${dns.searches.join(' ')}`);
  if (dns?.ndots !== undefined) lines.push(`options ndots:${dns.ndots}`);
  return lines.map((l) => `${l}\n`).join('');
}
