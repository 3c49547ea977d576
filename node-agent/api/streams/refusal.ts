import { SandpitError } from '../../../lib/errors.js';

/** A stream request refused before the upgrade, answered as an HTTP error with a reason. */
export class StreamRefusal extends SandpitError {
  declare readonly reason: string;
  constructor(
    readonly status: number,
    reason: string,
    message: string,
  ) {
    super({ step: 'open stream', message, reason });
    this.name = 'StreamRefusal';
  }
}
