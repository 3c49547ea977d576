import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { listeningSockets } from '../netlink/sockdiag.js';
import type { RtnlSocket } from '../netlink/socket.js';
import type { PortRule } from './validate.js';

/*
 * Programs of the node that listen on a port a sandbox wants to publish.
 * A published port is a DNAT rule for `fib daddr type local`: it would take
 * the traffic of such a listener silently (it keeps running, it just never sees
 * a packet again). So setup refuses the port instead, naming the listener.
 *
 * Listed with sock_diag (../netlink/sockdiag.ts) on the provider's socket, which
 * belongs to the namespace its thread was in when it was made (the agent's
 * thread is in the node's namespace; a test thread in its test node's).
 */

export interface HostListener {
  protocol: 'TCP' | 'UDP';
  /** Local address: dotted IPv4, or IPv6 ('::', '::ffff:a.b.c.d' for v4-mapped, else the hex words joined by ':'). */
  address: string;
  port: number;
  inode: number;
}

/** Listeners on any of `ports` (their protocol and number), in the network namespace the sock_diag socket `sock` belongs to. */
export function hostListeners(sock: RtnlSocket, ports: Pick<PortRule, 'hostPort' | 'protocol'>[]): HostListener[] {
  const unique = [
    ...new Map(ports.map((p) => [`${p.protocol}/${p.hostPort}`, { protocol: p.protocol, port: p.hostPort }])).values(),
  ];
  return listeningSockets(sock, unique).map((s) => ({
    protocol: s.protocol,
    address: s.address,
    port: s.port,
    inode: s.inode,
  }));
}

/**
 * Which listeners a DNAT of `port` would shadow. The DNAT is IPv4 and matches
 * every local address, or only `hostIP`. A listener on `::` may take IPv4 too
 * (dual-stack sockets), so it counts; other IPv6-only addresses do not, unless
 * the node is dual-stack (the DNAT then covers IPv6 too). Pure.
 */
export function shadowedListeners(
  listeners: HostListener[],
  port: Pick<PortRule, 'hostPort' | 'protocol' | 'hostIP'>,
  dualStack = false,
): HostListener[] {
  return listeners.filter((l) => {
    if (l.protocol !== port.protocol || l.port !== port.hostPort) return false;
    // On a dual-stack node a port without hostIP is DNATed on the IPv6 addresses too.
    if (dualStack && !port.hostIP) return true;
    const v4 = l.address.startsWith('::ffff:') ? l.address.slice(7) : l.address.includes(':') ? undefined : l.address;
    if (l.address === '::' || v4 === '0.0.0.0') return true;
    if (v4 === undefined) return false;
    return !port.hostIP || port.hostIP === v4;
  });
}

/**
 * The process holding socket `inode`, as `pid N (comm)`, found by scanning
 * /proc/<pid>/fd. Only called when a clash is found, to name the culprit.
 */
export function socketHolder(inode: number): string | undefined {
  const target = `socket:[${inode}]`;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // exited, or not ours to read
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (link === target) {
        let comm = '?';
        try {
          comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        } catch {
          /* exited meanwhile */
        }
        return `pid ${pid} (${comm})`;
      }
    }
  }
  return undefined;
}
