import { chmodSync, chownSync, closeSync, fstatSync, openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SandboxSpec } from '../../crds/sandbox.js';
import { parseCriLine, renderLines, tailLines, type CriLine } from '../process/cri-log.js';

/*
 * A container's termination message, as kubelet makes it: the container
 * writes a file (terminationMessagePath, /dev/termination-log by default,
 * bind-mounted from a host file that starts empty each run); its first 4096
 * bytes become state.terminated.message. With FallbackToLogsOnError, a failed
 * run that wrote nothing there gets the end of its own output instead.
 */

type Container = SandboxSpec['containers'][number];

/** kubelet's limits: the file read, and the log fallback's lines and bytes. */
const MAX_FILE_BYTES = 4096;
const FALLBACK_LINES = 80;
const FALLBACK_BYTES = 2048;

export const DEFAULT_TERMINATION_MESSAGE_PATH = '/dev/termination-log';

/** The host file behind a container's terminationMessagePath. */
export const terminationLogFile = (containerDir: string) => join(containerDir, 'termination-log');

/** An empty file for the next run, writable by whoever the container runs as (mode 0666, owned by its root). */
export function prepareTerminationLog(file: string, owner: number | undefined): void {
  writeFileSync(file, '');
  chmodSync(file, 0o666);
  if (owner !== undefined) chownSync(file, owner, owner);
}

/** What state.terminated.message says for a run that ended with `exitCode`. */
export function terminationMessage(
  spec: Pick<Container, 'terminationMessagePolicy'>,
  exitCode: number,
  file: string,
  log: () => CriLine[],
): string | undefined {
  const written = readHead(file, MAX_FILE_BYTES);
  if (written) return written;
  if (spec.terminationMessagePolicy !== 'FallbackToLogsOnError' || exitCode === 0) return undefined;
  return fallbackFromLog(log()) || undefined;
}

/** The last 80 lines of a run's output, at most its last 2048 bytes (pure). */
export function fallbackFromLog(lines: CriLine[]): string {
  const text = renderLines(tailLines(lines, FALLBACK_LINES), false);
  const bytes = Buffer.from(text, 'utf8');
  return bytes.length <= FALLBACK_BYTES ? text : bytes.subarray(bytes.length - FALLBACK_BYTES).toString('utf8');
}

/** The records of a CRI log file that `keep` accepts (the file's last 256 KiB are enough for 80 lines of a run). */
export function readLogTail(path: string, keep: (l: CriLine) => boolean): CriLine[] {
  const text = readTail(path, 256 * 1024);
  const records = text.split('\n');
  if (text.length === 256 * 1024) records.shift(); // cut mid-record
  return records.map(parseCriLine).filter((l): l is CriLine => l !== undefined && keep(l));
}

function readHead(file: string, max: number): string {
  try {
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(max);
      const n = readSync(fd, buf, 0, max, 0);
      return buf.subarray(0, n).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return ''; // no file: a run from before termination messages existed
  }
}

function readTail(file: string, max: number): string {
  try {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const start = Math.max(0, size - max);
      const buf = Buffer.alloc(size - start);
      const n = readSync(fd, buf, 0, buf.length, start);
      return buf.subarray(0, n).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}
