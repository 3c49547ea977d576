import { writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { check, libc } from '../sys/libc.js';
import { close, O_CLOEXEC } from '../sys/proc.js';

/*
 * Pipes for exec'd processes, made with pipe2 so that the agent holds plain
 * fds: the child's ends are handed to a launcher thread by number (fds are
 * process-wide), the agent's ends are wrapped in sockets for streaming.
 */

const pipe2Fn = libc.func('int pipe2(_Out_ int *fds, int flags)');

export function pipe(site: { sandbox?: string; step: string }): [number, number] {
  const fds = [0, 0];
  check('pipe2', site, () => pipe2Fn(fds, O_CLOEXEC));
  return [fds[0]!, fds[1]!];
}

/**
 * A pipe already holding `bytes` with its write end closed; returns the read
 * end. The child reads to EOF (the shim reads its seccomp filter this way).
 * A pipe holds 64 KiB before a writer blocks: callers pass less (a filter is at most 32 KiB).
 */
export function pipeHolding(bytes: Uint8Array, site: { sandbox?: string; step: string }): number {
  const [readEnd, writeEnd] = pipe(site);
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(writeEnd, bytes, off, bytes.length - off);
  } catch (err) {
    close(readEnd);
    throw err;
  } finally {
    close(writeEnd);
  }
  return readEnd;
}

export interface ExecStreams {
  /** Agent ends. */
  stdin: Socket | null;
  stdout: Socket;
  stderr: Socket | null;
  /** Child ends, closed by the agent once the child has them. */
  child: [number, number, number];
}

export function execPipes(opts: { stdin: boolean }, site: { sandbox?: string; step: string }): ExecStreams {
  const [outR, outW] = pipe(site);
  const [errR, errW] = pipe(site);
  let stdin: Socket | null = null;
  let inR: number;
  if (opts.stdin) {
    const [r, w] = pipe(site);
    inR = r;
    stdin = new Socket({ fd: w, readable: false, writable: true });
  } else {
    // An empty, closed stdin: the read end of a pipe whose write end is closed at once.
    const [r, w] = pipe(site);
    close(w);
    inR = r;
  }
  return {
    stdin,
    stdout: new Socket({ fd: outR, readable: true, writable: false }),
    stderr: new Socket({ fd: errR, readable: true, writable: false }),
    child: [inR, outW, errW],
  };
}
