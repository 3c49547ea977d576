import { fileURLToPath } from 'node:url';
import type { UsernsRange } from '../namespaces/userns.js';
import type { PolicyHints } from '../security/capabilities.js';

/** What the agent's operator decides for a node; the spec cannot widen any of it. */
export interface RuntimeConfig {
  /** Sandbox state dirs live here (<stateRoot>/<id>/). */
  stateRoot: string;
  /** Name of sandpit's cgroup under each hierarchy root. */
  cgroupParent: string;
  allowPrivileged: boolean;
  /** Capabilities beyond Docker's defaults that specs may add. */
  allowedCapabilities: string[];
  /** Which agent's flags the refusal hints name (the cluster agent's env and chart values, or standalone's flags). */
  hints: PolicyHints;
  restartBackoff: { baseMs: number; maxMs: number };
  log: { maxBytes: number; maxFiles: number };
  /** Size of each sandbox's /dev/shm in bytes. */
  shmBytes: number;
  /** How often container exits are looked for (SIGCHLD also triggers a look). */
  pollMs: number;
  /** Pre-warmed launcher threads. */
  launchers: number;
  /** Sandbox PID 1s kept ready in fresh namespaces (0: every create starts its own). */
  warmSandboxes: number;
  /** oom_score_adj of workloads. */
  oomScoreAdj: number;
  /** RLIMIT_NOFILE of workloads (soft, hard), like containerd's default; never above the agent's own hard limit. */
  nofile: { soft: number; hard: number };
  /**
   * Host ids handed out in blocks of 65536 to hostUsers: false sandboxes
   * (container 0..65535 maps to one block). Must not overlap ids the node uses.
   */
  usernsRange: UsernsRange;
  /** sandpit-init: sandbox PID 1, container shim, exec and user namespace maker (built by hack/native.sh). */
  binaries: { init: string };
}

export function defaultConfig(over: Partial<RuntimeConfig> = {}): RuntimeConfig {
  return {
    stateRoot: '/var/lib/sandpit/sandboxes',
    cgroupParent: 'sandpit',
    allowPrivileged: false,
    allowedCapabilities: [],
    hints: 'cluster',
    restartBackoff: { baseMs: 10_000, maxMs: 300_000 },
    log: { maxBytes: 10 * 1024 * 1024, maxFiles: 2 },
    shmBytes: 64 * 1024 * 1024,
    pollMs: 200,
    launchers: 2,
    warmSandboxes: 2,
    oomScoreAdj: 0,
    nofile: { soft: 1024, hard: 524288 },
    usernsRange: { first: 2 ** 30, count: 2 ** 30 },
    binaries: { init: fileURLToPath(new URL('../../native/sandpit-init', import.meta.url)) },
    ...over,
  };
}
