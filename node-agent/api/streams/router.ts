import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../../../lib/log.js';
import { parseStreamPath, refuseUpgrade, type StreamTarget } from '../../../protocol/stream-paths.js';
import type { StreamBackend } from './backend.js';
import { CHANNEL_PROTOCOL, failureStatus } from '../../../protocol/streams.js';
import { finish, parseExecQuery, serveExec } from './exec.js';
import { parseLogQuery } from './logselect.js';
import { serveLogs } from './logstream.js';
import { parsePort, servePortForward } from './portforward.js';
import { StreamRefusal } from './refusal.js';
import { serveTop } from './top.js';

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
          finish(ws, failureStatus(refused ? err.reason : 'InternalError', refused ? err.detail : err.message));
        });
      });
    } catch (err) {
      const e = err instanceof StreamRefusal ? err : new StreamRefusal(500, 'InternalError', (err as Error).message);
      refuseUpgrade(socket, e.status, e.reason, e.detail);
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
