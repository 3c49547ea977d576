import { spawn } from 'node:child_process';
import type { WebSocket } from 'ws';
import type { Logger } from '../../../lib/log.js';
import type { StreamBackend } from './backend.js';
import { Channel, failureStatus, parseFrame } from './channel.js';
import { finish } from './exec.js';
import { pumpToSocket, writeWithBackpressure } from './pump.js';
import { StreamRefusal } from './refusal.js';

export function parsePort(q: URLSearchParams): number {
  const v = q.get('port') ?? '';
  const port = Number(v);
  if (!/^\d+$/.test(v) || port < 1 || port > 65535) throw new StreamRefusal(400, 'BadRequest', `port must be 1-65535, got "${v}"`);
  return port;
}

/**
 * One forwarded TCP connection per WebSocket: bytes from the client on
 * channel 0 go to 127.0.0.1:port inside the sandbox's network namespace,
 * bytes back on channel 1. The connection is made from inside the netns
 * (nsenter + socat, as dockershim did), so it works in every network mode,
 * None included, and reaches servers bound to the sandbox's loopback.
 * Either side closing closes the other; the helper process is killed.
 */
export async function servePortForward(ws: WebSocket, backend: StreamBackend, uid: string, port: number, log: Logger): Promise<void> {
  const pid = backend.netnsPid(uid);
  const child = spawn('nsenter', [`--net=/proc/${pid}/ns/net`, '--', 'socat', '-', `TCP:127.0.0.1:${port}`], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  child.stdin.on('error', () => undefined);
  ws.on('message', (msg: Buffer) => {
    const f = parseFrame(msg);
    if (!f) return;
    if (f.channel === Channel.stdin) writeWithBackpressure(ws, child.stdin, f.data);
    else if (f.channel === Channel.close) child.stdin.end();
  });
  ws.on('close', () => child.kill('SIGKILL'));
  ws.on('error', () => undefined);
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  child.once('error', (err) => (stderr += err.message));
  await pumpToSocket(child.stdout, ws, Channel.stdout);
  const code = await exited;
  if (code === 0) return finish(ws, { status: 'Success' });
  log.info({ uid, port, code, stderr: stderr.trim() }, 'port-forward connection failed');
  finish(ws, failureStatus('PortForwardFailed', `connecting to port ${port} in the sandbox failed: ${stderr.trim().split('\n').pop() ?? `exit ${code}`}`));
}
