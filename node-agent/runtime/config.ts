/** What the agent's operator decides for a node; the spec cannot widen any of it. */
export interface RuntimeConfig {
  /** Sandbox state dirs live here (<stateRoot>/<id>/). */
  stateRoot: string;
  /** Name of sandpit's cgroup under each hierarchy root. */
  cgroupParent: string;
  allowPrivileged: boolean;
  /** Capabilities beyond Docker's defaults that specs may add. */
  allowedCapabilities: string[];
  restartBackoff: { baseMs: number; maxMs: number };
  log: { maxBytes: number; maxFiles: number };
  /** Size of each sandbox's /dev/shm in bytes. */
  shmBytes: number;
  /** How often container exits are looked for (SIGCHLD also triggers a look). */
  pollMs: number;
  /** Pre-warmed launcher threads. */
  launchers: number;
  /** oom_score_adj of workloads. */
  oomScoreAdj: number;
  binaries: { busybox: string; catatonit: string; unshare: string };
}

export function defaultConfig(over: Partial<RuntimeConfig> = {}): RuntimeConfig {
  return {
    stateRoot: '/var/lib/sandpit/sandboxes',
    cgroupParent: 'sandpit',
    allowPrivileged: false,
    allowedCapabilities: [],
    restartBackoff: { baseMs: 10_000, maxMs: 300_000 },
    log: { maxBytes: 10 * 1024 * 1024, maxFiles: 2 },
    shmBytes: 64 * 1024 * 1024,
    pollMs: 200,
    launchers: 2,
    oomScoreAdj: 0,
    binaries: { busybox: '/usr/bin/busybox', catatonit: '/usr/bin/catatonit', unshare: '/usr/bin/unshare' },
    ...over,
  };
}
