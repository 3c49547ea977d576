import type { WebSocket } from 'ws';
import type { Logger } from '../../../lib/log.js';
import { SandpitError } from '../../../lib/errors.js';
import type { ExecSession } from '../../runtime/record.js';
import type { StreamBackend } from './backend.js';
import {
  Channel,
  exitStatus,
  failureStatus,
  parseFrame,
  parseResize,
  type StreamStatus,
} from '../../../protocol/streams.js';
import { killTree } from './killtree.js';
import { pumpToSocket, writeWithBackpressure } from './pump.js';
import { StreamRefusal } from './refusal.js';

/** An exec request as the query string carries it (the names kubectl uses). */
export interface ExecRequest {
  container: string;
  command: string[];
  stdin: boolean;
  tty: boolean;
}

const flag = (q: URLSearchParams, name: string) => ['1', 'true'].includes(q.get(name) ?? '');

export function parseExecQuery(q: URLSearchParams): ExecRequest {
  const container = q.get('container') ?? '';
  const command = q.getAll('command');
  if (!container) throw new StreamRefusal(400, 'BadRequest', 'exec needs a container (query parameter container=NAME)');
  if (command.length === 0 || command[0] === '')
    throw new StreamRefusal(400, 'BadRequest', 'exec needs a command (query parameters command=ARG, one per argument)');
  return { container, command, stdin: flag(q, 'stdin'), tty: flag(q, 'tty') };
}

/** How long output may keep flowing after the command exited (a background child holding the pipe open must not hang the stream). */
const DRAIN_AFTER_EXIT_MS = 2000;

/**
 * Runs one exec over an accepted WebSocket: stdin/stdout/stderr as channels
 * 0-2, terminal resizes on 4, the exit status on 3. If the connection drops
 * before the command ends, the command and everything it started are killed:
 * nothing is left running in the sandbox.
 */
export async function serveExec(
  ws: WebSocket,
  backend: StreamBackend,
  uid: string,
  req: ExecRequest,
  log: Logger,
): Promise<void> {
  // The client sends stdin and its terminal size as soon as the socket opens, while the
  // command is still being started: hold those frames until there is a process for them.
  const early: Buffer[] = [];
  let deliver = (msg: Buffer) => void early.push(msg);
  let clientGone = false;
  ws.on('message', (msg: Buffer) => deliver(msg));
  ws.on('error', () => undefined);
  ws.once('close', () => (clientGone = true));
  let session: ExecSession;
  try {
    session = await backend.exec(uid, req.container, req.command, { tty: req.tty, stdin: req.stdin });
  } catch (err) {
    const reason = err instanceof SandpitError ? err.reason : undefined;
    finish(ws, failureStatus(reason ?? 'ExecFailed', (err as Error).message));
    return;
  }
  const elog = log.child({ uid, container: req.container, pid: session.pid, tty: req.tty });
  elog.info({ command: req.command[0] }, 'exec started');
  let exited = false;
  const killOnDrop = () => {
    if (exited) return;
    const killed = killTree(session.pid);
    elog.info({ killed }, 'exec client went away; killed the command and its children');
  };

  deliver = (msg: Buffer) => {
    const f = parseFrame(msg);
    if (!f) return;
    if (f.channel === Channel.stdin && session.stdin) writeWithBackpressure(ws, session.stdin, f.data);
    else if (f.channel === Channel.resize && req.tty) {
      const size = parseResize(f.data);
      if (size && !exited) session.resize(size.cols, size.rows);
    } else if (f.channel === Channel.close && f.data[0] === Channel.stdin) session.stdin?.end();
  };
  for (const msg of early.splice(0)) deliver(msg);
  if (clientGone) killOnDrop();
  else ws.once('close', killOnDrop);

  const outputs = [pumpToSocket(session.stdout, ws, Channel.stdout)];
  if (session.stderr) outputs.push(pumpToSocket(session.stderr, ws, Channel.stderr));
  const result = await session.exited;
  exited = true;
  await Promise.race([Promise.all(outputs), new Promise((r) => setTimeout(r, DRAIN_AFTER_EXIT_MS))]);
  for (const s of [session.stdin, session.stdout, session.stderr]) s?.destroy();
  elog.info({ exitCode: result.exitCode, signal: result.signal, clientGone }, 'exec ended');
  if (!clientGone) finish(ws, exitStatus(result.exitCode));
}

/** Sends the final status and closes normally once it is flushed. */
export function finish(ws: WebSocket, status: StreamStatus): void {
  if (ws.readyState !== ws.OPEN) return;
  ws.send(Buffer.concat([Buffer.from([Channel.status]), Buffer.from(JSON.stringify(status))]), () => ws.close(1000));
}
