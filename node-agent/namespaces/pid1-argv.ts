import type { RuntimeConfig } from '../runtime/config.js';

/*
 * The sandbox's PID 1 is sandpit-init in init mode (node-agent/native/): it
 * joins the sandbox cgroup through the cgroup.procs fds (so the cgroup
 * namespace it then creates is rooted there), makes the "infra" mount
 * namespace with a /proc of the sandbox's PID namespace (only a process inside
 * that namespace can mount it, and launcher threads bind it from here), moves
 * into the infra leaf cgroup, keeps the infra mount namespace as its fd 0
 * (launcher threads join /proc/PID/fd/0) and confines itself (an empty
 * read-only root of its own, uid 65535, no capabilities, no_new_privs, a
 * reaper's seccomp filter), reports ready on a pipe and stays as the reaper
 * for the life of the sandbox. One exec, a few KiB of memory.
 */
export function pid1Argv(
  bin: RuntimeConfig['binaries'],
  sandboxFds: number[],
  pid1Fds: number[],
  readyFd: number,
): { file: string; argv: string[] } {
  const list = (fds: number[]) => (fds.length ? fds.join(',') : '-');
  return { file: bin.init, argv: ['sandpit-init', 'init', String(readyFd), list(sandboxFds), list(pid1Fds)] };
}
