import type { Logger } from '../../lib/log.js';
import type { NetworkProvider, NetworkRequest, NetworkResult, SandboxId, SandboxRef } from '../contracts.js';

/**
 * Network mode None: loopback only. The runtime brings `lo` up when it creates
 * the network namespace, so there is nothing to configure on the node; this
 * provider only writes the files every container gets.
 */
export class LoopbackOnlyNetwork implements NetworkProvider {
  async setup(req: NetworkRequest, _log: Logger): Promise<NetworkResult> {
    return {
      hostIP: '127.0.0.1',
      resolvConf: (req.network.dns?.nameservers ?? []).map((n) => `nameserver ${n}\n`).join('') + (req.network.dns?.searches?.length ? `search ${req.network.dns.searches.join(' ')}\n` : ''),
      hosts: `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${req.hostname}\n`,
    };
  }
  async teardown(_sandbox: SandboxRef, _log: Logger): Promise<void> {}
  async collectGarbage(_live: Set<SandboxId>, _log: Logger): Promise<void> {}
}
