import { constants } from 'node:os';
import { createRequire } from 'node:module';
import { SandpitError } from '../../lib/errors.js';

/*
 * The one door to the kernel: libc loaded once through koffi. Subsystems declare
 * the functions they need in their own files under node-agent/sys/ (ns.ts,
 * mount.ts, net.ts, ...) with `libc.func(...)` and call them through `check()`,
 * so every failure becomes a SandpitError with the errno name and the call.
 */

const require = createRequire(import.meta.url);
// koffi is CommonJS; its typings are exported as `default` for ESM callers.
export const koffi: typeof import('koffi') = require('koffi');

export const libc = koffi.load('libc.so.6');

const ERRNO_NAMES = new Map<number, string>(
  Object.entries(constants.errno).map(([name, value]) => [value as number, name]),
);

/** Name of an errno value, such as EPERM for 1. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/** Where a call is made from, for the error it may raise. */
export interface CallSite {
  sandbox?: string;
  step: string;
}

/**
 * Runs a libc call that returns -1 (or a negative value) on failure and turns a
 * failure into a SandpitError naming the call, the errno, the sandbox and the step.
 */
export function check<T extends number | bigint>(call: string, site: CallSite, fn: () => T, hint?: string): T {
  koffi.errno(0);
  const result = fn();
  if (typeof result === 'bigint' ? result < 0n : result < 0) {
    const errno = koffi.errno();
    const code = errnoName(errno);
    throw new SandpitError({ step: site.step, sandbox: site.sandbox, message: `${call} failed: ${code}`, code, hint });
  }
  return result;
}
