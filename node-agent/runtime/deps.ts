import type { Logger } from '../../lib/log.js';
import { CgroupManager } from '../cgroups/manager.js';
import type { ImageProvider, NetworkProvider } from '../contracts.js';
import { LauncherPool } from '../namespaces/launcher.js';
import { StateStore } from '../state/store.js';
import { hostMounts, type SandboxMounts } from './mounts.js';
import type { RuntimeConfig } from './config.js';

/**
 * Every effect the runtime has on the node, handed in at construction (as
 * KubeVirt's virt-handler takes its effects), so that the composition root
 * decides what a node has and the runtime's decisions do not build it.
 */
export interface RuntimeDeps {
  images: ImageProvider;
  network: NetworkProvider;
  /** The sandboxes' cgroups under the agent's parent. */
  cgroups: CgroupManager;
  /** The threads that enter namespaces and spawn PID 1s, shims and execs. The runtime closes them on close(). */
  launchers: LauncherPool;
  /** Each sandbox's state directory. */
  store: StateStore;
  /** The sandboxes' /dev/shm and tmpfs volumes on the host. */
  mounts: SandboxMounts;
  log: Logger;
}

/** The node's own effects for `config`: its cgroup hierarchies, launcher threads, state directory and mount table. */
export async function nodeEffects(
  config: RuntimeConfig,
): Promise<Pick<RuntimeDeps, 'cgroups' | 'launchers' | 'store' | 'mounts'>> {
  return {
    cgroups: CgroupManager.detect(config.cgroupParent),
    launchers: await LauncherPool.create(config.launchers),
    store: new StateStore(config.stateRoot),
    mounts: hostMounts,
  };
}
