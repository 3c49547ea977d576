import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../../lib/log.js';
import { CONTROLLER_CLIENT_CN } from '../../protocol/agent-api.js';

const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';

export interface ServingTLS {
  /** CA that signs the controller's client certificate. */
  clientCA: string;
  cert: string;
  key: string;
}

/**
 * The HTTPS server of the agent API with mutual TLS. The TLS layer refuses
 * clients without a certificate from the sandpit CA; on top of that only a
 * client certificate for the controller (CN sandpit-controller, clientAuth)
 * is served, so an agent's own serving certificate, signed by the same CA,
 * cannot be used to drive another agent. setTLS() swaps certificates in
 * place: rotation restarts nothing, sandboxes least of all.
 */
export class MtlsServer {
  readonly #server: Server;

  constructor(
    tls: ServingTLS,
    handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
    readonly log: Logger,
  ) {
    this.#server = createServer(
      {
        ca: tls.clientCA,
        cert: tls.cert,
        key: tls.key,
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
      },
      (req, res) => {
        const refusal = refuseClient(req.socket as TLSSocket);
        if (refusal) {
          this.log.warn({ remote: req.socket.remoteAddress, why: refusal }, 'Refused an agent API client');
          res.writeHead(403, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ reason: 'Forbidden', message: refusal }));
          return;
        }
        handler(req, res).catch((err: Error) => {
          this.log.error({ err: err.message }, 'Agent API handler failed');
          if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ reason: 'InternalError', message: err.message }));
        });
      },
    );
    this.#server.on('tlsClientError', (err, socket) =>
      this.log.info({ remote: socket.remoteAddress, err: err.message }, 'TLS handshake refused'),
    );
  }

  /**
   * Serves WebSocket upgrades (the exec, log and port-forward streams) with
   * the same client check as plain requests: only the controller may open one.
   */
  onUpgrade(handler: (req: IncomingMessage, socket: Duplex, head: Buffer) => void): void {
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const refusal = refuseClient(socket as TLSSocket);
      if (refusal) {
        this.log.warn({ remote: req.socket.remoteAddress, why: refusal }, 'Refused an agent API stream client');
        const body = JSON.stringify({ reason: 'Forbidden', message: refusal });
        socket.end(
          `HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
        return;
      }
      socket.on('error', () => undefined);
      handler(req, socket, head);
    });
  }

  setTLS(tls: ServingTLS): void {
    this.#server.setSecureContext({ ca: tls.clientCA, cert: tls.cert, key: tls.key });
  }

  async listen(host: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => resolve());
    });
    const a = this.#server.address();
    return typeof a === 'object' && a ? a.port : port;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}

/** Why a verified client may still not use the API, or undefined when it may. */
export function refuseClient(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return `client certificate not verified: ${String(socket.authorizationError)}`;
  const cert = socket.getPeerCertificate();
  if (!cert || !cert.subject) return 'no client certificate';
  if (cert.subject.CN !== CONTROLLER_CLIENT_CN)
    return `client certificate CN ${cert.subject.CN} is not ${CONTROLLER_CLIENT_CN}`;
  const eku = (cert as { ext_key_usage?: string[] }).ext_key_usage;
  if (eku && !eku.includes(CLIENT_AUTH_OID)) return 'client certificate lacks the clientAuth extended key usage';
  return undefined;
}
