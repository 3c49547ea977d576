import type { Condition } from '../../crds/common.js';
import type { SandboxStatus } from '../../crds/sandbox.js';
import { IMAGES_READY_REASONS } from '../images/errors.js';

type Observed = Omit<SandboxStatus, 'nodeName' | 'observedGeneration' | 'conditions'>;

/** Waiting reasons (kubelet's words) that no retry fixes: the spec or the node must change. */
const STALLED_WAITING = new Set([
  'InvalidImageName',
  'ErrImageNeverPull',
  'CreateContainerConfigError',
  'CreateContainerError',
]);

/**
 * The Sandbox conditions that follow from what the runtime observed. Pure.
 * kstatus reads them: Ready is present except when Paused or Succeeded (kstatus
 * takes Ready=False for InProgress, and neither will progress); Reconciling exists only while
 * the sandbox is being built or a container is not running yet, and Stalled
 * only when nothing changes without the user (phase Failed, CrashLoopBackOff),
 * as kstatus wants abnormal-true conditions absent when false. The verdicts
 * match what kstatus says of the equivalent Pod, except that a Failed sandbox
 * stays Failed (kstatus calls a failed Pod Current). lastTransitionTime is
 * filled by setCondition when merged into the object.
 */
/** The waiting reasons that are about a container's image: the ImagesReady condition repeats them. */
const IMAGE_REASONS: ReadonlySet<string> = new Set(IMAGES_READY_REASONS);

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
  const pulling = waiting.find((x) => IMAGE_REASONS.has(x.state?.waiting?.reason ?? ''));
  const imagesReady = containers.length > 0 && containers.every((x) => Boolean(x.imageID));
  const built = s.phase !== undefined && s.phase !== 'Pending';
  const notReady = containers.filter((x) => !x.ready).map((x) => x.name);
  const out: Condition[] = [
    imagesReady
      ? c('ImagesReady', 'True', 'Pulled', 'Every container image is present on the node')
      : c(
          'ImagesReady',
          'False',
          pulling?.state?.waiting?.reason ?? 'Pulling',
          pulling?.state?.waiting?.message ?? 'Images are being prepared',
        ),
    // Reasons as node-agent/network/status.ts names them (NetworkReason).
    built
      ? s.sandboxIP
        ? c('NetworkReady', 'True', 'NetworkConfigured', `Sandbox address ${s.sandboxIP}`)
        : c('NetworkReady', 'True', 'LoopbackOnly', 'Network mode None: loopback only')
      : c('NetworkReady', 'False', 'Configuring', 'The sandbox network is being set up'),
  ];
  switch (s.phase) {
    case 'Running': {
      if (!notReady.length) {
        out.push(c('Ready', 'True', 'Running', 'Every container is running'));
        break;
      }
      out.push(c('Ready', 'False', 'ContainersNotReady', `Containers not running: ${notReady.join(', ')}`));
      // As kstatus judges a Pod: crash-looping containers are Failed (nothing changes
      // without the user), any other not-ready container is still in progress.
      const looping = waiting.filter((x) => x.state?.waiting?.reason === 'CrashLoopBackOff');
      if (looping.length) {
        const what = looping.map(
          (x) =>
            `${x.name} (restarted ${x.restartCount} times${x.lastState?.terminated ? `, last exit code ${x.lastState.terminated.exitCode}` : ''})`,
        );
        out.push(
          c(
            'Stalled',
            'True',
            'CrashLoopBackOff',
            `Containers keep exiting and are restarted with back-off: ${what.join(', ')}. Read their logs (kubectl sandpit logs --previous) and fix the command or image`,
          ),
        );
      } else {
        out.push(
          c('Reconciling', 'True', 'ContainersNotReady', `Waiting for containers to run: ${notReady.join(', ')}`),
        );
      }
      break;
    }
    case 'Paused':
    case 'Succeeded':
      // No Ready condition at all: kstatus reads Ready=False as InProgress, and a
      // paused or completed sandbox is as current as a completed Pod. The phase
      // says which; `kubectl wait --for=condition=Ready` keeps waiting, as for a Pod.
      break;
    case 'Failed':
      out.push(c('Ready', 'False', s.reason ?? 'Failed', s.message ?? 'The sandbox failed'));
      out.push(c('Stalled', 'True', s.reason ?? 'Failed', s.message ?? 'The sandbox failed and will not be retried'));
      break;
    default: {
      // Waiting on something only the user can change (the contract in BRIEF/README:
      // Stalled), or on something a retry may fix (a registry down: Reconciling).
      const stuck = waiting.find((x) => STALLED_WAITING.has(x.state?.waiting?.reason ?? ''));
      const why = stuck ?? pulling;
      const reason = why?.state?.waiting?.reason ?? 'Creating';
      const message = why?.state?.waiting?.message
        ? `Container ${why.name}: ${why.state.waiting.message}`
        : (s.message ?? 'The sandbox is being created');
      out.push(c('Ready', 'False', reason, message));
      out.push(
        stuck
          ? c('Stalled', 'True', reason, message)
          : c('Reconciling', 'True', why ? reason : 'Creating', why ? message : 'The agent is creating the sandbox'),
      );
    }
  }
  return out;
}
