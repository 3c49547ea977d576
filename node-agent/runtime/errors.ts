import { SandpitError, type SandpitErrorOptions } from '../../lib/errors.js';

/** Where in a create an error happened (status/failures.ts turns it into kubelet's waiting reason). */
export type CreateStage = 'image' | 'config' | 'start';

/**
 * An error of the runtime that belongs to one container of a sandbox, and,
 * for an error of a create, the stage it failed in: the fields
 * status/failures.ts reads to say which container waits, and why.
 */
export class RuntimeError extends SandpitError {
  readonly container: string | undefined;
  readonly createStage: CreateStage | undefined;

  constructor(opts: SandpitErrorOptions & { container?: string; createStage?: CreateStage }) {
    super(opts);
    this.name = 'RuntimeError';
    this.container = opts.container;
    this.createStage = opts.createStage;
  }

  /**
   * `err`, raised in `stage` of a create for `container`, as a RuntimeError
   * that says so. Message, reason and hint stay the cause's own (a person reads
   * the same text); a container the cause already names wins.
   */
  static inCreate(err: unknown, container: string, stage: CreateStage): RuntimeError {
    if (err instanceof SandpitError)
      return new RuntimeError({
        sandbox: err.sandbox,
        step: err.step,
        message: err.detail,
        hint: err.hint,
        code: err.code,
        reason: err.reason,
        cause: err,
        container: (err instanceof RuntimeError ? err.container : undefined) ?? container,
        createStage: stage,
      });
    const wrapped = new RuntimeError({
      step: `create container ${container}`,
      message: String(err),
      cause: err,
      container,
      createStage: stage,
    });
    if (err instanceof Error) wrapped.message = err.message;
    return wrapped;
  }
}

/**
 * A container whose configuration cannot work (a user the image does not
 * define, runAsNonRoot against a root user): kubelet's
 * CreateContainerConfigError, the waiting reason status/failures.ts reports.
 */
export function configError(
  site: { sandbox: string; step: string },
  message: string,
  hint: string,
  container: string,
): RuntimeError {
  return new RuntimeError({ ...site, message, hint, reason: 'CreateContainerConfigError', container });
}
