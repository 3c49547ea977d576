import { API_VERSION } from '../../crds/common.js';
import type { SandboxNode } from '../../crds/sandboxnode.js';
import { isConflict, isNotFound, type KubeClient } from '../../lib/kube/client.js';
import { NODE_LEASE_LABEL, paths } from '../../lib/kube/resources.js';
import { mergeConditions, type ConditionInput } from '../../lib/kube/conditions.js';
import type { Logger } from '../../lib/log.js';

type NodeStatus = NonNullable<SandboxNode['status']>;

export interface RegistrationConfig {
  node: string;
  namespace: string;
  /** Seconds a lease stays valid without renewal; it is renewed every quarter of that. */
  leaseDurationSeconds: number;
  labels: Record<string, string>;
  /** How often the SandboxNode status is compared with what the agent knows (and rewritten if different). */
  statusIntervalMs: number;
}

const microTime = () => new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

/**
 * Keeps this node registered: a SandboxNode named after the node, with the
 * facts and capacity in its status and Ready=True, and a Lease named after
 * the node in the agent namespace, renewed every quarter of its duration.
 * The Lease is the heartbeat (one PATCH every few seconds, from the
 * resourceVersion the last renewal returned, as kubelet renews from its last
 * update; a conflict reads it again); the SandboxNode
 * status is rewritten only when it differs, e.g. after the controller
 * marked it Unknown while this agent was away.
 */
export class NodeRegistration {
  #leaseTimer: NodeJS.Timeout | undefined;
  /** resourceVersion of the Lease as our last renewal left it, so the next renewal is one request, not a GET and a PATCH. */
  #leaseVersion: string | undefined;
  #statusTimer: NodeJS.Timeout | undefined;
  #desired: () => Omit<NodeStatus, 'conditions'>;
  #conditions: () => ConditionInput[];

  /** `conditions` adds the agent's own observations (node pressure, pressure.ts) beside Ready. */
  constructor(
    readonly client: KubeClient,
    readonly cfg: RegistrationConfig,
    desired: () => Omit<NodeStatus, 'conditions'>,
    readonly log: Logger,
    conditions: () => ConditionInput[] = () => [],
  ) {
    this.#desired = desired;
    this.#conditions = conditions;
  }

  async start(): Promise<void> {
    await this.renewLease();
    await this.syncNode();
    const renewMs = (this.cfg.leaseDurationSeconds * 1000) / 4;
    this.#leaseTimer = setInterval(() => {
      this.renewLease().catch((err: Error) => this.log.warn({ err: err.message }, 'Lease renewal failed; retrying'));
    }, renewMs);
    this.#statusTimer = setInterval(() => {
      this.syncNode().catch((err: Error) => this.log.warn({ err: err.message }, 'SandboxNode update failed; retrying'));
    }, this.cfg.statusIntervalMs);
  }

  stop(): void {
    clearInterval(this.#leaseTimer);
    clearInterval(this.#statusTimer);
  }

  async renewLease(): Promise<void> {
    const { node, namespace, leaseDurationSeconds } = this.cfg;
    const spec = { holderIdentity: node, leaseDurationSeconds, renewTime: microTime() };
    type Versioned = { metadata: { resourceVersion: string } };
    if (this.#leaseVersion) {
      try {
        this.#leaseVersion = (
          await this.client.patch<Versioned>(paths.lease(namespace, node), {
            metadata: { resourceVersion: this.#leaseVersion },
            spec,
          })
        ).metadata.resourceVersion;
        return;
      } catch (err) {
        this.#leaseVersion = undefined;
        if (!isConflict(err) && !isNotFound(err)) throw err; // changed or deleted by someone else: read it again below
      }
    }
    try {
      const cur = await this.client.get<Versioned>(paths.lease(namespace, node));
      this.#leaseVersion = (
        await this.client.patch<Versioned>(paths.lease(namespace, node), {
          metadata: { resourceVersion: cur.metadata.resourceVersion },
          spec,
        })
      ).metadata.resourceVersion;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const created = await this.client.create<Versioned>(paths.leases(namespace), {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: node, namespace, labels: { [NODE_LEASE_LABEL]: 'true' } },
        spec: { ...spec, acquireTime: microTime() },
      });
      this.#leaseVersion = created.metadata.resourceVersion;
    }
  }

  /** Creates the SandboxNode if missing, then writes its status when it differs from ours. */
  async syncNode(): Promise<void> {
    const { node } = this.cfg;
    let cur: SandboxNode;
    try {
      cur = await this.client.get<SandboxNode>(paths.sandboxNode(node));
    } catch (err) {
      if (!isNotFound(err)) throw err;
      cur = await this.client.create<SandboxNode>(paths.sandboxNodes(), {
        apiVersion: API_VERSION,
        kind: 'SandboxNode',
        metadata: { name: node, labels: { 'kubernetes.io/hostname': node, ...this.cfg.labels } },
        spec: {},
      });
      this.log.info({ node }, 'Registered SandboxNode');
    }
    const desired = this.#desired();
    const { list, changed } = mergeConditions(cur.status?.conditions, [
      {
        type: 'Ready',
        status: 'True',
        reason: 'AgentReady',
        message: `The sandpit agent on ${node} is serving and heartbeating`,
      },
      ...this.#conditions(),
    ]);
    const curFields = { ...(cur.status ?? {}) } as Record<string, unknown>;
    delete curFields.conditions;
    if (!changed && sameFields(curFields, desired)) return;
    try {
      await this.client.patch(paths.sandboxNodeStatus(node), {
        metadata: { resourceVersion: cur.metadata.resourceVersion },
        status: { ...desired, conditions: list },
      });
    } catch (err) {
      if (!isConflict(err)) throw err;
      return this.syncNode();
    }
  }
}

function sameFields(cur: Record<string, unknown>, desired: Record<string, unknown>): boolean {
  return Object.entries(desired).every(([k, v]) => JSON.stringify(cur[k]) === JSON.stringify(v));
}
