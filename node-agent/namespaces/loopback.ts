import { check, libc, type CallSite } from '../sys/libc.js';
import { close } from '../sys/proc.js';

const socketFn = libc.func('int socket(int domain, int type, int protocol)');
const ioctlFn = libc.func('int ioctl(int fd, unsigned long request, void *arg)');

const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const IFF_UP = 0x1;

/** Brings `lo` up in the network namespace of the calling thread (a new netns starts with it down). */
export function bringLoopbackUp(site: CallSite): void {
  const fd = check('socket', site, () => socketFn(2 /* AF_INET */, 2 /* SOCK_DGRAM */, 0));
  try {
    const ifr = Buffer.alloc(40);
    ifr.write('lo', 0);
    check('ioctl SIOCGIFFLAGS lo', site, () => ioctlFn(fd, SIOCGIFFLAGS, ifr));
    ifr.writeUInt16LE(ifr.readUInt16LE(16) | IFF_UP, 16);
    check('ioctl SIOCSIFFLAGS lo', site, () => ioctlFn(fd, SIOCSIFFLAGS, ifr));
  } finally {
    close(fd);
  }
}
