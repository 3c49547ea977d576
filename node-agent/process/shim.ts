/*
 * The per-container shim, as a busybox sh script. It runs as the container's
 * process (after pivot_root, with the container's credentials and filter),
 * joins the container cgroup through the cgroup.procs fds the agent opened
 * (the kernel checks the opener's credentials), then runs the workload in the
 * foreground and writes its exit status into the state dir through an
 * inherited fd. Because the shim, not the agent, waits for the workload, the
 * exit status survives an agent restart. fd 3 is busybox itself.
 */

export interface ShimFds {
  /** fd of the exit-status file in the child. */
  exit: number;
  /** fds of the container cgroup's cgroup.procs, one per hierarchy. */
  cgroups: number[];
}

const join = (fds: number[]) => fds.map((fd) => `echo 0 >&${fd}`).join('; ');
const closeAll = (fds: number[]) => fds.map((fd) => `${fd}>&-`).join(' ');

export function containerShimScript(fds: ShimFds, opts: { oomScoreAdj?: number; nofile?: number }): string {
  const lines = [`${join(fds.cgroups)}`, `exec ${closeAll(fds.cgroups)} 3<&-`];
  if (opts.oomScoreAdj !== undefined) lines.push(`echo ${opts.oomScoreAdj} > /proc/self/oom_score_adj`);
  if (opts.nofile !== undefined) lines.push(`ulimit -n ${opts.nofile}`);
  lines.push(`"$@" ${fds.exit}>&-`, `echo $? >&${fds.exit}`);
  return lines.join('\n');
}

/** For exec: join the cgroup, then become the command (the agent reaps it itself). */
export function execShimScript(cgroups: number[], tty: boolean): string {
  return [join(cgroups), `exec ${closeAll(cgroups)} 3<&-`, tty ? 'exec setsid -c "$@"' : 'exec "$@"'].join('\n');
}

/** Exit status as the shell reports it: 128+N means killed by signal N. */
export function decodeShellStatus(status: number): { exitCode: number; signal?: number } {
  return status > 128 && status < 160 ? { exitCode: status, signal: status - 128 } : { exitCode: status };
}
