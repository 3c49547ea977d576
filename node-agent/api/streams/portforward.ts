import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { SandpitError } from '../../../lib/errors.js';
import type { Logger } from '../../../lib/log.js';
import type { StreamBackend } from './backend.js';
import { Channel, failureStatus, parseFrame } from '../../../protocol/streams.js';
import { dialInNetns } from './dial.js';
import { finish } from './exec.js';
import { pumpToSocket, writeWithBackpressure } from './pump.js';
import { StreamRefusal } from './refusal.js';

export function parsePort(q: URLSearchParams): number {
  const v = q.get('port') ?? '';
  const port = Number(v);
  if (!/^\d+$/.test(v) || port < 1 || port > 65535)
    throw new StreamRefusal(400, 'BadRequest', `port must be 1-65535, got "${v}"`);
  return port;
}

/**
 * One forwarded TCP connection per WebSocket: bytes from the client on
 * channel 0 go to 127.0.0.1:port inside the sandbox's network namespace,
 * bytes back on channel 1. The agent connects from inside the netns itself
 * (dial.ts), so it works in every network mode, None included, and reaches
 * servers bound to the sandbox's loopback. Either side closing closes the other.
 */
export async function servePortForward(
  ws: WebSocket,
  backend: StreamBackend,
  uid: string,
  port: number,
  log: Logger,
): Promise<void> {
  const pid = backend.netnsPid(uid);
  // The client may send before the connection is made: keep its bytes (and its close) until then.
  let conn: Socket | undefined;
  const early: Buffer[] = [];
  let endAsked = false;
  let gone = false;
  ws.on('message', (msg: Buffer) => {
    const f = parseFrame(msg);
    if (!f) return;
    if (f.channel === Channel.stdin) {
      if (conn) writeWithBackpressure(ws, conn, f.data);
      else early.push(f.data);
    } else if (f.channel === Channel.close) {
      if (conn) conn.end();
      else endAsked = true;
    }
  });
  ws.on('close', () => {
    gone = true;
    conn?.destroy();
  });
  ws.on('error', () => undefined);
  try {
    conn = await dialInNetns(`/proc/${pid}/ns/net`, port, uid);
  } catch (err) {
    if (!(err instanceof SandpitError)) throw err;
    log.info({ uid, port, code: err.code }, 'port-forward connection failed');
    return finish(ws, failureStatus('PortForwardFailed', err.message));
  }
  if (gone) {
    conn.destroy();
    return;
  }
  let failure: string | undefined;
  conn.on('error', (err: NodeJS.ErrnoException) => (failure = err.code ?? err.message));
  for (const data of early.splice(0)) writeWithBackpressure(ws, conn, data);
  if (endAsked) conn.end();
  await pumpToSocket(conn, ws, Channel.stdout);
  conn.destroy();
  if (!failure) return finish(ws, { status: 'Success' });
  log.info({ uid, port, code: failure }, 'port-forward connection broke');
  finish(ws, failureStatus('PortForwardFailed', `the connection to port ${port} in the sandbox broke: ${failure}`));
}
