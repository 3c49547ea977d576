import type { NetworkRequest } from '../../contracts.js';
import { isIPv4 } from '../cidr.js';
import { NetworkError, NetworkReason } from '../status.js';

/** A published port as setup accepted it: what the DNAT rules install and the holders bind. */
export interface PortRule {
  /** Name from the spec, reported in status only. */
  name?: string;
  hostIP?: string;
  hostPort: number;
  containerPort: number;
  protocol: 'TCP' | 'UDP';
}

type PortSpec = NonNullable<NetworkRequest['network']['ports']>[number];

/**
 * The spec's ports as rules, hostIP `0.0.0.0` or empty meaning every address
 * (undefined). Refuses (InvalidNetworkSpec) an IPv6 hostIP, which the IPv4
 * DNAT cannot honour, and the same hostPort and protocol twice, which would
 * leave one of the two unreachable. Pure.
 */
export function validatePorts(ports: PortSpec[], who: string): PortRule[] {
  const seen = new Set<string>();
  return ports.map((p) => {
    if (p.hostIP !== undefined && p.hostIP !== '' && p.hostIP !== '0.0.0.0' && !isIPv4(p.hostIP)) {
      throw new NetworkError(NetworkReason.InvalidNetworkSpec, {
        step: 'publish ports',
        sandbox: who,
        message: `hostIP ${p.hostIP} is not an IPv4 address`,
        hint: 'IPv6 hostIPs are not supported yet',
      });
    }
    const protocol = p.protocol ?? 'TCP';
    // The API server refuses these (list-map keys); standalone manifests do not pass through it.
    if (seen.has(`${protocol}/${p.hostPort}`)) {
      throw new NetworkError(NetworkReason.InvalidNetworkSpec, {
        step: 'publish ports',
        sandbox: who,
        message: `hostPort ${p.hostPort}/${protocol} is listed twice`,
        hint: 'publish each hostPort and protocol once',
      });
    }
    seen.add(`${protocol}/${p.hostPort}`);
    const hostIP = p.hostIP && p.hostIP !== '0.0.0.0' ? p.hostIP : undefined;
    return {
      ...(p.name ? { name: p.name } : {}),
      hostIP,
      hostPort: p.hostPort,
      containerPort: p.containerPort,
      protocol,
    };
  });
}
