import type { Sandbox } from '../../crds/sandbox.js';
import { paths } from '../../lib/kube/resources.js';
import { hasFinalizer, withoutFinalizer, writeFinalizers } from '../finalizer/finalizer.js';
import type { NodeHealth } from '../nodes/health.js';
import { agentEndpoint, NODE_DOWN_RETRY_MS, nsName, sbxRef, stepError, type Result, type Step } from './step.js';

/**
 * What a deletion does before the finalizer goes: nothing to confirm for a
 * sandbox never bound; the agent's DELETE when its node is Ready; wait while
 * the node is NotReady (it may come back with the sandbox running); release
 * without the agent once the node is lost or its SandboxNode gone.
 */
export type DeletionPlan = 'release' | 'delete-on-node' | 'wait-for-node' | 'release-unconfirmed';

export function deletionPlan(
  node: string | undefined,
  health: NodeHealth | undefined,
  nodeGone: boolean,
): DeletionPlan {
  if (!node) return 'release';
  if (!nodeGone && health === 'NotReady') return 'wait-for-node';
  if (!nodeGone && health === 'Ready') return 'delete-on-node';
  return 'release-unconfirmed';
}

/**
 * The deletion of a Sandbox that carries our finalizer: its node's agent
 * confirms nothing is left (the DELETE waits the grace period), then the
 * finalizer goes and the API server removes the object.
 */
export async function finalizeDeletion(step: Step, sbx: Sandbox): Promise<Result> {
  const { deps, key, log } = step;
  const uid = sbx.metadata.uid ?? '';
  step.assumed.forget(uid);
  if (!hasFinalizer(sbx)) return {};
  const node = sbx.status?.nodeName;
  const gone = node ? !deps.nodes.get(node) : false;
  const plan = deletionPlan(node, node ? step.health(node) : undefined, gone);
  if (plan === 'wait-for-node') {
    log.info({ node }, 'Deletion waits for the node to come back or to be declared lost');
    return { requeueAfterMs: NODE_DOWN_RETRY_MS };
  }
  if (plan === 'delete-on-node') {
    await deps.agents
      .remove(node!, agentEndpoint(step, node!), uid, sbx.spec.terminationGracePeriodSeconds)
      .catch((err: unknown) => {
        throw stepError(
          err,
          key,
          'delete on node',
          `the finalizer stays until the agent on ${node} confirms; check that agent`,
        );
      });
    step.applied.forget(uid);
  } else if (plan === 'release-unconfirmed') {
    log.warn({ node, gone }, 'Releasing a sandbox of a lost node without the agent confirming');
  }
  const finalizers = withoutFinalizer(sbx);
  if (finalizers) await writeFinalizers(deps.client, paths.sandbox(...nsName(key)), sbx, finalizers);
  deps.events.record(
    sbxRef(sbx),
    'Normal',
    'Deleted',
    node ? `Removed from node ${node}` : 'Removed (never bound to a node)',
    'Finalizing',
  );
  return {};
}
