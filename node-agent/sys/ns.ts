import { check, libc, type CallSite } from './libc.js';

/*
 * Namespace syscalls. Every one of them acts on the calling OS thread only
 * (unshare, setns) or on the UTS namespace of that thread (sethostname), which
 * is why the runtime calls them from a launcher worker thread (which setns()es
 * back home afterwards) and never from the agent's main thread. A user
 * namespace can be neither made nor joined by a thread of a multithreaded
 * process at all (EINVAL): sandpit-init does that (namespaces/userns.ts).
 */

export const CLONE_NEWNS = 0x00020000;
export const CLONE_NEWUTS = 0x04000000;
export const CLONE_NEWIPC = 0x08000000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;
export const CLONE_FS = 0x00000200;

const unshareFn = libc.func('int unshare(int flags)');
const setnsFn = libc.func('int setns(int fd, int nstype)');
const sethostnameFn = libc.func('int sethostname(const char *name, size_t len)');

export function unshare(flags: number, site: CallSite): void {
  check('unshare', site, () => unshareFn(flags));
}

/** Joins the namespace behind `fd` (an open /proc/<pid>/ns/<kind>); nstype 0 accepts any kind. */
export function setns(fd: number, nstype: number, site: CallSite): void {
  check('setns', site, () => setnsFn(fd, nstype));
}

export function sethostname(name: string, site: CallSite): void {
  const bytes = Buffer.from(name);
  check('sethostname', site, () => sethostnameFn(name, bytes.length));
}
