import type { Condition } from '../../crds/common.js';
import type { SandboxSpec } from '../../crds/sandbox.js';
import { SandpitError } from '../../lib/errors.js';
import type { SandboxObservation } from '../contracts.js';
import { ImageError } from '../images/errors.js';
import { NetworkError } from '../network/status.js';
import { RuntimeError } from '../runtime/errors.js';

/*
 * A create that failed, as status: what kubelet writes for a Pod whose
 * container cannot be created (the container waiting with ErrImagePull,
 * CreateContainerConfigError, ...; the others ContainerCreating), with the
 * conditions kstatus reads (status contract in the repo README). Pure: the
 * error in, the status out; RuntimeService decides when to retry.
 */

export interface CreateFailure {
  /** The container waiting reason, or the sandbox-level one (a NetworkReady reason, FailedCreateSandbox). */
  reason: string;
  /** The failing container; absent for a failure of the sandbox itself (cgroups, network, PID 1). */
  container?: string;
  /** The agent's message, hint included. */
  message: string;
  /** Whether a later attempt may succeed without a new spec (registry back, port freed): retried with back-off. */
  retryable: boolean;
  /** An image failure: ImagesReady=False with this reason. */
  image: boolean;
  /** A network failure: NetworkReady=False with this reason. */
  network: boolean;
}

const IMAGE_TERMINAL = new Set(['InvalidImageName', 'ErrImageNeverPull']);

/**
 * The failure an error from the runtime's create stands for. The runtime
 * raises a RuntimeError naming the container and stage it happened in; an ImageError
 * or NetworkError carries its own reason. Every pull failure other than a bad
 * name or policy Never is retried, as kubelet does (a tag may be pushed, a
 * registry come back, a secret appear); a container configuration the spec or
 * image makes impossible is not, until the spec changes.
 */
export function classifyCreateFailure(err: unknown): CreateFailure {
  const message = err instanceof Error ? err.message : String(err);
  const own = err instanceof SandpitError ? err.reason : undefined;
  const container = err instanceof RuntimeError ? err.container : undefined;
  const stage = err instanceof RuntimeError ? err.createStage : undefined;
  const at = container ? { container } : {};
  if (stage === 'image' || err instanceof ImageError) {
    const reason =
      own && IMAGE_TERMINAL.has(own) ? own : own === 'ImagePullBackOff' ? 'ImagePullBackOff' : 'ErrImagePull';
    return { reason, ...at, message, retryable: !IMAGE_TERMINAL.has(reason), image: true, network: false };
  }
  if (err instanceof NetworkError && own)
    return { reason: own, message, retryable: own !== 'InvalidNetworkSpec', image: false, network: true };
  if (own === 'CreateContainerConfigError' || stage === 'config')
    return { reason: 'CreateContainerConfigError', ...at, message, retryable: false, image: false, network: false };
  if (stage === 'start')
    return {
      reason: own === 'CreateContainerError' ? own : 'RunContainerError',
      ...at,
      message,
      retryable: false,
      image: false,
      network: false,
    };
  // The sandbox itself (cgroups, mounts, PID 1, a user-namespace block): node trouble a later attempt may not meet.
  return { reason: own ?? 'FailedCreateSandbox', message, retryable: true, image: false, network: false };
}

/** kubelet's image back-off: 10 s doubling to 5 min, by the number of failed attempts so far (1-based). */
export function retryDelayMs(failures: number, initialMs = 10_000, maxMs = 300_000): number {
  return Math.min(maxMs, initialMs * 2 ** Math.max(0, failures - 1));
}

/**
 * The observation of a sandbox whose create failed (nothing of it is left on
 * the node). `backingOff`: the retry is waiting, so a pull failure shows as
 * ImagePullBackOff, as kubelet shows it between attempts.
 */
export function failureObservation(
  ref: SandboxObservation['ref'],
  spec: Pick<SandboxSpec, 'containers'>,
  generation: number,
  f: CreateFailure,
  opts: { backingOff?: boolean; now?: string } = {},
): SandboxObservation {
  const now = opts.now ?? new Date().toISOString();
  const reason = opts.backingOff && f.reason === 'ErrImagePull' ? 'ImagePullBackOff' : f.reason;
  const failing = f.container ?? (f.image ? spec.containers[0]?.name : undefined);
  const image = spec.containers.find((c) => c.name === failing)?.image;
  const message =
    reason === 'ImagePullBackOff' && f.reason === 'ErrImagePull'
      ? `Back-off pulling image ${JSON.stringify(image ?? '')}: ${f.message}`
      : f.message;
  const c = (type: string, status: Condition['status'], why: string, text: string): Condition => ({
    type,
    status,
    reason: why,
    message: text,
    observedGeneration: generation,
    lastTransitionTime: now,
  });
  const conditions: Condition[] = [];
  if (f.image) conditions.push(c('ImagesReady', 'False', reason, message));
  if (f.network) conditions.push(c('NetworkReady', 'False', reason, message));
  conditions.push(c('Ready', 'False', reason, message));
  conditions.push(
    f.retryable
      ? c('Reconciling', 'True', reason, `The agent retries creating the sandbox: ${message}`)
      : c('Stalled', 'True', reason, `Nothing changes until the spec does: ${message}`),
  );
  return {
    ref,
    generation,
    status: {
      phase: 'Pending',
      reason,
      message: failing ? `container ${failing}: ${message}` : message,
      containerStatuses: spec.containers.map((x) => ({
        name: x.name,
        image: x.image,
        imageID: '',
        ready: false,
        restartCount: 0,
        state: { waiting: x.name === failing ? { reason, message } : { reason: 'ContainerCreating' } },
      })),
      conditions,
    },
  };
}

/** The observation of a sandbox the agent accepted and is about to create (nothing built yet). */
export function creatingObservation(
  ref: SandboxObservation['ref'],
  spec: Pick<SandboxSpec, 'containers'>,
  generation: number,
  now = new Date().toISOString(),
): SandboxObservation {
  const c = (type: string, reason: string, message: string): Condition => ({
    type,
    status: type === 'Reconciling' ? 'True' : 'False',
    reason,
    message,
    observedGeneration: generation,
    lastTransitionTime: now,
  });
  return {
    ref,
    generation,
    status: {
      phase: 'Pending',
      containerStatuses: spec.containers.map((x) => ({
        name: x.name,
        image: x.image,
        imageID: '',
        ready: false,
        restartCount: 0,
        state: { waiting: { reason: 'ContainerCreating' } },
      })),
      conditions: [
        c('Ready', 'Creating', 'The sandbox is being created'),
        c('Reconciling', 'Creating', 'The agent is creating the sandbox'),
      ],
    },
  };
}
