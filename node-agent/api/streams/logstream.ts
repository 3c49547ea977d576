import { closeSync, existsSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import type { WebSocket } from 'ws';
import type { StreamBackend } from './backend.js';
import { Channel, frame } from '../../../protocol/streams.js';
import { finish } from './exec.js';
import { inWindow, parseCriLine, renderLines, tailLines, type CriLine } from '../../process/cri-log.js';
import { runWindow, type LogRequest } from './logselect.js';

const FOLLOW_POLL_MS = 200;
const MAX_ROTATED = 32;

/** Rotated files oldest first, then the live one. */
function logFiles(path: string): string[] {
  const rotated: string[] = [];
  for (let i = MAX_ROTATED; i >= 1; i--) if (existsSync(`${path}.${i}`)) rotated.push(`${path}.${i}`);
  return existsSync(path) ? [...rotated, path] : rotated;
}

function readFrom(fd: number, offset: number): { text: string; offset: number } {
  const size = fstatSync(fd).size;
  if (size <= offset) return { text: '', offset };
  const buf = Buffer.allocUnsafe(size - offset);
  const n = readSync(fd, buf, 0, buf.length, offset);
  return { text: buf.subarray(0, n).toString('utf8'), offset: offset + n };
}

/** Splits text into complete records; the unterminated tail is kept for the next read. */
function records(carry: string, text: string): { lines: CriLine[]; carry: string } {
  const parts = (carry + text).split('\n');
  const rest = parts.pop() ?? '';
  return { lines: parts.map(parseCriLine).filter((l): l is CriLine => l !== undefined), carry: rest };
}

/**
 * Streams a container's log on channel 1: what exists now (window, tail),
 * then, with follow, what is appended, across rotations (a rotation renames
 * the live file away; the rest of the old file is read before switching).
 * Ends with a Success status, or when the client goes away.
 */
export async function serveLogs(ws: WebSocket, backend: StreamBackend, uid: string, req: LogRequest): Promise<void> {
  const status = backend.containers(uid).find((c) => c.name === req.container);
  const window = runWindow(status, req.previous, req.sinceSeconds);
  const path = backend.logPath(uid, req.container);
  let all: CriLine[] = [];
  for (const f of logFiles(path)) {
    const fd = openSync(f, 'r');
    try {
      all = all.concat(records('', readFrom(fd, 0).text).lines.filter((l) => inWindow(l, window)));
    } finally {
      closeSync(fd);
    }
  }
  if (req.tail !== undefined) all = tailLines(all, req.tail);
  const first = renderLines(all, req.timestamps);
  if (first) ws.send(frame(Channel.stdout, first));
  if (!req.follow || req.previous) return finish(ws, { status: 'Success' });

  let fd = existsSync(path) ? openSync(path, 'r') : -1;
  let offset = fd >= 0 ? fstatSync(fd).size : 0;
  let carry = '';
  let closed = false;
  ws.on('close', () => (closed = true));
  const emit = (text: string) => {
    const r = records(carry, text);
    carry = r.carry;
    const out = renderLines(r.lines, req.timestamps);
    if (out) ws.send(frame(Channel.stdout, out));
  };
  while (!closed) {
    await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
    // Back-pressure: while the client has not taken what was sent, do not read more.
    if (ws.bufferedAmount > 1 << 20) continue;
    if (fd >= 0) {
      const r = readFrom(fd, offset);
      offset = r.offset;
      if (r.text) emit(r.text);
    }
    let live: number | undefined;
    try {
      live = statSync(path).ino;
    } catch {
      live = undefined;
    }
    if (live !== undefined && (fd < 0 || fstatSync(fd).ino !== live)) {
      if (fd >= 0) closeSync(fd);
      fd = openSync(path, 'r');
      offset = 0;
    }
  }
  if (fd >= 0) closeSync(fd);
}
