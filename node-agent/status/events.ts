import type { SandboxStatus } from '../../crds/sandbox.js';

/*
 * The Events a node agent records for what its status writes change, as
 * kubelet does for a Pod: "kubectl describe sbx" and "kubectl events" then
 * tell a container's story (Started, BackOff, OOMKilled, Failed) and the
 * sandbox's end, not only the controller's part (Scheduled, NodeLost). Pure:
 * the status before and after one write in, the Events to record out.
 */

export interface StatusEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  note: string;
}

type Container = NonNullable<SandboxStatus['containerStatuses']>[number];

/** Container waiting reasons that mean the spec or the node cannot run it (kubelet records them as Failed). */
const FAILED_WAITING = new Set([
  'CreateContainerConfigError',
  'CreateContainerError',
  'ImagePullBackOff',
  'ErrImagePull',
  'InvalidImageName',
  'RunContainerError',
]);

/** NetworkReady's reason while a create is still setting the network up (status/derive.ts). */
const NETWORK_CONFIGURING = 'Configuring';

export function statusEvents(before: SandboxStatus | undefined, after: SandboxStatus): StatusEvent[] {
  const out: StatusEvent[] = [];
  const old = new Map((before?.containerStatuses ?? []).map((c) => [c.name, c]));
  for (const c of after.containerStatuses ?? []) out.push(...containerEvents(old.get(c.name), c));

  const was = before?.conditions?.find((x) => x.type === 'NetworkReady');
  const net = after.conditions?.find((x) => x.type === 'NetworkReady');
  // Configuring is every sandbox's first moment, not news: only a reason that says what failed is a Warning.
  if (
    net?.status === 'False' &&
    net.reason !== NETWORK_CONFIGURING &&
    (was?.status !== 'False' || was.reason !== net.reason)
  )
    out.push({
      type: 'Warning',
      reason: net.reason ?? 'NetworkNotReady',
      note: net.message ?? 'The sandbox network is not ready',
    });

  // A create that failed in the sandbox itself (cgroups, mounts, PID 1), as kubelet's FailedCreatePodSandBox.
  if (
    after.phase === 'Pending' &&
    after.reason === 'FailedCreateSandbox' &&
    (before?.reason !== after.reason || before.message !== after.message)
  )
    out.push({
      type: 'Warning',
      reason: 'FailedCreateSandbox',
      note: after.message ?? 'The sandbox could not be created',
    });

  if (after.phase !== before?.phase) {
    if (after.phase === 'Succeeded')
      out.push({ type: 'Normal', reason: 'Completed', note: 'Every container ran to completion' });
    if (after.phase === 'Failed')
      out.push({ type: 'Warning', reason: after.reason ?? 'Failed', note: after.message ?? 'The sandbox failed' });
  }
  return out;
}

function containerEvents(before: Container | undefined, after: Container): StatusEvent[] {
  const out: StatusEvent[] = [];
  const started = after.state?.running?.startedAt;
  if (started && started !== before?.state?.running?.startedAt)
    out.push({
      type: 'Normal',
      reason: 'Started',
      note:
        after.restartCount > 0
          ? `Started container ${after.name} (restart ${after.restartCount})`
          : `Started container ${after.name}`,
    });

  const ended =
    after.state?.terminated ??
    (after.restartCount > (before?.restartCount ?? 0) ? after.lastState?.terminated : undefined);
  const endedBefore = before?.state?.terminated ?? before?.lastState?.terminated;
  if (ended?.reason === 'OOMKilled' && ended.finishedAt !== endedBefore?.finishedAt)
    out.push({
      type: 'Warning',
      reason: 'OOMKilled',
      note: `Container ${after.name} was killed for using more memory than its limit`,
    });

  const waiting = after.state?.waiting;
  if (waiting?.reason && waiting.reason !== before?.state?.waiting?.reason) {
    if (waiting.reason === 'CrashLoopBackOff')
      out.push({ type: 'Warning', reason: 'BackOff', note: `Back-off restarting failed container ${after.name}` });
    else if (FAILED_WAITING.has(waiting.reason))
      out.push({
        type: 'Warning',
        reason: 'Failed',
        note: `${waiting.reason}: ${waiting.message ?? `container ${after.name} cannot start`}`,
      });
  }
  return out;
}
