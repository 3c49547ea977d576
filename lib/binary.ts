import { readFileSync } from 'node:fs';
import { SandpitError } from './errors.js';
import type { Logger } from './log.js';

/*
 * What every sandpit binary does the same way at start-up: say which version
 * it is (in its User-Agent and logs), turn a bad flag into its usage text
 * and exit status 2, the way command-line tools do, and report a start that
 * failed as a SandpitError before exiting 1.
 */

/** The version in package.json, or "unknown" when the binary runs without it. */
export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string })
      .version;
  } catch {
    return 'unknown';
  }
}

/** Runs the flag parser; on a bad flag prints its message and the usage to stderr and exits 2. */
export function parseFlagsOrExit<T>(parse: () => T, usage: string): T {
  try {
    return parse();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${usage}\n`);
    process.exit(2);
  }
}

/**
 * Logs why `binary` could not start and exits 1. Whatever stopped it reaches
 * a person as a SandpitError: the step, the detail and where to look.
 */
export function exitOnStartFailure(log: Logger, binary: string, err: unknown): never {
  const e =
    err instanceof SandpitError
      ? err
      : new SandpitError({
          step: `start ${binary}`,
          message: (err as Error).message,
          hint: `check the flags and environment ${binary} was started with; ${binary} --help lists them`,
          cause: err,
        });
  log.fatal(
    { err: e.message, step: e.step, reason: e.reason, stack: (err as Error).stack },
    `${binary} failed to start`,
  );
  process.exit(1);
}
