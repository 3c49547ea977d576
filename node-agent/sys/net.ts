import { libc } from './libc.js';

/*
 * libc functions the network subsystem needs: raw netlink sockets (rtnetlink is
 * spoken from TypeScript, see node-agent/network/netlink/), setns() to reach a
 * sandbox's network namespace from the calling thread, and flock() for the
 * IPAM state lock. All are plain blocking calls made from the agent's thread.
 */

export const AF_NETLINK = 16;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const NETLINK_ROUTE = 0;
export const NETLINK_NETFILTER = 12;
export const CLONE_NEWNET = 0x40000000;
export const LOCK_EX = 2;
export const LOCK_UN = 8;
export const SOL_SOCKET = 1;
export const SO_RCVBUF = 8;
export const SOL_NETLINK = 270;
export const NETLINK_EXT_ACK = 11;

export const socket = libc.func('int socket(int domain, int type, int protocol)');
export const send = libc.func('long send(int fd, const void *buf, size_t len, int flags)');
export const recv = libc.func('long recv(int fd, _Out_ void *buf, size_t len, int flags)');
export const close = libc.func('int close(int fd)');
export const setsockopt = libc.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)');
export const setns = libc.func('int setns(int fd, int nstype)');
export const flock = libc.func('int flock(int fd, int operation)');
