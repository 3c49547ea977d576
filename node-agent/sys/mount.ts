import { check, libc, type CallSite } from './libc.js';

/* Mount-table syscalls for building a container root inside its own mount namespace. */

export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_REMOUNT = 0x20;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_SLAVE = 0x80000;
export const MS_STRICTATIME = 0x1000000;
export const MNT_DETACH = 0x2;

const SYS_PIVOT_ROOT = 155;
// The new mount API has one number on every architecture.
const SYS_OPEN_TREE = 428;
const SYS_MOVE_MOUNT = 429;
const SYS_MOUNT_SETATTR = 442;
const OPEN_TREE_CLONE = 1;
const OPEN_TREE_CLOEXEC = 0o2000000;
const AT_RECURSIVE = 0x8000;
const AT_EMPTY_PATH = 0x1000;
const MOVE_MOUNT_F_EMPTY_PATH = 0x4;
const MOUNT_ATTR_IDMAP = 0x100000;

const mountFn = libc.func(
  'int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)',
);
const umount2Fn = libc.func('int umount2(const char *target, int flags)');
const syscallFn = libc.func('long syscall(long number, ...)');
const chdirFn = libc.func('int chdir(const char *path)');
const fchdirFn = libc.func('int fchdir(int fd)');
const closeFn = libc.func('int close(int fd)');

export function mount(
  source: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  data: string | null,
  site: CallSite,
): void {
  check(`mount ${fstype ?? 'bind'} on ${target}`, site, () => mountFn(source, target, fstype, flags, data));
}

export function umount2(target: string, flags: number, site: CallSite): void {
  check(`umount2 ${target}`, site, () => umount2Fn(target, flags));
}

/** pivot_root has no glibc wrapper. */
export function pivotRoot(newRoot: string, putOld: string, site: CallSite): void {
  check('pivot_root', site, () => Number(syscallFn(SYS_PIVOT_ROOT, 'const char *', newRoot, 'const char *', putOld)));
}

export function chdir(path: string, site: CallSite): void {
  check(`chdir ${path}`, site, () => chdirFn(path));
}

export function fchdir(fd: number, site: CallSite): void {
  check('fchdir', site, () => fchdirFn(fd));
}

/**
 * Mounts `source` at `target` with its owners shifted through the user
 * namespace behind `usernsFd`: a file owned by host uid N shows as owned by
 * whatever host id N maps to from inside that namespace (a root-owned image
 * layer shows as the namespace's root). A detached copy of the source tree is
 * made (open_tree), idmapped (mount_setattr) and attached (move_mount); the
 * source itself is untouched. Fails with EINVAL where the filesystem cannot be idmapped.
 */
export function mountIdmapped(source: string, target: string, usernsFd: number, site: CallSite): void {
  const hint =
    'user namespaces (hostUsers: false) need idmapped mounts: Linux 5.19 or newer and image layers on a filesystem that supports them (ext4, xfs, btrfs, tmpfs)';
  const tree = check(
    `open_tree ${source}`,
    site,
    () =>
      Number(
        syscallFn(
          SYS_OPEN_TREE,
          'int',
          -100,
          'const char *',
          source,
          'unsigned int',
          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE,
        ),
      ),
    hint,
  );
  try {
    const attr = Buffer.alloc(32); // struct mount_attr { attr_set, attr_clr, propagation, userns_fd }
    attr.writeBigUInt64LE(BigInt(MOUNT_ATTR_IDMAP), 0);
    attr.writeBigUInt64LE(BigInt(usernsFd), 24);
    check(
      `mount_setattr idmap ${source}`,
      site,
      () =>
        Number(
          syscallFn(
            SYS_MOUNT_SETATTR,
            'int',
            tree,
            'const char *',
            '',
            'unsigned int',
            AT_EMPTY_PATH,
            'void *',
            attr,
            'size_t',
            attr.length,
          ),
        ),
      hint,
    );
    check(`move_mount ${source} to ${target}`, site, () =>
      Number(
        syscallFn(
          SYS_MOVE_MOUNT,
          'int',
          tree,
          'const char *',
          '',
          'int',
          -100,
          'const char *',
          target,
          'unsigned int',
          MOVE_MOUNT_F_EMPTY_PATH,
        ),
      ),
    );
  } finally {
    closeFn(tree);
  }
}
