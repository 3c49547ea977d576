import { ImageError, type ImagesReadyReason } from './errors.js';

/*
 * The ImagesReady condition of a sandbox, as a pure function of the outcome
 * of preparing its images, so the status writer needs no knowledge of pulls.
 */

export interface ImagesReadyCondition {
  type: 'ImagesReady';
  status: 'True' | 'False';
  reason: ImagesReadyReason | 'Pulled';
  message: string;
}

export function imagesReadyCondition(outcomes: { image: string; error?: unknown }[]): ImagesReadyCondition {
  const failed = outcomes.filter((o) => o.error !== undefined);
  if (failed.length === 0) {
    return { type: 'ImagesReady', status: 'True', reason: 'Pulled', message: `${outcomes.length} image(s) ready` };
  }
  // The first failure decides the reason; the message names every failing image.
  const first = failed[0]!.error;
  const reason: ImagesReadyReason = first instanceof ImageError ? first.reason : 'ErrImagePull';
  const message = failed
    .map((f) => `${f.image}: ${f.error instanceof Error ? f.error.message : String(f.error)}`)
    .join('; ')
    .slice(0, 1024);
  return { type: 'ImagesReady', status: 'False', reason, message };
}
