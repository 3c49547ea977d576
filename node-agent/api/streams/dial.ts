import { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { SandpitError } from '../../../lib/errors.js';
import { inNetns } from '../../network/netns.js';
import { sockaddr } from '../../network/hostports/holders.js';
import { errnoName, koffi, libc } from '../../sys/libc.js';
import { AF_INET, close, socket, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET } from '../../sys/net.js';

/*
 * A TCP connection to 127.0.0.1:port inside a sandbox's network namespace,
 * made by the agent itself: the socket is created with the calling thread
 * moved into the namespace for a moment (a socket keeps its namespace for
 * life), connected without blocking, and handed to Node as a net.Socket. So a
 * port-forward costs no process (it used to be nsenter + socat per connection)
 * and works in every network mode, None included, reaching servers bound to
 * the sandbox's loopback.
 */

const EINPROGRESS = 115;
const POLLOUT = 4;
const SO_ERROR = 4;

const connect = libc.func('int connect(int fd, const void *addr, uint32_t len)');
const poll = libc.func('int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)');
const getsockopt = libc.func('int getsockopt(int fd, int level, int name, _Out_ int *value, _Inout_ uint32_t *len)');

export class DialError extends SandpitError {}

/** Connects to 127.0.0.1:`port` in the network namespace at `netnsPath` (e.g. /proc/PID/ns/net). */
export async function dialInNetns(netnsPath: string, port: number, sandbox: string, timeoutMs = 5000): Promise<Socket> {
  const site = { sandbox, step: `connect to port ${port} in the sandbox` };
  const fail = (errno: number): never => {
    throw new DialError({
      ...site,
      code: errnoName(errno),
      message: `connecting to 127.0.0.1:${port} in the sandbox failed: ${errnoName(errno)}`,
      hint: errno === 111 ? 'nothing listens on that port inside the sandbox' : undefined,
    });
  };
  const fd = inNetns(netnsPath, sandbox, () => {
    koffi.errno(0);
    const s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) fail(koffi.errno());
    return s;
  });
  try {
    const addr = sockaddr('ipv4', port, '127.0.0.1');
    koffi.errno(0);
    if (connect(fd, addr, addr.length) < 0) {
      const errno = koffi.errno();
      if (errno !== EINPROGRESS) fail(errno);
      // Loopback answers at once unless the server's backlog is full: wait, without blocking the agent.
      const deadline = Date.now() + timeoutMs;
      const pfd = Buffer.alloc(8);
      for (;;) {
        pfd.writeInt32LE(fd, 0);
        pfd.writeInt16LE(POLLOUT, 4);
        pfd.writeInt16LE(0, 6);
        if (poll(pfd, 1, 0) > 0) break;
        if (Date.now() > deadline) fail(110 /* ETIMEDOUT */);
        await sleep(5);
      }
      const err = [0];
      getsockopt(fd, SOL_SOCKET, SO_ERROR, err, [4]);
      if (err[0]) fail(err[0]);
    }
    return new Socket({ fd, readable: true, writable: true });
  } catch (err) {
    close(fd);
    throw err;
  }
}
