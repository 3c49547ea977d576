import type { Sandbox } from '../../crds/sandbox.js';
import { toNodeInfo } from '../nodes/health.js';
import { scheduleSandbox } from '../scheduling/scheduler.js';
import { boundStatus, schedulingWindowLeft, unschedulableStatus } from './status.js';
import { sbxRef, writeStatus, type Result, type Step } from './step.js';

/**
 * Backstop retry of an unschedulable sandbox. Every SandboxNode change already
 * requeues the unbound sandboxes, so this only covers a missed event; like
 * kube-scheduler's 5 min for unschedulable pods, it is long, because with
 * thousands pending a short one becomes a constant churn of reconciles.
 */
const UNSCHEDULABLE_RETRY_MS = 5 * 60_000;

/**
 * When to look at an unschedulable sandbox again: just after its scheduling
 * window closes (to say Stalled instead of Reconciling), else the backstop.
 */
export const unschedulableRetryMs = (windowLeftMs: number): number =>
  windowLeftMs > 0 ? windowLeftMs + 250 : UNSCHEDULABLE_RETRY_MS;

/**
 * Picks a node and binds the sandbox to it by writing `status.nodeName` once,
 * guarded by resourceVersion. Answers the bound Sandbox as the API server
 * holds it (it goes to the agent, whose first status write can start from it
 * instead of reading the Sandbox), or, when no node fits, the Result after
 * Scheduled=False has been written.
 */
export async function bindToNode(step: Step, sbx: Sandbox): Promise<{ bound: Sandbox; node: string } | Result> {
  const { deps, log } = step;
  const usage = step.assumed.usage(deps.sandboxes.list());
  const nodes = deps.nodes.list().map((n) => toNodeInfo(n, step.health(n.metadata.name ?? '')));
  const choice = scheduleSandbox(sbx.spec, nodes, usage);
  if ('reason' in choice) {
    const patch = unschedulableStatus(sbx, choice.reason, choice.message);
    if (patch) {
      await writeStatus(step, sbx, patch);
      deps.events.record(sbxRef(sbx), 'Warning', 'FailedScheduling', choice.message, 'Scheduling');
      log.info({ reason: choice.reason, why: choice.message }, 'Sandbox is unschedulable');
    }
    return { requeueAfterMs: unschedulableRetryMs(schedulingWindowLeft(sbx)) };
  }
  const hostIP = deps.nodes.get(choice.node)?.status?.hostIP;
  const bound = step.carryOn(sbx, await writeStatus(step, sbx, boundStatus(sbx, choice.node, hostIP)));
  step.assumed.assume(sbx.metadata.uid ?? '', choice.node);
  deps.events.record(sbxRef(bound), 'Normal', 'Scheduled', `Bound to node ${choice.node}`, 'Binding');
  deps.onBound?.(bound);
  log.debug({ node: choice.node }, 'Bound sandbox to node'); // the Scheduled Event tells users; a log line per sandbox cost more CPU than the binding's bookkeeping
  return { bound, node: choice.node };
}
