import { SandpitError } from '../../lib/errors.js';
import { createHash } from 'node:crypto';
import type { SandboxId } from '../contracts.js';

/** How the agent's network subsystem is set up on a node. */
export interface BridgeNetworkOptions {
  /**
   * Sandbox subnet of this node (IPv4 CIDR, /8 to /30), from the agent's
   * SANDPIT_SUBNET (reported as the SandboxNode's status.sandboxCIDR);
   * 10.88.0.0/24 (Podman's default) is only the last resort, so pick one the
   * node's LAN does not use.
   */
  subnet?: string;
  /**
   * Optional IPv6 prefix (a ULA in fd00::/8, /64 to /96) making the node
   * dual-stack: each sandbox gets the prefix with its IPv4 address in the low
   * 32 bits, masquerade and published ports work for IPv6 as for IPv4.
   */
  subnet6?: string;
  /** Bridge name; `sandpit0`. */
  bridge?: string;
  /** nftables table (family inet); `sandpit`. */
  table?: string;
  /** Where the lease table lives; `/run/sandpit/network` (tmpfs: leases do not outlive a reboot, and neither do sandboxes). */
  stateDir?: string;
  /** MTU of the bridge and veths; defaults to the MTU of the link holding the default route, else 1500. */
  mtu?: number;
  /** The node address reported as hostIP; defaults to the source address of the default route, else the bridge address. */
  hostIP?: string;
  /** Force an nftables backend; by default libnftables, falling back to the nft binary. */
  nftBackend?: 'libnftables' | 'nft';
  /** Resolvers used when the node has none a sandbox can reach. */
  fallbackNameservers?: string[];
  /** The node's resolver files (tests point these elsewhere). */
  resolvConfPath?: string;
  upstreamResolvConfPath?: string;
}

export const DEFAULT_SUBNET = '10.88.0.0/24';

export const defaults = {
  bridge: 'sandpit0',
  table: 'sandpit',
  stateDir: '/run/sandpit/network',
  fallbackNameservers: ['8.8.8.8', '8.8.4.4'],
  resolvConfPath: '/etc/resolv.conf',
  upstreamResolvConfPath: '/run/systemd/resolve/resolv.conf',
};

/** Interface names are at most 15 bytes, and must not escape /proc/sys paths. */
export const LINK_NAME = /^[a-zA-Z][a-zA-Z0-9_-]{0,14}$/;
export const TABLE_NAME = /^[a-zA-Z][a-zA-Z0-9_-]{0,31}$/;

/** Refuses a bridge or table name the kernel or nft would refuse later, naming the setting. */
export function checkNames(bridge: string, table: string): void {
  const step = 'configure the node network';
  if (!LINK_NAME.test(bridge))
    throw new SandpitError({
      step,
      message: `bridge name ${bridge} is not a valid interface name`,
      hint: 'a letter, then up to 14 letters, digits, _ or - (SANDPIT_BRIDGE)',
    });
  if (!TABLE_NAME.test(table))
    throw new SandpitError({
      step,
      message: `nftables table name ${table} is not valid`,
      hint: 'a letter, then up to 31 letters, digits, _ or - (SANDPIT_NFT_TABLE)',
    });
}

/** Host end of a sandbox's veth: `spv` + the last 11 characters of its id (contracts.ts). */
export const hostVethName = (id: SandboxId) => `spv${id.slice(1)}`;
export const HOST_VETH = /^spv([0-9a-f]{11})$/;
/** The interface inside the sandbox. */
export const SANDBOX_IFNAME = 'eth0';

/** A fixed, locally administered MAC for the bridge, derived from its name. */
export function bridgeMac(bridge: string): Buffer {
  const mac = createHash('sha256').update(`sandpit-bridge:${bridge}`).digest().subarray(0, 6);
  mac[0] = (mac[0]! & 0xfe) | 0x02;
  return Buffer.from(mac);
}
