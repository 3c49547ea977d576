import { endianness } from 'node:os';
import { AF_INET } from './codec.js';
import { RtnlSocket } from './socket.js';

/*
 * Just enough sock_diag (inet_diag) to list the listening TCP and unconnected
 * UDP sockets of the calling thread's network namespace. /proc/net/tcp walks
 * the whole established-connection hash of the host (~15 ms here even when the
 * namespace is empty); a dump restricted to TCP_LISTEN walks only the
 * listening hash (tens of microseconds), which keeps the hostPort check off
 * the setup's cost.
 */

export const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
export const AF_INET6 = 10;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const TCP_CLOSE = 7;
export const TCP_LISTEN = 10;

const LE = endianness() === 'LE';
const u32 = (buf: Buffer, off: number) => (LE ? buf.readUInt32LE(off) : buf.readUInt32BE(off));

/**
 * struct inet_diag_req_v2 for a dump of one family and protocol in the given
 * states (bit mask of 1 << state); with `localPort`, the kernel returns only
 * sockets bound to that port (it still walks its table, but formats nothing else).
 */
export function diagRequest(family: number, protocol: number, states: number, localPort = 0): Buffer {
  const b = Buffer.alloc(56);
  b[0] = family;
  b[1] = protocol;
  if (LE) b.writeUInt32LE(states >>> 0, 4);
  else b.writeUInt32BE(states >>> 0, 4);
  b.writeUInt16BE(localPort, 8);
  return b;
}

export interface DiagSocket {
  family: number;
  state: number;
  /** Local address: dotted IPv4, or IPv6 ('::', '::ffff:a.b.c.d' for v4-mapped, else eight hex groups). */
  address: string;
  port: number;
  remotePort: number;
  inode: number;
}

function formatAddress(family: number, raw: Buffer): string {
  if (family === AF_INET) return [...raw.subarray(0, 4)].join('.');
  const bytes = [...raw.subarray(0, 16)];
  if (bytes.every((b) => b === 0)) return '::';
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff)
    return `::ffff:${bytes.slice(12).join('.')}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':');
}

/** Decodes struct inet_diag_msg (the fixed part of each dump reply). Pure. */
export function decodeDiagMessage(payload: Buffer): DiagSocket {
  const family = payload[0]!;
  return {
    family,
    state: payload[1]!,
    port: payload.readUInt16BE(4),
    remotePort: payload.readUInt16BE(6),
    address: formatAddress(family, payload.subarray(8, 24)),
    inode: u32(payload, 68),
  };
}

/**
 * Listening TCP sockets and unconnected UDP sockets (IPv4 and IPv6) bound to
 * the given ports, in the network namespace `sock` (a NETLINK_SOCK_DIAG
 * RtnlSocket) was opened in.
 */
export function listeningSockets(
  sock: RtnlSocket,
  ports: { protocol: 'TCP' | 'UDP'; port: number }[],
): (DiagSocket & { protocol: 'TCP' | 'UDP' })[] {
  const out: (DiagSocket & { protocol: 'TCP' | 'UDP' })[] = [];
  for (const { protocol, port } of ports) {
    for (const family of [AF_INET, AF_INET6]) {
      const req =
        protocol === 'TCP'
          ? diagRequest(family, IPPROTO_TCP, 1 << TCP_LISTEN, port)
          : diagRequest(family, IPPROTO_UDP, 1 << TCP_CLOSE, port);
      for (const p of sock.dump(SOCK_DIAG_BY_FAMILY, req)) {
        const s = decodeDiagMessage(p);
        // The port filter is the kernel's; checked again in case an old kernel ignores it.
        if (s.port === port && (protocol === 'TCP' || s.remotePort === 0)) out.push({ ...s, protocol });
      }
    }
  }
  return out;
}
