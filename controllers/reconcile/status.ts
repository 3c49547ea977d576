import type { Condition } from '../../crds/common.js';
import type { Sandbox, SandboxStatus } from '../../crds/sandbox.js';
import { ConditionType as T, findCondition, mergeConditions, type ConditionInput } from '../../lib/kube/conditions.js';

/*
 * The status the controller writes, as pure functions: each returns the
 * fields to patch, or undefined when the object already says so (no write).
 * The agent owns everything else in status once a sandbox runs on its node.
 */

export type StatusPatch = Partial<SandboxStatus>;

function build(
  sbx: Sandbox,
  fields: StatusPatch,
  conditions: ConditionInput[],
  remove: string[] = [],
): StatusPatch | undefined {
  const merged = mergeConditions(sbx.status?.conditions, conditions);
  let changed = merged.changed;
  const list: Condition[] = merged.list.filter((c) => !remove.includes(c.type));
  if (list.length !== merged.list.length) changed = true;
  const cur = (sbx.status ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(fields)) if (JSON.stringify(cur[k]) !== JSON.stringify(v)) changed = true;
  return changed ? { ...fields, conditions: list } : undefined;
}

/** How long a sandbox may wait for a node before kstatus should call it Failed: kstatus's ScheduleWindow for Pods. */
const UNSCHEDULABLE_WINDOW_MS = 15_000;

/** Milliseconds left of the scheduling window of a sandbox, 0 once it has passed. */
export function schedulingWindowLeft(sbx: Sandbox, now = Date.now()): number {
  const created = Date.parse(sbx.metadata.creationTimestamp ?? '');
  return Number.isNaN(created) ? 0 : Math.max(0, created + UNSCHEDULABLE_WINDOW_MS - now);
}

/**
 * No node takes the sandbox yet: Scheduled=False with the scheduler's reason.
 * Within the window after creation it is Reconciling (nodes may be joining,
 * others may free room); past it Stalled, as kstatus judges an unschedulable
 * Pod. Either way the controller keeps trying, and binds it when a node fits.
 */
export function unschedulableStatus(
  sbx: Sandbox,
  reason: string,
  message: string,
  now = Date.now(),
): StatusPatch | undefined {
  const g = sbx.metadata.generation;
  const waiting = schedulingWindowLeft(sbx, now) > 0;
  const abnormal: ConditionInput = waiting
    ? {
        type: T.Reconciling,
        status: 'True',
        reason: 'Scheduling',
        message: 'Waiting for a node that can take the sandbox',
        observedGeneration: g,
      }
    : {
        type: T.Stalled,
        status: 'True',
        reason: 'Unschedulable',
        message: `No node can take the sandbox: ${message}. Change nodeSelector or resources, or add a node that fits`,
        observedGeneration: g,
      };
  return build(
    sbx,
    { phase: 'Pending', observedGeneration: g, reason, message },
    [
      { type: T.Scheduled, status: 'False', reason, message, observedGeneration: g },
      { type: T.Ready, status: 'False', reason: 'Unschedulable', message, observedGeneration: g },
      abnormal,
    ],
    [waiting ? T.Stalled : T.Reconciling],
  );
}

/** The binding: status.nodeName is set once and never changes (CEL enforces it). */
export function boundStatus(
  sbx: Sandbox,
  node: string,
  hostIP: string | undefined,
  now = new Date().toISOString(),
): StatusPatch {
  const g = sbx.metadata.generation;
  const message = `Bound to node ${node}`;
  return (
    build(
      sbx,
      {
        phase: 'Pending',
        observedGeneration: g,
        nodeName: node,
        ...(hostIP ? { hostIP } : {}),
        startTime: sbx.status?.startTime ?? now,
        reason: 'Scheduled',
        message,
      },
      [
        { type: T.Scheduled, status: 'True', reason: 'Scheduled', message, observedGeneration: g },
        {
          type: T.Ready,
          status: 'False',
          reason: 'Creating',
          message: `Waiting for the agent on ${node} to create the sandbox`,
          observedGeneration: g,
        },
        {
          type: T.Reconciling,
          status: 'True',
          reason: 'Creating',
          message: `The agent on ${node} is creating the sandbox`,
          observedGeneration: g,
        },
      ],
    ) ?? { nodeName: node }
  );
}

/**
 * The agent did not take the sandbox (unreachable, or it answered an error):
 * Reconciling=True with why, the controller retries with back-off; while
 * nothing runs yet, Ready=False and the sandbox reason/message say so too.
 * The agent's next status write replaces it.
 */
export function agentApplyFailedStatus(
  sbx: Sandbox,
  node: string,
  agentReason: string,
  detail: string,
): StatusPatch | undefined {
  if (terminal(sbx)) return undefined;
  const g = sbx.metadata.generation;
  const reason = agentReason === 'Unreachable' ? 'AgentUnreachable' : 'AgentError';
  const message = `The agent on ${node} did not take the sandbox; the controller retries: ${detail}`.slice(0, 1024);
  const creating = !sbx.status?.phase || sbx.status.phase === 'Pending';
  return build(sbx, creating ? { reason, message } : {}, [
    ...(creating ? [{ type: T.Ready, status: 'False' as const, reason, message, observedGeneration: g }] : []),
    { type: T.Reconciling, status: 'True', reason, message, observedGeneration: g },
  ]);
}

const terminal = (sbx: Sandbox) => sbx.status?.phase === 'Succeeded' || sbx.status?.phase === 'Failed';

/** The node stopped heartbeating: Ready=Unknown, phase Unknown, like a kubelet gone silent. */
export function nodeUnreachableStatus(sbx: Sandbox, node: string): StatusPatch | undefined {
  if (terminal(sbx)) return undefined;
  const message = `Node ${node} stopped renewing its lease; the sandbox state is unknown`;
  const ready = findCondition(sbx.status?.conditions, T.Ready);
  if (sbx.status?.phase === 'Unknown' && ready?.status === 'Unknown') return undefined;
  return build(sbx, { phase: 'Unknown', reason: 'NodeUnreachable', message }, [
    {
      type: T.Ready,
      status: 'Unknown',
      reason: 'NodeUnreachable',
      message,
      observedGeneration: ready?.observedGeneration ?? sbx.metadata.generation,
    },
  ]);
}

/** The node stayed silent past the grace: the sandbox is Failed with reason NodeLost (terminal: Stalled for kstatus). */
export function nodeLostStatus(sbx: Sandbox, node: string, graceSeconds: number): StatusPatch | undefined {
  if (terminal(sbx)) return undefined;
  const message = `Node ${node} has not renewed its lease for longer than the ${graceSeconds}s grace; the sandbox is considered lost. Delete it and create it again to run it elsewhere`;
  const g = sbx.metadata.generation;
  return build(
    sbx,
    { phase: 'Failed', reason: 'NodeLost', message, observedGeneration: g },
    [
      { type: T.Ready, status: 'False', reason: 'NodeLost', message, observedGeneration: g },
      { type: T.Stalled, status: 'True', reason: 'NodeLost', message, observedGeneration: g },
    ],
    [T.Reconciling],
  );
}

/**
 * Whether a sandbox of a lost node is run again elsewhere: its restartPolicy
 * asks for restarts (Always, or OnFailure: losing the node is a failure) and
 * spec.nodeName does not pin it to the lost node.
 */
export function reschedulesAfterNodeLoss(sbx: Sandbox): boolean {
  return (sbx.spec.restartPolicy ?? 'Always') !== 'Never' && !sbx.spec.nodeName && !terminal(sbx);
}

/**
 * Unbinds a sandbox of a lost node so the scheduler places it again: phase
 * Pending, reason NodeLost, and everything the old node reported removed
 * (merge-patch nulls). The CRD allows clearing status.nodeName only with this
 * reason and phase; the admission policy keeps the lost node's agent from
 * writing to it ever again (it is no longer bound there), and the agent resync
 * deletes the old copy if that node comes back.
 */
export function rescheduleStatus(sbx: Sandbox, node: string): StatusPatch {
  const g = sbx.metadata.generation;
  const message = `Node ${node} was lost; the sandbox is created again on another node (restartPolicy ${sbx.spec.restartPolicy ?? 'Always'})`;
  const merged = mergeConditions(sbx.status?.conditions, [
    { type: T.Scheduled, status: 'False', reason: 'NodeLost', message, observedGeneration: g },
    { type: T.Ready, status: 'False', reason: 'NodeLost', message, observedGeneration: g },
    { type: T.Reconciling, status: 'True', reason: 'Rescheduling', message, observedGeneration: g },
  ]);
  const gone = {
    nodeName: null,
    hostIP: null,
    sandboxIP: null,
    containerStatuses: null,
    publishedPorts: null,
    startTime: null,
    usage: null,
  };
  return {
    ...(gone as unknown as StatusPatch),
    phase: 'Pending',
    reason: 'NodeLost',
    message,
    observedGeneration: g,
    conditions: merged.list.filter((c) => c.type !== T.Stalled),
  };
}
