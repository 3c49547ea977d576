import { Sandbox } from '../../crds/sandbox.js';
import type { SandboxNode } from '../../crds/sandboxnode.js';
import { SandpitError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { AgentError, type AgentClient } from '../agentclient/client.js';
import { isConflict, isNotFound, type KubeClient } from '../../lib/kube/client.js';
import { paths, splitKey } from '../../lib/kube/resources.js';
import type { EventRecorder } from '../../lib/kube/events.js';
import { hasFinalizer, withFinalizer, withoutFinalizer, writeFinalizers } from '../finalizer/finalizer.js';
import type { Informer } from '../informer/informer.js';
import { toNodeInfo, type LeaseTracker, type NodeHealth } from '../nodes/health.js';
import { addUsage, sandboxDemand, scheduleSandbox, type NodeUsage } from '../scheduling/scheduler.js';
import { readPullSecrets } from './pull-secrets.js';
import { desiredStatusPatch } from '../../protocol/status-patch.js';
import {
  agentApplyFailedStatus,
  boundStatus,
  nodeLostStatus,
  nodeUnreachableStatus,
  rescheduleStatus,
  reschedulesAfterNodeLoss,
  schedulingWindowLeft,
  unschedulableStatus,
  type StatusPatch,
} from './status.js';

/** What a reconcile asks of the queue: nothing (done), or come back after a while. */
export interface Result {
  requeueAfterMs?: number;
}

export interface ReconcilerDeps {
  client: KubeClient;
  agents: AgentClient;
  sandboxes: Informer<Sandbox>;
  nodes: Informer<SandboxNode>;
  leases: LeaseTracker;
  events: EventRecorder;
  log: Logger;
  nodeLostGraceMs: number;
  onBound?: (sbx: Sandbox) => void;
}

/**
 * Backstop retry of an unschedulable sandbox. Every SandboxNode change already
 * requeues the unbound sandboxes, so this only covers a missed event; like
 * kube-scheduler's 5 min for unschedulable pods, it is long, because with
 * thousands pending a short one becomes a constant churn of reconciles.
 */
const UNSCHEDULABLE_RETRY_MS = 5 * 60_000;
const NODE_DOWN_RETRY_MS = 5_000;

/**
 * Level-based reconcile of one Sandbox from the cache: whatever event woke
 * us, look at the whole object and drive it one step toward its goal.
 * The order matters: the finalizer goes on before anything exists on a node,
 * so a Sandbox can never be deleted with leftovers we no longer know about.
 */
export class SandboxReconciler {
  /** Bindings written but not yet seen in the cache, so capacity counts them (kube-scheduler's assume cache). */
  readonly #assumed = new Map<string, { node: string; demand: ReturnType<typeof sandboxDemand> }>();
  /** uid@generation the agent has confirmed applying since we started; cleared by resync when the agent lost it. */
  readonly #applied = new Set<string>();
  /**
   * Per uid, the resourceVersions our own writes produced and this reconcile
   * already carried on from (finalizer added → bound → applied on the node):
   * their watch events bring nothing new, so they need no reconcile of their own.
   */
  readonly #continued = new Map<string, Set<string>>();

  constructor(readonly deps: ReconcilerDeps) {}

  health(node: string): NodeHealth {
    return this.deps.leases.health(node, this.deps.nodes.get(node), this.deps.nodeLostGraceMs);
  }

  forgetApplied(uid: string): void {
    for (const k of this.#applied) if (k.startsWith(`${uid}@`)) this.#applied.delete(k);
  }

  /** Drops everything remembered about a Sandbox that is gone. */
  forget(uid: string): void {
    this.forgetApplied(uid);
    this.#continued.delete(uid);
  }

  /**
   * Whether a watched version of a Sandbox is one our own write produced and
   * the reconcile that wrote it went on from (so queueing it again would only
   * repeat that work). Each version is answered once.
   */
  isOwnContinuedWrite(sbx: Pick<Sandbox, 'metadata'>): boolean {
    const uid = sbx.metadata.uid ?? '';
    const rvs = this.#continued.get(uid);
    if (!rvs || !rvs.delete(sbx.metadata.resourceVersion ?? '')) return false;
    if (rvs.size === 0) this.#continued.delete(uid);
    return true;
  }

  /**
   * The Sandbox as a write of ours left it, to go on from within the same
   * reconcile: metadata and status from the API server's answer, the spec we
   * parsed (the write was guarded by resourceVersion, so the spec is the same;
   * parsing the whole answer again cost more CPU than the rest of the step).
   */
  #carryOn(sbx: Sandbox, written: unknown): Sandbox {
    const w = written as Pick<Sandbox, 'metadata' | 'status'>;
    // managedFields go, as from the cache: the object goes on to the agent, which has no use for them.
    const { managedFields: _fields, ...metadata } = w.metadata as Sandbox['metadata'] & { managedFields?: unknown };
    const next: Sandbox = { ...sbx, metadata, ...(w.status ? { status: w.status } : {}) };
    const uid = next.metadata.uid ?? '';
    const rvs = this.#continued.get(uid) ?? new Set<string>();
    if (rvs.size > 8) rvs.clear(); // versions whose events never came (a relist skipped them) are not kept forever
    rvs.add(next.metadata.resourceVersion ?? '');
    this.#continued.set(uid, rvs);
    return next;
  }

  async reconcile(key: string): Promise<Result> {
    const cached = this.deps.sandboxes.get(key);
    if (!cached) return {};
    let sbx = Sandbox.parse(cached);
    const uid = sbx.metadata.uid ?? '';
    if (sbx.status?.nodeName) this.#assumed.delete(uid);
    const log = this.deps.log.child({ sandbox: key, uid });

    if (sbx.metadata.deletionTimestamp) return this.#finalize(sbx, key, log);

    const finalizers = withFinalizer(sbx);
    if (finalizers) {
      // Go on from what the API server answered instead of waiting for the update to come back
      // through the informer: one reconcile takes a new sandbox from created to applied on its node.
      sbx = this.#carryOn(sbx, await writeFinalizers(this.deps.client, paths.sandbox(...nsName(key)), sbx, finalizers));
    }

    const node = sbx.status?.nodeName ?? this.#assumed.get(uid)?.node;
    if (!node) return this.#schedule(sbx, key, log);
    return this.#converge(sbx, node, key, log);
  }

  async #schedule(sbx: Sandbox, key: string, log: Logger): Promise<Result> {
    const usage = this.#usage();
    const nodes = this.deps.nodes.list().map((n) => toNodeInfo(n, this.health(n.metadata.name ?? '')));
    const choice = scheduleSandbox(sbx.spec, nodes, usage);
    if ('reason' in choice) {
      const patch = unschedulableStatus(sbx, choice.reason, choice.message);
      if (patch) {
        await this.#writeStatus(key, sbx, patch);
        this.deps.events.record(sbxRef(sbx), 'Warning', 'FailedScheduling', choice.message, 'Scheduling');
        log.info({ reason: choice.reason, why: choice.message }, 'Sandbox is unschedulable');
      }
      // Come back when the scheduling window closes, to say Stalled instead of Reconciling.
      const left = schedulingWindowLeft(sbx);
      return { requeueAfterMs: left > 0 ? left + 250 : UNSCHEDULABLE_RETRY_MS };
    }
    const hostIP = this.deps.nodes.get(choice.node)?.status?.hostIP;
    const bound = this.#carryOn(sbx, await this.#writeStatus(key, sbx, boundStatus(sbx, choice.node, hostIP)));
    this.#assumed.set(sbx.metadata.uid ?? '', { node: choice.node, demand: sandboxDemand(sbx.spec) });
    this.deps.events.record(sbxRef(bound), 'Normal', 'Scheduled', `Bound to node ${choice.node}`, 'Binding');
    this.deps.onBound?.(bound);
    log.debug({ node: choice.node }, 'Bound sandbox to node'); // the Scheduled Event tells users; a log line per sandbox cost more CPU than the binding's bookkeeping
    // The bound object, just as the API server holds it, goes to the agent: its first status
    // write can use it instead of reading the Sandbox first.
    return this.#converge(bound, choice.node, key, log);
  }

  async #converge(sbx: Sandbox, node: string, key: string, log: Logger): Promise<Result> {
    const health = this.health(node);
    if (health === 'Lost') {
      if (reschedulesAfterNodeLoss(sbx) && sbx.status?.nodeName === node) {
        await this.#writeStatus(key, sbx, rescheduleStatus(sbx, node));
        this.forgetApplied(sbx.metadata.uid ?? '');
        this.deps.events.record(
          sbxRef(sbx),
          'Warning',
          'NodeLost',
          `Node ${node} was lost; rescheduling the sandbox onto another node`,
          'NodeLifecycle',
        );
        log.warn({ node }, 'Unbound the sandbox of a lost node to run it elsewhere');
        return {}; // the unbound object comes back through the informer and is scheduled from there
      }
      const patch = nodeLostStatus(sbx, node, Math.round(this.deps.nodeLostGraceMs / 1000));
      if (patch) {
        await this.#writeStatus(key, sbx, patch);
        this.deps.events.record(sbxRef(sbx), 'Warning', 'NodeLost', patch.message ?? '', 'NodeLifecycle');
        log.warn({ node }, 'Marked sandbox Failed: its node is lost');
      }
      return {};
    }
    if (health === 'NotReady') {
      const patch = nodeUnreachableStatus(sbx, node);
      if (patch) {
        await this.#writeStatus(key, sbx, patch);
        this.deps.events.record(sbxRef(sbx), 'Warning', 'NodeNotReady', patch.message ?? '', 'NodeLifecycle');
      }
      return { requeueAfterMs: NODE_DOWN_RETRY_MS };
    }
    if (sbx.status?.phase === 'Failed' && sbx.status.reason === 'NodeLost') return {}; // terminal: a lost sandbox is not revived
    const applied = `${sbx.metadata.uid}@${sbx.metadata.generation}`;
    // After an outage we marked the sandbox Unknown; the agent may have reported before we saw its node
    // come back, so ask it again and write what it says instead of waiting for its next periodic report.
    const stale = sbx.status?.reason === 'NodeUnreachable';
    if (!stale && this.#applied.has(applied) && sbx.status?.observedGeneration === sbx.metadata.generation) return {};
    const endpoint = this.#endpoint(node, sbx);
    const pullSecrets = await readPullSecrets(this.deps.client, sbx);
    const obs = await this.deps.agents.apply(node, endpoint, sbx, pullSecrets).catch(async (err: unknown) => {
      await this.#reportApplyFailure(key, sbx, node, err);
      throw stepError(err, key, 'apply on node', `check the agent on ${node} (its SandboxNode conditions and logs)`);
    });
    if (stale) {
      const patch = desiredStatusPatch(sbx, obs, node);
      if (patch) await this.#writeStatus(key, sbx, patch as StatusPatch);
      log.info({ node }, 'Node is back; refreshed the sandbox status from its agent');
    }
    this.forgetApplied(sbx.metadata.uid ?? '');
    this.#applied.add(applied);
    log.debug({ node, generation: sbx.metadata.generation }, 'Agent applied the sandbox');
    return {};
  }

  /**
   * Says in the Sandbox (a condition and a Warning Event), not only in our
   * log, that its agent did not take it; the thrown error requeues it with
   * back-off. A failure to write this is left to that retry.
   */
  async #reportApplyFailure(key: string, sbx: Sandbox, node: string, err: unknown): Promise<void> {
    const agentReason = err instanceof AgentError ? err.reason : 'Unreachable';
    const patch = agentApplyFailedStatus(sbx, node, agentReason, (err as Error).message);
    if (!patch) return;
    await this.#writeStatus(key, sbx, patch).catch(() => undefined);
    this.deps.events.record(
      sbxRef(sbx),
      'Warning',
      'FailedApply',
      patch.conditions?.find((c) => c.type === 'Reconciling')?.message ?? (err as Error).message,
      'Applying',
    );
  }

  async #finalize(sbx: Sandbox, key: string, log: Logger): Promise<Result> {
    this.#assumed.delete(sbx.metadata.uid ?? '');
    if (!hasFinalizer(sbx)) return {};
    const node = sbx.status?.nodeName;
    if (node) {
      const health = this.health(node);
      const gone = !this.deps.nodes.get(node);
      if (!gone && health === 'NotReady') {
        log.info({ node }, 'Deletion waits for the node to come back or to be declared lost');
        return { requeueAfterMs: NODE_DOWN_RETRY_MS };
      }
      if (!gone && health === 'Ready') {
        await this.deps.agents
          .remove(node, this.#endpoint(node, sbx), sbx.metadata.uid ?? '', sbx.spec.terminationGracePeriodSeconds)
          .catch((err: unknown) => {
            throw stepError(
              err,
              key,
              'delete on node',
              `the finalizer stays until the agent on ${node} confirms; check that agent`,
            );
          });
        this.forgetApplied(sbx.metadata.uid ?? '');
      } else {
        log.warn({ node, gone }, 'Releasing a sandbox of a lost node without the agent confirming');
      }
    }
    const finalizers = withoutFinalizer(sbx);
    if (finalizers) await writeFinalizers(this.deps.client, paths.sandbox(...nsName(key)), sbx, finalizers);
    this.deps.events.record(
      sbxRef(sbx),
      'Normal',
      'Deleted',
      node ? `Removed from node ${node}` : 'Removed (never bound to a node)',
      'Finalizing',
    );
    return {};
  }

  #endpoint(node: string, sbx: Sandbox): string {
    const endpoint = this.deps.nodes.get(node)?.status?.endpoint;
    if (!endpoint) {
      throw new SandpitError({
        step: 'find agent',
        sandbox: nsName(keyOfSandbox(sbx)).join('/'),
        message: `SandboxNode ${node} has no status.endpoint`,
        hint: 'the agent has not registered yet',
      });
    }
    return endpoint;
  }

  /** Capacity in use per node: every non-terminal sandbox bound or assumed there. */
  #usage(): Map<string, NodeUsage> {
    const usage = new Map<string, NodeUsage>();
    const seen = new Set<string>();
    for (const s of this.deps.sandboxes.list()) {
      const uid = s.metadata.uid ?? '';
      seen.add(uid);
      const node = s.status?.nodeName ?? this.#assumed.get(uid)?.node;
      if (!node || s.status?.phase === 'Succeeded' || s.status?.phase === 'Failed') continue;
      addUsage(usage, node, sandboxDemand(s.spec));
    }
    for (const uid of this.#assumed.keys()) if (!seen.has(uid)) this.#assumed.delete(uid);
    return usage;
  }

  /** Merge-patches /status guarded by resourceVersion; a conflict means the cache was stale and the key is retried. */
  async #writeStatus(key: string, sbx: Sandbox, patch: StatusPatch): Promise<unknown> {
    try {
      return await this.deps.client.patch(paths.sandboxStatus(...nsName(key)), {
        metadata: { resourceVersion: sbx.metadata.resourceVersion },
        status: patch,
      });
    } catch (err) {
      if (isConflict(err) || isNotFound(err)) throw err;
      throw stepError(err, key, 'write status', 'check the API server and the controller RBAC');
    }
  }
}

const nsName = (key: string): [string, string] => {
  const { namespace, name } = splitKey(key);
  return [namespace, name];
};
const keyOfSandbox = (s: Sandbox) => `${s.metadata.namespace}/${s.metadata.name}`;
const sbxRef = (s: Sandbox) => ({ apiVersion: s.apiVersion, kind: s.kind, metadata: s.metadata });

function stepError(err: unknown, sandbox: string, step: string, hint: string): SandpitError {
  const e = err as Error;
  return new SandpitError({
    step,
    sandbox,
    message: e.message,
    hint,
    code: err instanceof AgentError ? err.reason : undefined,
    cause: err,
  });
}
