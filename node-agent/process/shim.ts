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
 * Exec sessions still use busybox sh (execShimScript): they are short-lived.
 */

import { capMask } from '../security/capabilities.js';
import type { Identity } from '../security/apply.js';

export interface ShimFds {
  /** fd of the exit-status file in the child. */
  exit: number;
  /** fds of the container cgroup's cgroup.procs, one per hierarchy. */
  cgroups: number[];
  /** fd of a pipe holding the seccomp filter (sock_filter bytes, writer closed); absent for Unconfined. */
  seccomp?: number;
}

export interface ShimOptions {
  oomScoreAdj?: number;
  nofile?: { soft: number; hard: number };
}

/** argv after argv0 for sandpit-init; the workload's resolved path goes at index `pathAt`. */
export function containerShimArgs(fds: ShimFds, opts: ShimOptions, id: Omit<Identity, 'seccomp'>, workload: string[]): { args: string[]; pathAt: number } {
  const head = [
    'shim', String(fds.exit), fds.cgroups.length ? fds.cgroups.join(',') : '-',
    opts.oomScoreAdj === undefined ? '-' : String(opts.oomScoreAdj),
    opts.nofile ? String(opts.nofile.soft) : '-', opts.nofile ? String(opts.nofile.hard) : '-',
    String(id.uid), String(id.gid), id.groups.length ? id.groups.join(',') : '-',
    capMask(id.caps).toString(), id.noNewPrivs ? '1' : '0', fds.seccomp === undefined ? '-' : String(fds.seccomp),
    '--',
  ];
  return { args: [...head, workload[0]!, ...workload], pathAt: head.length };
}

const join = (fds: number[]) => fds.map((fd) => `echo 0 >&${fd}`).join('; ');
const closeAll = (fds: number[]) => fds.map((fd) => `${fd}>&-`).join(' ');

/** For exec: join the cgroup, then become the command (the agent reaps it itself). */
export function execShimScript(cgroups: number[], tty: boolean): string {
  return [join(cgroups), `exec ${closeAll(cgroups)} 3<&-`, tty ? 'exec setsid -c "$@"' : 'exec "$@"'].join('\n');
}

/** Exit status as the shell reports it: 128+N means killed by signal N. */
export function decodeShellStatus(status: number): { exitCode: number; signal?: number } {
  return status > 128 && status < 160 ? { exitCode: status, signal: status - 128 } : { exitCode: status };
}
