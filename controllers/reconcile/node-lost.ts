import type { Sandbox } from '../../crds/sandbox.js';
import type { NodeHealth } from '../nodes/health.js';
import { nodeLostStatus, nodeUnreachableStatus, rescheduleStatus, reschedulesAfterNodeLoss } from './status.js';
import { NODE_DOWN_RETRY_MS, sbxRef, writeStatus, type Result, type Step } from './step.js';

/** What a bound sandbox's reconcile does, given the health of its node. */
export type NodeAction = 'reschedule' | 'fail' | 'wait' | 'done' | 'apply';

/**
 * The decision before anything goes to the agent. A lost node's sandbox is
 * unbound to run elsewhere when its restart policy wants it running, no
 * spec.nodeName pins it and its binding is stored (status.nodeName, not only
 * assumed: there is nothing to unbind yet), else Failed;
 * a NotReady node's sandboxes wait (marked Unknown); a sandbox Failed for a
 * lost node stays so (it is not revived when the node returns).
 */
export function nodeAction(sbx: Sandbox, node: string, health: NodeHealth): NodeAction {
  if (health === 'Lost') return reschedulesAfterNodeLoss(sbx) && sbx.status?.nodeName === node ? 'reschedule' : 'fail';
  if (health === 'NotReady') return 'wait';
  if (sbx.status?.phase === 'Failed' && sbx.status.reason === 'NodeLost') return 'done';
  return 'apply';
}

/** Unbinds the sandbox of a lost node (`status.nodeName` cleared, reason NodeLost) so that it is scheduled afresh. */
export async function unbindFromLostNode(step: Step, sbx: Sandbox, node: string): Promise<Result> {
  await writeStatus(step, sbx, rescheduleStatus(sbx, node));
  step.applied.forget(sbx.metadata.uid ?? '');
  step.deps.events.record(
    sbxRef(sbx),
    'Warning',
    'NodeLost',
    `Node ${node} was lost; rescheduling the sandbox onto another node`,
    'NodeLifecycle',
  );
  step.log.warn({ node }, 'Unbound the sandbox of a lost node to run it elsewhere');
  return {}; // the unbound object comes back through the informer and is scheduled from there
}

/** Marks the sandbox of a lost node Failed/NodeLost (Stalled), once. */
export async function failOnLostNode(step: Step, sbx: Sandbox, node: string): Promise<Result> {
  const patch = nodeLostStatus(sbx, node, Math.round(step.deps.nodeLostGraceMs / 1000));
  if (patch) {
    await writeStatus(step, sbx, patch);
    step.deps.events.record(sbxRef(sbx), 'Warning', 'NodeLost', patch.message ?? '', 'NodeLifecycle');
    step.log.warn({ node }, 'Marked sandbox Failed: its node is lost');
  }
  return {};
}

/** Marks the sandbox of a silent node Unknown (once) and looks again shortly. */
export async function markNodeUnreachable(step: Step, sbx: Sandbox, node: string): Promise<Result> {
  const patch = nodeUnreachableStatus(sbx, node);
  if (patch) {
    await writeStatus(step, sbx, patch);
    step.deps.events.record(sbxRef(sbx), 'Warning', 'NodeNotReady', patch.message ?? '', 'NodeLifecycle');
  }
  return { requeueAfterMs: NODE_DOWN_RETRY_MS };
}
