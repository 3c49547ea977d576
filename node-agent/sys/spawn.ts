import { check, koffi, libc, type CallSite } from './libc.js';
import { close, dup } from './proc.js';

/*
 * posix_spawn from the calling thread. glibc implements it with
 * clone(CLONE_VM|CLONE_VFORK), so unlike libuv's fork() it copies no page
 * tables of the (large) agent process, and the child still inherits
 * everything that is per-thread: namespaces, root, credentials, capabilities,
 * no_new_privs and the seccomp filter. Under the default filter clone3 gets
 * ENOSYS and glibc falls back to clone.
 */

const spawnFn = libc.func(
  'int posix_spawn(_Out_ int *pid, const char *path, void *actions, void *attr, const char **argv, const char **envp)',
);
const actionsInit = libc.func('int posix_spawn_file_actions_init(void *actions)');
const actionsDestroy = libc.func('int posix_spawn_file_actions_destroy(void *actions)');
const addDup2 = libc.func('int posix_spawn_file_actions_adddup2(void *actions, int fd, int newfd)');
const addChdir = libc.func('int posix_spawn_file_actions_addchdir_np(void *actions, const char *path)');
const attrInit = libc.func('int posix_spawnattr_init(void *attr)');
const attrDestroy = libc.func('int posix_spawnattr_destroy(void *attr)');
const attrSetFlags = libc.func('int posix_spawnattr_setflags(void *attr, short flags)');
const attrSetSigMask = libc.func('int posix_spawnattr_setsigmask(void *attr, void *set)');
const attrSetSigDefault = libc.func('int posix_spawnattr_setsigdefault(void *attr, void *set)');
const sigemptyset = libc.func('int sigemptyset(void *set)');
const sigfillset = libc.func('int sigfillset(void *set)');

const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;

/** posix_spawn* return an errno value instead of setting errno. */
function spawnCheck(call: string, site: CallSite, rc: number): void {
  if (rc !== 0) check(call, site, () => (koffi.errno(rc), -1));
}

/**
 * Starts `path` with `fds[i]` as the child's fd i, all signals at their
 * default disposition and none blocked (Node ignores SIGPIPE and that would be
 * inherited), in `cwd`. Returns the child's host PID; the caller reaps it.
 */
export function spawnFromThread(
  path: string,
  argv: string[],
  env: Record<string, string>,
  fds: number[],
  cwd: string,
  site: CallSite,
): number {
  const actions = Buffer.alloc(128);
  const attr = Buffer.alloc(512);
  const sigset = Buffer.alloc(128);
  // Move every source above the child's fd range first, so no dup2 clobbers a later source.
  const high = fds.map((fd) => dup(fd, site, fds.length + 3));
  try {
    spawnCheck('posix_spawn_file_actions_init', site, actionsInit(actions));
    spawnCheck('posix_spawnattr_init', site, attrInit(attr));
    high.forEach((fd, i) => spawnCheck('posix_spawn_file_actions_adddup2', site, addDup2(actions, fd, i)));
    spawnCheck('posix_spawn_file_actions_addchdir_np', site, addChdir(actions, cwd));
    sigfillset(sigset);
    spawnCheck('posix_spawnattr_setsigdefault', site, attrSetSigDefault(attr, sigset));
    sigemptyset(sigset);
    spawnCheck('posix_spawnattr_setsigmask', site, attrSetSigMask(attr, sigset));
    spawnCheck('posix_spawnattr_setflags', site, attrSetFlags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK));
    const pid = [0];
    const envp = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    spawnCheck(`posix_spawn ${path}`, site, spawnFn(pid, path, actions, attr, [...argv, null], [...envp, null]));
    return pid[0]!;
  } finally {
    actionsDestroy(actions);
    attrDestroy(attr);
    for (const fd of high) close(fd);
  }
}
