import type { SandboxSpec } from '../../crds/sandbox.js';
import { sandboxDemand, type Demand } from '../../crds/demand.js';

/*
 * Scheduling as pure functions over data: which node a sandbox goes to, or
 * why none will take it. The reconciler gathers the inputs from its caches
 * and writes the answer (a binding or Scheduled=False); nothing here does I/O.
 */

/** The node conditions that keep new sandboxes away while True (the agent reports them like kubelet does on a Node). */
export const PRESSURE_CONDITIONS = ['MemoryPressure', 'DiskPressure', 'PIDPressure'] as const;
export type PressureCondition = (typeof PRESSURE_CONDITIONS)[number];

/** A node as the scheduler sees it. Absent allocatable amounts mean "not limited". */
export interface NodeInfo {
  name: string;
  labels: Record<string, string>;
  ready: boolean;
  unschedulable: boolean;
  /** Pressure conditions that are True on the node. */
  pressure?: readonly PressureCondition[];
  allocatable: { milliCpu?: number; memory?: number; sandboxes?: number };
}

/** What the sandboxes already bound to a node take. */
export interface NodeUsage {
  milliCpu: number;
  memory: number;
  sandboxes: number;
}

export type ScheduleResult = { node: string } | { node?: undefined; reason: string; message: string };

/** Why one node was passed over; also the Scheduled=False reason when every node says the same. */
export type FilterReason =
  | 'NodeNotReady'
  | 'NodeUnschedulable'
  | 'NodeSelectorMismatch'
  | PressureCondition
  | 'InsufficientCPU'
  | 'InsufficientMemory'
  | 'TooManySandboxes';

const FILTER_TEXT: Record<FilterReason, string> = {
  NodeNotReady: 'node(s) not ready',
  NodeUnschedulable: 'node(s) cordoned (spec.unschedulable)',
  NodeSelectorMismatch: "node(s) didn't match the nodeSelector",
  MemoryPressure: 'node(s) with MemoryPressure',
  DiskPressure: 'node(s) with DiskPressure',
  PIDPressure: 'node(s) with PIDPressure',
  InsufficientCPU: 'node(s) without enough free CPU',
  InsufficientMemory: 'node(s) without enough free memory',
  TooManySandboxes: 'node(s) at their sandbox limit',
};

export function matchesNodeSelector(
  selector: Record<string, string> | undefined,
  labels: Record<string, string>,
): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}

/** The first reason the node cannot take the demand, or undefined when it can. */
export function filterNode(
  node: NodeInfo,
  usage: NodeUsage,
  demand: Demand,
  selector?: Record<string, string>,
): FilterReason | undefined {
  if (!node.ready) return 'NodeNotReady';
  if (node.unschedulable) return 'NodeUnschedulable';
  if (!matchesNodeSelector(selector, node.labels)) return 'NodeSelectorMismatch';
  // Unlike kube-scheduler, MemoryPressure turns away every sandbox, not only BestEffort ones: a sandbox
  // has no QoS class, and the agent evicts nothing, so placing more on a starved node only makes it worse.
  const pressed = PRESSURE_CONDITIONS.find((c) => node.pressure?.includes(c));
  if (pressed) return pressed;
  const a = node.allocatable;
  if (a.milliCpu !== undefined && usage.milliCpu + demand.milliCpu > a.milliCpu) return 'InsufficientCPU';
  if (a.memory !== undefined && usage.memory + demand.memory > a.memory) return 'InsufficientMemory';
  if (a.sandboxes !== undefined && usage.sandboxes + 1 > a.sandboxes) return 'TooManySandboxes';
  return undefined;
}

/**
 * Load after placing the demand, 0..1: the fullest of cpu, memory and count.
 * Picking the lowest spreads sandboxes instead of packing the first node.
 */
export function loadScore(node: NodeInfo, usage: NodeUsage, demand: Demand): number {
  const a = node.allocatable;
  const frac = (used: number, cap: number | undefined) => (cap ? used / cap : 0);
  return Math.max(
    frac(usage.milliCpu + demand.milliCpu, a.milliCpu),
    frac(usage.memory + demand.memory, a.memory),
    frac(usage.sandboxes + 1, a.sandboxes),
  );
}

const EMPTY: NodeUsage = { milliCpu: 0, memory: 0, sandboxes: 0 };

/** Chooses a node for a sandbox, honouring the nodeName pin, nodeSelector and capacity. */
export function scheduleSandbox(
  spec: Pick<SandboxSpec, 'containers' | 'resources' | 'nodeSelector' | 'nodeName'>,
  nodes: NodeInfo[],
  usage: ReadonlyMap<string, NodeUsage>,
): ScheduleResult {
  const demand = sandboxDemand(spec);
  if (spec.nodeName) {
    const node = nodes.find((n) => n.name === spec.nodeName);
    if (!node)
      return {
        reason: 'NodeNotFound',
        message: `Pinned node ${spec.nodeName} has no SandboxNode: is the sandpit agent running there?`,
      };
    const why = filterNode(node, usage.get(node.name) ?? EMPTY, demand, spec.nodeSelector);
    if (why)
      return {
        reason: why,
        message: `Pinned node ${node.name}: ${(PRESSURE_CONDITIONS as readonly string[]).includes(why) ? `${why} is True` : FILTER_TEXT[why].replace('node(s) ', '')}`,
      };
    return { node: node.name };
  }
  if (nodes.length === 0)
    return { reason: 'NoNodes', message: 'No SandboxNode exists: start a sandpit agent on at least one node' };
  const counts = new Map<FilterReason, number>();
  let best: { name: string; score: number; count: number } | undefined;
  for (const node of nodes) {
    const u = usage.get(node.name) ?? EMPTY;
    const why = filterNode(node, u, demand, spec.nodeSelector);
    if (why) {
      counts.set(why, (counts.get(why) ?? 0) + 1);
      continue;
    }
    const score = loadScore(node, u, demand);
    const better =
      !best ||
      score < best.score ||
      (score === best.score && (u.sandboxes < best.count || (u.sandboxes === best.count && node.name < best.name)));
    if (better) best = { name: node.name, score, count: u.sandboxes };
  }
  if (best) return { node: best.name };
  const parts = [...counts].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${n} ${FILTER_TEXT[r]}`);
  const reason = counts.size === 1 ? [...counts.keys()][0]! : 'Unschedulable';
  return { reason, message: `0/${nodes.length} nodes are available: ${parts.join(', ')}` };
}

/** Adds a bound sandbox's demand to its node's usage. */
export function addUsage(usage: Map<string, NodeUsage>, node: string, demand: Demand): void {
  const u = usage.get(node) ?? { ...EMPTY };
  usage.set(node, {
    milliCpu: u.milliCpu + demand.milliCpu,
    memory: u.memory + demand.memory,
    sandboxes: u.sandboxes + 1,
  });
}
