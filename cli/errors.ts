import { SandpitError } from '../lib/errors.js';

/**
 * A failure the user should read: printed as `userMessage` (no stack, no
 * step), exit status 1. `reason` is the cluster's word when it refused
 * (NotFound, Forbidden, SandboxPaused, ...).
 */
export class CliError extends SandpitError {
  constructor(step: string, message: string, opts: { reason?: string; hint?: string; cause?: unknown } = {}) {
    super({ step, message, ...opts });
    this.name = 'CliError';
  }
}

/** A bad command line: exit status 2, with a pointer to --help. */
export class UsageError extends CliError {
  constructor(message: string) {
    super('parse arguments', message);
    this.name = 'UsageError';
  }
}

/** A refusal the cluster sent with its reason, in kubectl's words: `Error from server (Reason): message`. */
export const serverError = (step: string, reason: string, message: string): CliError =>
  new CliError(step, `Error from server (${reason}): ${message}`, { reason });

/** What the user reads of one of our errors: the sentence and its hint, without the step it failed in. */
export const userMessage = (err: SandpitError): string => `${err.detail}${err.hint ? ` (${err.hint})` : ''}`;
