import { readFileSync, writeFileSync } from 'node:fs';
import { SandpitError } from '../../lib/errors.js';

/*
 * The few sysctls the network needs, written narrowly. /proc/sys/net resolves
 * to the network namespace of the calling thread, so inside inNetns() these
 * write the sandbox's values. Synchronous on purpose (see netns.ts).
 */

/** `key` is the path under /proc/sys, such as net/ipv4/ip_forward. */
export function writeSysctl(key: string, value: string, sandbox?: string): void {
  const path = `/proc/sys/${key}`;
  try {
    if (readFileSync(path, 'utf8').trim().replace(/\s+/g, ' ') === value) return;
    writeFileSync(path, value);
  } catch (err) {
    throw new SandpitError({ step: `set sysctl ${key}`, sandbox, message: String((err as Error).message), cause: err });
  }
}

/** Node side: forwarding on, and 127.0.0.1 → sandbox DNAT allowed on our bridge only (not all.route_localnet). */
export function nodeSysctls(bridge: string): [string, string][] {
  return [
    ['net/ipv4/ip_forward', '1'],
    [`net/ipv4/conf/${bridge}/route_localnet`, '1'],
  ];
}

/** Inside a sandbox: what Docker sets, so unprivileged workloads can bind low ports and ping. */
export const sandboxSysctls: [string, string][] = [
  ['net/ipv4/ip_unprivileged_port_start', '0'],
  ['net/ipv4/ping_group_range', '0 2147483647'],
];

/**
 * Dual-stack node side: IPv6 forwarding (node-wide, like ip_forward: it also
 * stops the node accepting router advertisements on interfaces left at
 * accept_ra=1, as with Docker's --ipv6), and no RA or DAD on our bridge.
 */
export function nodeSysctls6(bridge: string): [string, string][] {
  return [
    [`net/ipv6/conf/${bridge}/disable_ipv6`, '0'],
    [`net/ipv6/conf/${bridge}/accept_ra`, '0'],
    [`net/ipv6/conf/${bridge}/accept_dad`, '0'],
    ['net/ipv6/conf/all/forwarding', '1'],
  ];
}

/** Inside a dual-stack sandbox: no router advertisements (another sandbox could send them) and no DAD delay. */
export function sandboxSysctls6(ifname: string): [string, string][] {
  return [
    [`net/ipv6/conf/${ifname}/disable_ipv6`, '0'],
    [`net/ipv6/conf/${ifname}/accept_ra`, '0'],
    [`net/ipv6/conf/${ifname}/accept_dad`, '0'],
  ];
}
