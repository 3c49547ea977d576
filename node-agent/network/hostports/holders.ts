import { fstatSync } from 'node:fs';
import { SandpitError } from '../../../lib/errors.js';
import { check, errnoName, libc, koffi } from '../../sys/libc.js';
import {
  AF_INET,
  AF_INET6,
  close,
  setsockopt,
  socket,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_STREAM,
  SOL_SOCKET,
  SO_RCVBUF,
} from '../../sys/net.js';
import type { SandboxId } from '../../contracts.js';
import { NetworkError, NetworkReason } from '../status.js';

/*
 * Published host ports are held open by the agent, as docker-proxy and
 * kubelet's hostport code do: a socket bound to the port (TCP: bound, never
 * listening, so nothing is ever accepted; UDP: bound, with the smallest receive
 * buffer) keeps any program of the node from binding it later. Without it the
 * DNAT would silently take the traffic of a program that starts listening on
 * the port after the sandbox published it. The sockets carry no traffic: the
 * DNAT rewrites packets before a socket is looked up.
 *
 * The sockets die with the agent; the provider binds them again at start from
 * the DNAT rules (which name their ports), so they are back as soon as the
 * agent is.
 */

const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;

const bind = libc.func('int bind(int fd, const void *addr, uint32_t len)');

export interface HeldPort {
  protocol: 'TCP' | 'UDP';
  hostPort: number;
  /** An IPv4 address of the node, or undefined for every address. */
  hostIP?: string;
}

/** sockaddr_in / sockaddr_in6 for a port on an address (the wildcard when undefined). */
export function sockaddr(family: 'ipv4' | 'ipv6', port: number, address?: string): Buffer {
  if (family === 'ipv4') {
    const b = Buffer.alloc(16);
    b.writeUInt16LE(AF_INET, 0);
    b.writeUInt16BE(port, 2);
    if (address) address.split('.').forEach((o, i) => b.writeUInt8(Number(o), 4 + i));
    return b;
  }
  const b = Buffer.alloc(28);
  b.writeUInt16LE(AF_INET6, 0);
  b.writeUInt16BE(port, 2);
  return b; // the unspecified address ::, no flow info, no scope
}

/** What a sandbox's published ports need held: one IPv4 socket each, plus [::] (IPv6 only) for wildcard ports on a dual-stack node. */
export function holdPlan(ports: HeldPort[], dualStack: boolean): { family: 'ipv4' | 'ipv6'; port: HeldPort }[] {
  const seen = new Set<string>();
  const out: { family: 'ipv4' | 'ipv6'; port: HeldPort }[] = [];
  for (const p of ports) {
    const key = `${p.protocol}/${p.hostIP ?? '*'}/${p.hostPort}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ family: 'ipv4', port: p });
    if (dualStack && !p.hostIP) out.push({ family: 'ipv6', port: p });
  }
  return out;
}

export class PortHolders {
  readonly #held = new Map<SandboxId, { fd: number; inode: number }[]>();

  /**
   * Binds every port of a sandbox (idempotent: a sandbox that holds ports keeps
   * them). A port a program bound first is refused with HostPortInUse, and
   * whatever this call bound is let go again.
   */
  hold(id: SandboxId, ports: HeldPort[], who: string, dualStack: boolean): void {
    if (this.#held.has(id) || ports.length === 0) return;
    const got: { fd: number; inode: number }[] = [];
    try {
      for (const { family, port } of holdPlan(ports, dualStack)) got.push(this.#bindOne(family, port, who));
    } catch (err) {
      for (const s of got) close(s.fd);
      throw err;
    }
    this.#held.set(id, got);
  }

  #bindOne(family: 'ipv4' | 'ipv6', p: HeldPort, who: string): { fd: number; inode: number } {
    const site = { sandbox: who, step: `hold hostPort ${p.hostPort}/${p.protocol}` };
    const type = (p.protocol === 'TCP' ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC;
    const fd = check('socket', site, () => socket(family === 'ipv4' ? AF_INET : AF_INET6, type, 0));
    try {
      if (family === 'ipv6')
        check('setsockopt IPV6_V6ONLY', site, () =>
          setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, Buffer.from(new Int32Array([1]).buffer), 4),
        );
      if (p.protocol === 'UDP')
        check('setsockopt SO_RCVBUF', site, () =>
          setsockopt(fd, SOL_SOCKET, SO_RCVBUF, Buffer.from(new Int32Array([1]).buffer), 4),
        );
      const addr = sockaddr(family, p.hostPort, family === 'ipv4' ? p.hostIP : undefined);
      koffi.errno(0);
      if (bind(fd, addr, addr.length) < 0) {
        const errno = koffi.errno();
        const at = family === 'ipv4' ? `${p.hostIP ?? '0.0.0.0'}:${p.hostPort}` : `[::]:${p.hostPort}`;
        if (errno === 98 /* EADDRINUSE */)
          throw new NetworkError(NetworkReason.HostPortInUse, {
            step: 'publish ports',
            sandbox: who,
            message: `hostPort ${p.hostPort}/${p.protocol} is in use on the node: a program bound ${at} first`,
            hint: 'choose another hostPort, or stop that program, or give the port a hostIP the program does not listen on',
          });
        throw new SandpitError({ ...site, message: `bind ${at} failed: ${errnoName(errno)}`, code: errnoName(errno) });
      }
      return { fd, inode: fstatSync(fd).ino };
    } catch (err) {
      close(fd);
      throw err;
    }
  }

  /** Whether a socket (by inode, as sock_diag reports it) is one of ours. */
  owns(inode: number): boolean {
    for (const socks of this.#held.values()) if (socks.some((s) => s.inode === inode)) return true;
    return false;
  }

  release(id: SandboxId): void {
    for (const s of this.#held.get(id) ?? []) close(s.fd);
    this.#held.delete(id);
  }

  holding(): SandboxId[] {
    return [...this.#held.keys()];
  }

  close(): void {
    for (const id of [...this.#held.keys()]) this.release(id);
  }
}
