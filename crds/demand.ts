import { bytes, milliCpu } from './quantity.js';
import type { SandboxSpec } from './sandbox.js';

/*
 * What a sandbox asks of a node, as Kubernetes counts a Pod's requests: the
 * scheduler reserves it, and the agent gives the sandbox and each container
 * the CPU weight it implies. One rule, read by both.
 */

/** What a sandbox asks of a node. */
export interface Demand {
  milliCpu: number;
  memory: number;
}

type Container = SandboxSpec['containers'][number];

/** A container's CPU request in millicores: its requests.cpu, its limits.cpu standing in, else 0 (best effort). */
export function containerMilliCpu(c: Pick<Container, 'resources'>): number {
  const q = c.resources?.requests?.cpu ?? c.resources?.limits?.cpu;
  return q === undefined ? 0 : milliCpu(q);
}

/**
 * The amount a sandbox reserves: the sum of its containers' requests (a
 * container's limits stand in for missing requests, as in Kubernetes), or the
 * sandbox-level limits when no container states any.
 */
export function sandboxDemand(spec: Pick<SandboxSpec, 'containers' | 'resources'>): Demand {
  let cpu = 0;
  let mem = 0;
  for (const c of spec.containers) {
    cpu += containerMilliCpu(c);
    const memQ = c.resources?.requests?.memory ?? c.resources?.limits?.memory;
    if (memQ !== undefined) mem += bytes(memQ);
  }
  if (cpu === 0 && spec.resources?.cpu !== undefined) cpu = milliCpu(spec.resources.cpu);
  if (mem === 0 && spec.resources?.memory !== undefined) mem = bytes(spec.resources.memory);
  return { milliCpu: cpu, memory: mem };
}
