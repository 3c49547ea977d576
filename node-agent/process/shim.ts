/*
 * The per-container shim is sandpit-init in shim mode (node-agent/native/).
 * It starts inside the container (after pivot_root, as /proc/self/fd/3, still
 * root), joins the container cgroup through the cgroup.procs fds the agent
 * opened, sets oom_score_adj and RLIMIT_NOFILE, then takes on the container's
 * identity itself (bounding set, seccomp filter read from a pipe, groups,
 * gid, uid, capabilities, no_new_privs): the launcher thread that started it
 * keeps its own credentials and can be used again. It runs the
 * workload as its child and writes its exit status (code, or 128+signal) into
 * the state dir through an inherited fd. Because the shim, not the agent,
 * waits for the workload, the exit status survives an agent restart.
 * With hostUsers: false the shim first joins the sandbox's user namespace
 * (an fd the agent passes), so the ids it takes on are ids inside it.
 * An exec is sandpit-init in exec mode (execArgs): the same steps, then it
 * becomes the command itself and the agent reaps it.
 */

import { capMask } from '../security/capabilities.js';
import type { Identity } from '../security/identity.js';

export interface ShimFds {
  /** fd of the exit-status file in the child. */
  exit: number;
  /** fds of the container cgroup's cgroup.procs, one per hierarchy. */
  cgroups: number[];
  /** fd of a pipe holding the seccomp filter (sock_filter bytes, writer closed); absent for Unconfined. */
  seccomp?: number;
  /** fd of the sandbox's user namespace (hostUsers: false); absent for the host's. */
  userns?: number;
  /**
   * tty: true: fd of the terminal's master end, which the shim holds for the
   * run (the workload does not get it), so the terminal outlives an agent
   * restart and a restarted agent takes it back with pidfd_getfd.
   */
  pty?: number;
}

export interface ShimOptions {
  oomScoreAdj?: number;
  nofile?: { soft: number; hard: number };
}

/** argv after argv0 for sandpit-init; the workload's resolved path goes at index `pathAt`. */
export function containerShimArgs(
  fds: ShimFds,
  opts: ShimOptions,
  id: Omit<Identity, 'seccomp'>,
  workload: string[],
): { args: string[]; pathAt: number } {
  const head = [
    'shim',
    fds.pty === undefined ? String(fds.exit) : `${fds.exit}:${fds.pty}`,
    fds.cgroups.length ? fds.cgroups.join(',') : '-',
    opts.oomScoreAdj === undefined ? '-' : String(opts.oomScoreAdj),
    opts.nofile ? String(opts.nofile.soft) : '-',
    opts.nofile ? String(opts.nofile.hard) : '-',
    optFd(fds.userns),
    ...identityArgs(id, fds.seccomp),
    '--',
  ];
  return { args: [...head, workload[0]!, ...workload], pathAt: head.length };
}

/**
 * argv after argv0 for sandpit-init in exec mode: join the cgroup, with a tty
 * take fd 0 as the controlling terminal, join the user namespace, become the
 * identity and exec the command. The command's resolved path goes at `pathAt`.
 */
export function execArgs(
  fds: Omit<ShimFds, 'exit'>,
  tty: boolean,
  id: Omit<Identity, 'seccomp'>,
  command: string[],
): { args: string[]; pathAt: number } {
  const head = [
    'exec',
    fds.cgroups.length ? fds.cgroups.join(',') : '-',
    optFd(fds.userns),
    tty ? '1' : '0',
    ...identityArgs(id, fds.seccomp),
    '--',
  ];
  return { args: [...head, command[0]!, ...command], pathAt: head.length };
}

/**
 * The fds a launched child gets after 0-2 (stdio) and 3 (the program itself):
 * each one placed is the child's next fd number, which its arguments name.
 */
export class ChildFds {
  readonly fds: number[] = [];
  /** Places `fd` (an agent fd) and returns its number in the child. */
  place(fd: number): number {
    this.fds.push(fd);
    return 3 + this.fds.length;
  }
  placeOptional(fd: number | undefined): number | undefined {
    return fd === undefined ? undefined : this.place(fd);
  }
  /** The child's number of an fd placed after these (the worker appends the pty master it allocates). */
  next(): number {
    return 4 + this.fds.length;
  }
}

const optFd = (fd: number | undefined) => (fd === undefined ? '-' : String(fd));

/** UID GID GROUPS CAPS NNP SECCOMP_FD, as become() in sandpit-init.c reads them. */
function identityArgs(id: Omit<Identity, 'seccomp'>, seccomp: number | undefined): string[] {
  return [
    String(id.uid),
    String(id.gid),
    id.groups.length ? id.groups.join(',') : '-',
    capMask(id.caps).toString(),
    id.noNewPrivs ? '1' : '0',
    optFd(seccomp),
  ];
}

/** Exit status as the shell reports it: 128+N means killed by signal N. */
export function decodeShellStatus(status: number): { exitCode: number; signal?: number } {
  return status > 128 && status < 160 ? { exitCode: status, signal: status - 128 } : { exitCode: status };
}
