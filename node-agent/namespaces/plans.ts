import type { RootfsStep } from '../rootfs/plan.js';

/*
 * What a launcher thread is asked to do. Plain data, posted to a pre-warmed
 * worker thread; fds are process-wide, so the agent opens them and passes numbers.
 */

/** Starts the sandbox's PID 1 in new pid/net/ipc/uts namespaces. */
export interface Pid1Plan {
  kind: 'pid1';
  sandbox: string;
  hostname: string;
  /** Program and argv of PID 1 (sandpit-init init ...). */
  file: string;
  argv: string[];
  /** fds placed at 3, 4, ... in the child. */
  extraFds: number[];
  /** Index (>= 3) in the child's fd table of the pipe PID 1 writes "ready" to. */
  readyFd: number;
  /** What PID 1 writes there once it runs (default "ready"; a warm one says "started"). */
  readyWord?: string;
  log: number;
}

/** Starts a container process (or an exec) inside an existing sandbox. */
export interface ProcessPlan {
  kind: 'process';
  sandbox: string;
  step: string;
  /** Host PID whose namespaces to join: the sandbox PID 1, or the container's process for exec. */
  nsPid: number;
  /** Join the mount namespace of nsPid and stay there (exec) instead of building a new root in a copy of the infra mount namespace (fd 0 of the sandbox PID 1). */
  joinMount: boolean;
  /** Join the PID namespace of nsPid (false: the child gets a fresh one, shareProcessNamespace=false). */
  joinPid: boolean;
  /**
   * With joinPid false: the container's own PID 1 (sandpit-init pidns, from
   * `program`) joins the cgroup through these cgroup.procs fds and mounts /proc.
   */
  ownPid?: { cgroupFds: number[] };
  /** `owner`: the host UID of the container's root, owner of a working directory made for it. */
  rootfs?: { root: string; steps: RootfsStep[]; readOnly: boolean; owner: number };
  /**
   * Written under /proc/sys once the thread is in the sandbox's network
   * namespace (hostUsers: false: unprivileged ports and ping for the
   * container's root, whose capabilities do not reach that namespace).
   */
  netSysctls?: Record<string, string>;
  /**
   * The static program on the host that becomes the child, opened before
   * pivot_root and run as /proc/self/fd/3: sandpit-init (shim mode for a
   * container, exec mode for an exec).
   */
  program: string;
  argv0: string;
  /** argv after argv0 (['shim', ..., '--', path, ...workload] or ['exec', ..., '--', path, ...command]). */
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** fds for the child's 0, 1, 2 and then 4, 5, ... (3 is the program). */
  stdio: [number, number, number];
  extraFds: number[];
  /** Allocate a pty from the container's devpts and use it as 0-2; its master fd is returned. */
  tty: boolean;
  /** With tty: also give the pty master to the child, as its fd 4 + extraFds.length (the shim holds it). */
  ptyMasterToChild?: boolean;
  /** With tty: the host uid the terminal is given to (the workload's, as the node sees it); its group stays devpts' tty group. */
  ttyOwner?: number;
  /** Resolve argv[0] of the workload (args index) against PATH inside the new root. */
  resolveAt: number;
}

export type LaunchPlan = Pid1Plan | ProcessPlan;

export interface LaunchResult {
  pid?: number;
  /** Milliseconds into the launch at which each step finished, for the log. */
  marks?: Record<string, number>;
  /** The thread is back in the host's namespaces and may take another plan. */
  reusable?: boolean;
  ptyMaster?: number;
  /** Host PID of the container's own PID 1 (shareProcessNamespace: false). */
  pidnsInit?: number;
  error?: { message: string; step: string; code?: string; sandbox?: string; hint?: string };
}
