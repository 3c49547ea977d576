import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { endianness } from 'node:os';
import type { PortRule } from './rules.js';

/*
 * Programs of the node that listen on a port a sandbox wants to publish.
 * A published port is a DNAT rule for `fib daddr type local`: it would take
 * the traffic of such a listener silently (it keeps running, it just never sees
 * a packet again). So setup refuses the port instead, naming the listener.
 *
 * Read from /proc/thread-self/net/{tcp,tcp6,udp,udp6}: per network namespace
 * of the calling thread (the agent's thread is in the node's namespace; a test
 * thread is in its test node's). /proc/net is the namespace of the process,
 * which a thread moved by setns() does not follow.
 */

export interface HostListener {
  protocol: 'TCP' | 'UDP';
  /** Local address: dotted IPv4, or IPv6 ('::', '::ffff:a.b.c.d' for v4-mapped, else the hex words joined by ':'). */
  address: string;
  port: number;
  inode: number;
}

const TCP_LISTEN = '0A';
/** An unconnected UDP socket is in TCP_CLOSE; a connected one (a client) is ESTABLISHED. */
const UDP_UNCONNECTED = '07';

/** The byte order /proc prints addresses in: the kernel prints each 32-bit word of the network-order address as a host-order number. */
const LE = endianness() === 'LE';

function word(hex: string): number[] {
  const b = [0, 2, 4, 6].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return LE ? b.reverse() : b;
}

/** Decodes the local-address column of /proc/net/{tcp,udp}[6]. Pure. */
export function decodeProcAddress(hex: string): string {
  if (hex.length === 8) return word(hex).join('.');
  const bytes = [0, 8, 16, 24].flatMap((i) => word(hex.slice(i, i + 8)));
  if (bytes.every((b) => b === 0)) return '::';
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return `::ffff:${bytes.slice(12).join('.')}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':');
}

/** The listening (TCP) or unconnected (UDP) sockets of one /proc/net file. Pure. */
export function parseProcNet(text: string, protocol: 'TCP' | 'UDP'): HostListener[] {
  const out: HostListener[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [local, remote, state, inode] = [f[1]!, f[2]!, f[3]!, f[9]!];
    if (protocol === 'TCP' ? state !== TCP_LISTEN : state !== UDP_UNCONNECTED || !remote.endsWith(':0000')) continue;
    const [addr, port] = local.split(':');
    out.push({ protocol, address: decodeProcAddress(addr!), port: parseInt(port!, 16), inode: Number(inode) });
  }
  return out;
}

/** Listeners of the calling thread's network namespace on any of `ports` (their protocol and number). */
export function hostListeners(ports: Pick<PortRule, 'hostPort' | 'protocol'>[]): HostListener[] {
  const wanted = new Set(ports.map((p) => `${p.protocol}/${p.hostPort}`));
  if (wanted.size === 0) return [];
  const out: HostListener[] = [];
  for (const [file, protocol] of [['tcp', 'TCP'], ['tcp6', 'TCP'], ['udp', 'UDP'], ['udp6', 'UDP']] as const) {
    if (![...wanted].some((w) => w.startsWith(`${protocol}/`))) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/thread-self/net/${file}`, 'utf8');
    } catch {
      continue; // no IPv6 in this kernel
    }
    out.push(...parseProcNet(text, protocol).filter((l) => wanted.has(`${l.protocol}/${l.port}`)));
  }
  return out;
}

/**
 * Which listeners a DNAT of `port` would shadow. The DNAT is IPv4 and matches
 * every local address, or only `hostIP`. A listener on `::` may take IPv4 too
 * (dual-stack sockets), so it counts; other IPv6-only addresses do not. Pure.
 */
export function shadowedListeners(listeners: HostListener[], port: Pick<PortRule, 'hostPort' | 'protocol' | 'hostIP'>): HostListener[] {
  return listeners.filter((l) => {
    if (l.protocol !== port.protocol || l.port !== port.hostPort) return false;
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
