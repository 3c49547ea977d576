import type { SandboxNode } from '../../crds/sandboxnode.js';
import type { Logger } from '../../lib/log.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { paths } from '../../lib/kube/resources.js';
import type { EventRecorder } from '../../lib/kube/events.js';
import type { Informer } from '../informer/informer.js';
import { PRESSURE_CONDITIONS } from '../scheduling/scheduler.js';
import { mergeConditions, type ConditionInput } from '../../lib/kube/conditions.js';
import { agentSaysReady, type LeaseTracker, type NodeHealth } from './health.js';

/**
 * The node lifecycle loop (the Kubernetes node-lifecycle controller's job):
 * when a node's Lease stops changing, its SandboxNode gets Ready=Unknown and
 * its sandboxes are re-queued, so the sandbox reconciler marks them Unknown
 * and, after the grace, Failed with NodeLost. The pressure conditions the
 * agent reported go Unknown with it (as the node-lifecycle controller does to
 * a silent kubelet's), since nobody is reading them any more. A returning
 * agent sets them all again itself.
 */
export class NodeMonitor {
  readonly #last = new Map<string, NodeHealth>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly client: KubeClient,
    readonly nodes: Informer<SandboxNode>,
    readonly leases: LeaseTracker,
    readonly graceMs: number,
    readonly events: EventRecorder,
    readonly log: Logger,
    readonly enqueueNode: (node: string) => void,
  ) {}

  start(intervalMs = 1_000): void {
    this.#timer = setInterval(() => this.check(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  check(): void {
    for (const node of this.nodes.list()) {
      const name = node.metadata.name ?? '';
      const health = this.leases.health(name, node, this.graceMs);
      const prev = this.#last.get(name);
      this.#last.set(name, health);
      if (health !== 'Ready' && agentSaysReady(node)) this.#markUnknown(node);
      if (prev === health) continue;
      if (prev !== undefined) {
        this.log.info({ node: name, from: prev, to: health }, 'Node health changed');
        const warn = health !== 'Ready';
        this.events.record(
          { apiVersion: node.apiVersion, kind: node.kind, metadata: { ...node.metadata, namespace: 'default' } },
          warn ? 'Warning' : 'Normal',
          health === 'Lost' ? 'NodeLost' : health === 'NotReady' ? 'NodeNotReady' : 'NodeReady',
          `Node ${name} is ${health}`,
          'NodeLifecycle',
        );
      }
      this.enqueueNode(name);
    }
  }

  #markUnknown(node: SandboxNode): void {
    const name = node.metadata.name ?? '';
    const { list } = mergeConditions(node.status?.conditions, silentNodeConditions(node));
    this.client
      .patch(paths.sandboxNodeStatus(name), {
        metadata: { resourceVersion: node.metadata.resourceVersion },
        status: { conditions: list },
      })
      .catch((err: Error) =>
        this.log.debug({ node: name, err: err.message }, 'Could not mark the node NotReady; retrying next check'),
      );
  }
}

/** What a node whose lease expired says: Ready Unknown, and Unknown for each pressure condition its agent had reported. */
export function silentNodeConditions(node: SandboxNode): ConditionInput[] {
  const name = node.metadata.name ?? '';
  const reported = new Set((node.status?.conditions ?? []).map((c) => c.type));
  return [
    {
      type: 'Ready',
      status: 'Unknown',
      reason: 'NodeLeaseExpired',
      message: `The agent on ${name} stopped renewing its lease; check that it runs and reaches the API server`,
    },
    ...PRESSURE_CONDITIONS.filter((t) => reported.has(t)).map((type): ConditionInput => ({
      type,
      status: 'Unknown',
      reason: 'NodeLeaseExpired',
      message: `The agent on ${name} stopped reporting, so ${type} is not known`,
    })),
  ];
}
