import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../../../lib/log.js';
import { API_PREFIX } from '../protocol.js';
import type { StreamBackend } from './backend.js';
import { CHANNEL_PROTOCOL, failureStatus } from './channel.js';
import { finish, parseExecQuery, serveExec } from './exec.js';
import { parseLogQuery } from './logselect.js';
import { serveLogs } from './logstream.js';
import { parsePort, servePortForward } from './portforward.js';
import { StreamRefusal } from './refusal.js';
import { serveTop } from './top.js';

/** The streaming sub-resources of a sandbox on the agent, as paths below /v1/sandboxes/UID. */
export type StreamTarget =
  | { kind: 'exec'; uid: string }
  | { kind: 'portforward'; uid: string }
  | { kind: 'usage'; uid: string }
  | { kind: 'log'; uid: string; container: string };

export function parseStreamPath(pathname: string): StreamTarget | undefined {
  const p = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (`/${p[0]}` !== API_PREFIX || p[1] !== 'sandboxes' || !p[2]) return undefined;
  const uid = p[2];
  if (p.length === 4 && (p[3] === 'exec' || p[3] === 'portforward' || p[3] === 'usage')) return { kind: p[3], uid };
  if (p.length === 6 && p[3] === 'containers' && p[5] === 'log' && p[4]) return { kind: 'log', uid, container: p[4] };
  return undefined;
}

export const agentStreamPath = {
  exec: (uid: string) => `${API_PREFIX}/sandboxes/${encodeURIComponent(uid)}/exec`,
  portforward: (uid: string) => `${API_PREFIX}/sandboxes/${encodeURIComponent(uid)}/portforward`,
  usage: (uid: string) => `${API_PREFIX}/sandboxes/${encodeURIComponent(uid)}/usage`,
  log: (uid: string, container: string) =>
    `${API_PREFIX}/sandboxes/${encodeURIComponent(uid)}/containers/${encodeURIComponent(container)}/log`,
};

/** Answers an upgrade request that is refused, as plain HTTP on the raw socket. */
export function refuseUpgrade(socket: Duplex, status: number, reason: string, message: string): void {
  const body = JSON.stringify({ reason, message });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * Accepts the WebSocket upgrades of the agent API (exec, logs, port-forward,
 * usage) after the mTLS client check, and hands each to its server. Every
 * validation happens before the upgrade, so bad input is an HTTP error with
 * a reason and nothing is started.
 */
export class StreamRouter {
  readonly #wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (protocols) => (protocols.has(CHANNEL_PROTOCOL) ? CHANNEL_PROTOCOL : false),
  });

  constructor(
    readonly backend: StreamBackend | undefined,
    readonly log: Logger,
  ) {}

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'https://agent');
    try {
      const target = parseStreamPath(url.pathname);
      if (!target) throw new StreamRefusal(404, 'NotFound', `no stream at ${url.pathname}`);
      if (!this.backend) throw new StreamRefusal(501, 'NotImplemented', 'this agent runtime does not support streams');
      const protocols = String(req.headers['sec-websocket-protocol'] ?? '')
        .split(',')
        .map((s) => s.trim());
      if (!protocols.includes(CHANNEL_PROTOCOL))
        throw new StreamRefusal(400, 'BadRequest', `streams speak the ${CHANNEL_PROTOCOL} WebSocket subprotocol`);
      const start = this.#validate(target, url.searchParams);
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        start(ws).catch((err: Error) => {
          this.log.warn({ uid: target.uid, kind: target.kind, err: err.message }, 'Stream failed');
          const refused = err instanceof StreamRefusal;
          finish(ws, failureStatus(refused ? err.reason : 'InternalError', err.message));
        });
      });
    } catch (err) {
      const e = err instanceof StreamRefusal ? err : new StreamRefusal(500, 'InternalError', (err as Error).message);
      refuseUpgrade(socket, e.status, e.reason, e.message);
    }
  }

  /** Checks the request fully and returns what serves it once upgraded. */
  #validate(t: StreamTarget, q: URLSearchParams): (ws: WebSocket) => Promise<void> {
    const b = this.backend!;
    switch (t.kind) {
      case 'exec': {
        const req = parseExecQuery(q);
        b.logPath(t.uid, req.container); // refuses an unknown sandbox or container before anything starts
        return (ws) => serveExec(ws, b, t.uid, req, this.log);
      }
      case 'log': {
        const req = parseLogQuery(t.container, q);
        b.logPath(t.uid, t.container);
        return (ws) => serveLogs(ws, b, t.uid, req);
      }
      case 'portforward': {
        const port = parsePort(q);
        b.netnsPid(t.uid);
        return (ws) => servePortForward(ws, b, t.uid, port, this.log);
      }
      case 'usage':
        b.usage(t.uid);
        return (ws) => serveTop(ws, b, t.uid);
    }
  }

  close(): void {
    for (const ws of this.#wss.clients) ws.terminate();
    this.#wss.close();
  }
}
