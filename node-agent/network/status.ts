import { SandpitError } from '../../lib/errors.js';
import { NetlinkError } from './netlink/socket.js';

/*
 * The NetworkReady condition of a sandbox. Reasons are CamelCase words a person
 * can act on; the message carries the detail (which port, which address pool).
 */

export const NetworkReason = {
  /** Everything is in place. */
  Configured: 'NetworkConfigured',
  /** mode None: loopback only, nothing on the node. */
  LoopbackOnly: 'LoopbackOnly',
  /** Every address of the node's sandbox subnet is leased. */
  AddressPoolExhausted: 'AddressPoolExhausted',
  /** Another sandbox already publishes the same hostPort/protocol on an overlapping hostIP. */
  HostPortConflict: 'HostPortConflict',
  /** A program of the node (not a sandbox) listens on the hostPort: publishing would silently take its traffic. */
  HostPortInUse: 'HostPortInUse',
  /** The sandbox's network namespace is gone (its process exited). */
  NetnsNotFound: 'NetnsNotFound',
  /** Links, addresses or routes could not be created. */
  LinkSetupFailed: 'LinkSetupFailed',
  /** nftables rules could not be installed (libnftables or nft missing, or the kernel refused). */
  FirewallSetupFailed: 'FirewallSetupFailed',
  /** The IPAM state on disk is unreadable or not writable. */
  AddressStateUnavailable: 'AddressStateUnavailable',
  /** The node's sandbox subnet collides with an address or route the node already has. */
  SubnetInUse: 'SubnetInUse',
  /** The spec asks for something the node cannot do (bad hostIP, bad resolver). */
  InvalidNetworkSpec: 'InvalidNetworkSpec',
} as const;
export type NetworkReasonValue = (typeof NetworkReason)[keyof typeof NetworkReason];

/** A failure of the network subsystem with the NetworkReady reason it maps to. */
export class NetworkError extends SandpitError {
  declare readonly reason: NetworkReasonValue;
  constructor(reason: NetworkReasonValue, opts: ConstructorParameters<typeof SandpitError>[0]) {
    super(opts);
    this.name = 'NetworkError';
    this.reason = reason;
  }
}

/**
 * Runs one step and turns a failure into a NetworkError naming the step and
 * the reason (a NetworkError from deeper down passes as it is); a kernel
 * refusal keeps its errno name as the code.
 */
export function networkStep<T>(reason: NetworkReasonValue, step: string, sandbox: string | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof NetworkError) throw err;
    const code = err instanceof NetlinkError ? err.code : undefined;
    throw new NetworkError(reason, { step, sandbox, message: (err as Error).message, code, cause: err });
  }
}
