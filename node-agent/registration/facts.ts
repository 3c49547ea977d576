import { existsSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';

/** What a node has and is, as reported in SandboxNode.status. */
export interface NodeFacts {
  kernelVersion: string;
  cgroupMode: 'v1' | 'hybrid' | 'v2';
  capacity: { cpu: string; memory: string; sandboxes: number };
}

/**
 * v2 when /sys/fs/cgroup is itself cgroup2 (it has cgroup.controllers);
 * hybrid when v1 hierarchies sit beside a cgroup2 mount at
 * /sys/fs/cgroup/unified; v1 otherwise.
 */
export function detectCgroupMode(root = '/sys/fs/cgroup'): NodeFacts['cgroupMode'] {
  if (existsSync(`${root}/cgroup.controllers`)) return 'v2';
  if (existsSync(`${root}/unified/cgroup.controllers`) || existsSync(`${root}/unified`)) return 'hybrid';
  return 'v1';
}

export function detectFacts(maxSandboxes: number): NodeFacts {
  return {
    kernelVersion: release(),
    cgroupMode: detectCgroupMode(),
    capacity: { cpu: String(cpus().length), memory: `${Math.floor(totalmem() / 1024)}Ki`, sandboxes: maxSandboxes },
  };
}

/**
 * Allocatable = capacity less what the node keeps for itself (the agent,
 * the kubelet, the OS): sandboxes scheduled up to allocatable cannot starve
 * the node. Reserved amounts are in millicores and bytes.
 */
export function allocatable(
  capacity: NodeFacts['capacity'],
  reserved: { milliCpu: number; memory: number },
): NodeFacts['capacity'] {
  const cpuMilli = Math.max(0, Number(capacity.cpu) * 1000 - reserved.milliCpu);
  const memKi = Math.max(0, Number(capacity.memory.replace(/Ki$/, '')) - Math.ceil(reserved.memory / 1024));
  return { cpu: `${cpuMilli}m`, memory: `${memKi}Ki`, sandboxes: capacity.sandboxes };
}
