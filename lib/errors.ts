/**
 * The one error type for effects on a node or the cluster. It names the sandbox,
 * the step that failed and, where we know it, what a person should do about it,
 * so that a log line or a status message is actionable on its own.
 */
export class SandpitError extends Error {
  readonly sandbox: string | undefined;
  readonly step: string;
  readonly hint: string | undefined;
  /** errno name (EPERM, ENOENT, ...) when the failure came from a syscall. */
  readonly code: string | undefined;
  /**
   * The machine-readable reason a status, an Event or an API error body carries
   * (kubelet's words where one exists: CreateContainerConfigError, SandboxPaused, ...).
   * Callers read this field; nothing matches message text.
   */
  readonly reason: string | undefined;
  /** What went wrong, without the sandbox, step and hint the message wraps it in (to make a SandpitError of it again). */
  readonly detail: string;

  constructor(opts: SandpitErrorOptions) {
    const where = opts.sandbox ? `sandbox ${opts.sandbox}: ` : '';
    const hint = opts.hint ? ` (${opts.hint})` : '';
    super(`${where}${opts.step}: ${opts.message}${hint}`, { cause: opts.cause });
    this.name = 'SandpitError';
    this.sandbox = opts.sandbox;
    this.step = opts.step;
    this.hint = opts.hint;
    this.code = opts.code;
    this.reason = opts.reason;
    this.detail = opts.message;
  }
}

export interface SandpitErrorOptions {
  step: string;
  message: string;
  sandbox?: string;
  hint?: string;
  code?: string;
  reason?: string;
  cause?: unknown;
}
