import { SandpitError } from '../../lib/errors.js';

/**
 * Reasons on the ImagesReady condition, chosen so a person knows what to do:
 * fix the name, fix the pull secret, fix the tag, or wait for the registry.
 * They match the kubelet's where the kubelet has one.
 */
export const IMAGES_READY_REASONS = [
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'Unauthorized',
  'ManifestUnknown',
  'ErrImageNeverPull',
] as const;
export type ImagesReadyReason = (typeof IMAGES_READY_REASONS)[number];

/** A failure to prepare an image, carrying the condition reason it maps to. */
export class ImageError extends SandpitError {
  declare readonly reason: ImagesReadyReason;
  /** False when retrying cannot help (bad name, refused layer, digest mismatch). */
  readonly retryable: boolean;

  constructor(opts: {
    reason: ImagesReadyReason;
    step: string;
    message: string;
    sandbox?: string;
    hint?: string;
    retryable?: boolean;
    cause?: unknown;
  }) {
    super(opts);
    this.name = 'ImageError';
    this.reason = opts.reason;
    this.retryable = opts.retryable ?? true;
  }
}

/** A layer entry the applier will not write: the layer is refused as a whole. */
export class LayerRefusedError extends ImageError {
  readonly entry: string;
  constructor(entry: string, why: string) {
    super({
      reason: 'ErrImagePull',
      step: 'apply layer',
      message: `entry ${JSON.stringify(entry)} refused: ${why}`,
      hint: 'the image contains an unsafe or malformed layer; rebuild it or use another image',
      retryable: false,
    });
    this.name = 'LayerRefusedError';
    this.entry = entry;
  }
}
