import type { Condition } from '../../crds/common.js';
import type { SandboxStatus } from '../../crds/sandbox.js';

type Observed = Omit<SandboxStatus, 'nodeName' | 'observedGeneration' | 'conditions'>;

/**
 * The Sandbox conditions that follow from what the runtime observed. Pure.
 * kstatus reads them: Ready is always present; Reconciling exists only while
 * the sandbox is being built and Stalled only when it failed, as kstatus
 * wants abnormal-true conditions absent when false. lastTransitionTime is
 * filled by setCondition when merged into the object.
 */
export function deriveConditions(s: Observed, generation: number, now = new Date().toISOString()): Condition[] {
  const c = (type: string, status: Condition['status'], reason: string, message: string): Condition => ({
    type,
    status,
    reason,
    message,
    observedGeneration: generation,
    lastTransitionTime: now,
  });
  const containers = s.containerStatuses ?? [];
  const waiting = containers.filter((x) => x.state?.waiting);
  const pulling = waiting.find((x) => /image|pull/i.test(x.state?.waiting?.reason ?? ''));
  const imagesReady = containers.length > 0 && containers.every((x) => Boolean(x.imageID));
  const built = s.phase !== undefined && s.phase !== 'Pending';
  const notReady = containers.filter((x) => !x.ready).map((x) => x.name);
  const out: Condition[] = [
    imagesReady
      ? c('ImagesReady', 'True', 'Pulled', 'Every container image is present on the node')
      : c('ImagesReady', 'False', pulling?.state?.waiting?.reason ?? 'Pulling', pulling?.state?.waiting?.message ?? 'Images are being prepared'),
    // Reasons as node-agent/network/status.ts names them (NetworkReason).
    built
      ? s.sandboxIP
        ? c('NetworkReady', 'True', 'NetworkConfigured', `Sandbox address ${s.sandboxIP}`)
        : c('NetworkReady', 'True', 'LoopbackOnly', 'Network mode None: loopback only')
      : c('NetworkReady', 'False', 'Configuring', 'The sandbox network is being set up'),
  ];
  switch (s.phase) {
    case 'Running':
      out.push(
        notReady.length
          ? c('Ready', 'False', 'ContainersNotReady', `Containers not running: ${notReady.join(', ')}`)
          : c('Ready', 'True', 'Running', 'Every container is running'),
      );
      break;
    case 'Paused':
      out.push(c('Ready', 'False', 'Paused', 'The sandbox is frozen (spec.paused)'));
      break;
    case 'Succeeded':
      out.push(c('Ready', 'False', 'Completed', 'Every container exited successfully'));
      break;
    case 'Failed':
      out.push(c('Ready', 'False', s.reason ?? 'Failed', s.message ?? 'The sandbox failed'));
      out.push(c('Stalled', 'True', s.reason ?? 'Failed', s.message ?? 'The sandbox failed and will not be retried'));
      break;
    default:
      out.push(c('Ready', 'False', 'Creating', s.message ?? 'The sandbox is being created'));
      out.push(c('Reconciling', 'True', 'Creating', 'The agent is creating the sandbox'));
  }
  return out;
}
