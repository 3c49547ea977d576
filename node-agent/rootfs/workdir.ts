import { SandpitError } from '../../lib/errors.js';
import {
  AT_SYMLINK_NOFOLLOW,
  fchownat,
  mkdirat,
  openat2,
  O_CLOEXEC,
  O_DIRECTORY,
  O_PATH,
  RESOLVE_IN_ROOT,
} from '../sys/fs.js';
import { errnoName, koffi, type CallSite } from '../sys/libc.js';
import { close } from '../sys/proc.js';

/*
 * A container's working directory, made when the image lacks it, as runc does
 * (`os.MkdirAll(cwd, 0755)` in prepareRootfs, after pivot_root, as the
 * container's root): each missing component is made 0755 and owned by the
 * container's root (`owner`, the host UID it maps to). Every component is
 * resolved with openat2(RESOLVE_IN_ROOT) against `rootFd`, so a symlink in
 * the image (absolute, or `..` past the top) resolves inside the container's
 * root and never reaches a directory of the node.
 */

const ENOENT = 2;
const EEXIST = 17;

function fail(site: CallSite, what: string): never {
  const code = errnoName(koffi.errno());
  throw new SandpitError({
    ...site,
    code,
    message: `${what} failed: ${code}`,
    hint:
      code === 'ENOTDIR' ? 'a component of workingDir is a file in the image; choose another workingDir' : undefined,
  });
}

export function makeWorkingDir(rootFd: number, path: string, owner: number, site: CallSite): void {
  const parts = path.split('/').filter((p) => p && p !== '.');
  let parent = openat2(rootFd, '.', O_PATH | O_DIRECTORY | O_CLOEXEC, 0, RESOLVE_IN_ROOT);
  if (parent < 0) fail(site, 'open /');
  try {
    for (let i = 0; i < parts.length; i++) {
      const sofar = parts.slice(0, i + 1).join('/');
      let fd = openat2(rootFd, sofar, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, RESOLVE_IN_ROOT);
      if (fd < 0 && koffi.errno() === ENOENT) {
        // `..` in the path resolves within the root (RESOLVE_IN_ROOT); the name made is a plain one.
        if (parts[i] === '..') fail(site, `open ${sofar}`);
        if (mkdirat(parent, parts[i]!, 0o755) < 0) {
          if (koffi.errno() !== EEXIST) fail(site, `mkdir /${sofar}`);
        } else if (fchownat(parent, parts[i]!, owner, owner, AT_SYMLINK_NOFOLLOW) < 0) fail(site, `chown /${sofar}`);
        fd = openat2(rootFd, sofar, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, RESOLVE_IN_ROOT);
      }
      if (fd < 0) fail(site, `open /${sofar}`);
      close(parent);
      parent = fd;
    }
  } finally {
    close(parent);
  }
}
