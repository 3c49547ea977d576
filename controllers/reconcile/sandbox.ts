import { Sandbox } from '../../crds/sandbox.js';
import { paths } from '../../lib/kube/resources.js';
import { withFinalizer, writeFinalizers } from '../finalizer/finalizer.js';
import type { NodeHealth } from '../nodes/health.js';
import { AssumeCache } from '../scheduling/assumed.js';
import { AppliedGenerations } from './applied.js';
import { applyOnNode } from './apply.js';
import { bindToNode } from './bind.js';
import { finalizeDeletion } from './finalize.js';
import { failOnLostNode, markNodeUnreachable, nodeAction, unbindFromLostNode } from './node-lost.js';
import { OwnWrites } from './own-writes.js';
import { nsName, type ReconcilerDeps, type Result, type Step } from './step.js';

/**
 * Level-based reconcile of one Sandbox from the cache: whatever event woke
 * us, look at the whole object and drive it one step toward its goal.
 * The order matters: the finalizer goes on before anything exists on a node,
 * so a Sandbox can never be deleted with leftovers we no longer know about.
 * The steps live beside this file (bind, apply, node-lost, finalize); this
 * class holds what is remembered between reconciles and picks the step.
 */
export class SandboxReconciler {
  readonly #assumed = new AssumeCache();
  readonly #applied = new AppliedGenerations();
  readonly #ownWrites = new OwnWrites();

  constructor(readonly deps: ReconcilerDeps) {}

  health(node: string): NodeHealth {
    return this.deps.leases.health(node, this.deps.nodes.get(node), this.deps.nodeLostGraceMs);
  }

  /** The agent lost the sandbox (the resync says so): the next reconcile applies it again. */
  forgetApplied(uid: string): void {
    this.#applied.forget(uid);
  }

  /** Drops everything remembered about a Sandbox that is gone. */
  forget(uid: string): void {
    this.#applied.forget(uid);
    this.#ownWrites.forget(uid);
  }

  /** Whether a watched version is one our own write produced and a reconcile already went on from (see OwnWrites). */
  isOwnContinuedWrite(sbx: Pick<Sandbox, 'metadata'>): boolean {
    return this.#ownWrites.isContinued(sbx);
  }

  async reconcile(key: string): Promise<Result> {
    const cached = this.deps.sandboxes.get(key);
    if (!cached) return {};
    let sbx = Sandbox.parse(cached);
    const uid = sbx.metadata.uid ?? '';
    if (sbx.status?.nodeName) this.#assumed.forget(uid);
    const step: Step = {
      deps: this.deps,
      key,
      log: this.deps.log.child({ sandbox: key, uid }),
      assumed: this.#assumed,
      applied: this.#applied,
      health: (node) => this.health(node),
      carryOn: (s, written) => this.#ownWrites.carryOn(s, written),
    };

    if (sbx.metadata.deletionTimestamp) return finalizeDeletion(step, sbx);

    const finalizers = withFinalizer(sbx);
    if (finalizers) {
      // Go on from what the API server answered instead of waiting for the update to come back
      // through the informer: one reconcile takes a new sandbox from created to applied on its node.
      const written = await writeFinalizers(this.deps.client, paths.sandbox(...nsName(key)), sbx, finalizers);
      sbx = step.carryOn(sbx, written);
    }

    let node = sbx.status?.nodeName ?? this.#assumed.nodeOf(uid);
    if (!node) {
      const binding = await bindToNode(step, sbx);
      if (!('bound' in binding)) return binding;
      ({ bound: sbx, node } = binding);
    }
    return this.#converge(step, sbx, node);
  }

  async #converge(step: Step, sbx: Sandbox, node: string): Promise<Result> {
    switch (nodeAction(sbx, node, this.health(node))) {
      case 'reschedule':
        return unbindFromLostNode(step, sbx, node);
      case 'fail':
        return failOnLostNode(step, sbx, node);
      case 'wait':
        return markNodeUnreachable(step, sbx, node);
      case 'done':
        return {};
      case 'apply':
        return applyOnNode(step, sbx, node);
    }
  }
}
