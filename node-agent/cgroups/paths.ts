/*
 * Where a sandbox's processes sit, relative to the manager's parent:
 * <sandbox id>/ holds the sandbox's limits, <id>/infra its PID 1 (the name is
 * on disk in every running node: kept), <id>/c-<container> each container's
 * current run.
 */

/** The cgroup of the sandbox's PID 1. */
export function pid1Cgroup(id: string): string {
  return `${id}/infra`;
}

/** The cgroup of one container's run. */
export function containerCgroup(id: string, container: string): string {
  return `${id}/c-${container}`;
}
