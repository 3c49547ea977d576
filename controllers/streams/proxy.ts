import type { IncomingMessage } from 'node:http';
import { request } from 'node:https';
import type { Duplex } from 'node:stream';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import type { ClientCredentials } from '../certs/authority.js';

/** An answer for the caller when the agent could not be reached or refused. */
export interface ProxyFailure {
  status: number;
  reason: string;
  message: string;
  /** The agent's own body, relayed as is when it answered. */
  body?: string;
}

const HOP = new Set(['connection', 'upgrade', 'sec-websocket-accept', 'transfer-encoding', 'keep-alive']);

/**
 * Opens the same WebSocket upgrade on the agent (mTLS, the agent's
 * certificate must name the node) and splices the two connections byte for
 * byte: the WebSocket frames pass through untouched, socket back-pressure
 * applies end to end, and either side closing closes the other, so a
 * dropped plugin drops the agent's stream and the agent kills the command.
 */
export function proxyUpgrade(
  client: { req: IncomingMessage; socket: Duplex; head: Buffer },
  target: { node: string; endpoint: string; path: string; query: URLSearchParams },
  creds: ClientCredentials,
  onFailure: (f: ProxyFailure) => void,
): void {
  const url = new URL(target.path, target.endpoint);
  url.search = target.query.toString();
  const h = client.req.headers;
  const out = request(url, {
    method: 'GET',
    ca: creds.ca,
    cert: creds.cert,
    key: creds.key,
    servername: target.node,
    checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(target.node, cert),
    timeout: 15_000,
    headers: {
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Version': String(h['sec-websocket-version'] ?? '13'),
      'Sec-WebSocket-Key': String(h['sec-websocket-key'] ?? ''),
      ...(h['sec-websocket-protocol'] ? { 'Sec-WebSocket-Protocol': String(h['sec-websocket-protocol']) } : {}),
    },
  });
  let settled = false;
  out.on('upgrade', (res, agentSocket, agentHead) => {
    settled = true;
    out.setTimeout(0);
    const lines = ['HTTP/1.1 101 Switching Protocols', 'Connection: Upgrade', 'Upgrade: websocket'];
    for (const [k, v] of Object.entries(res.headers))
      if (k === 'sec-websocket-accept' || (!HOP.has(k) && k.startsWith('sec-websocket')))
        lines.push(`${k}: ${String(v)}`);
    client.socket.write(lines.join('\r\n') + '\r\n\r\n');
    if (agentHead.length) client.socket.write(agentHead);
    if (client.head.length) agentSocket.write(client.head);
    agentSocket.pipe(client.socket);
    client.socket.pipe(agentSocket);
    const closeBoth = () => {
      agentSocket.destroy();
      client.socket.destroy();
    };
    agentSocket.on('close', closeBoth);
    client.socket.on('close', closeBoth);
    agentSocket.on('error', closeBoth);
    client.socket.on('error', closeBoth);
  });
  out.on('response', (res) => {
    settled = true;
    let body = '';
    res.on('data', (d: Buffer) => (body += d.toString()));
    res.on('end', () => {
      let parsed: { reason?: string; message?: string } = {};
      try {
        parsed = JSON.parse(body) as typeof parsed;
      } catch {
        /* not JSON */
      }
      onFailure({
        status: res.statusCode ?? 502,
        reason: parsed.reason ?? 'AgentRefused',
        message: `agent on ${target.node}: ${parsed.message ?? body.slice(0, 300)}`,
        body,
      });
    });
  });
  out.on('timeout', () => out.destroy(new Error('no answer within 15 s')));
  out.on('error', (err) => {
    if (settled) return;
    settled = true;
    onFailure({
      status: 502,
      reason: 'AgentUnreachable',
      message: `the agent on node ${target.node} (${target.endpoint}) is unreachable: ${err.message}`,
    });
  });
  client.socket.on('close', () => {
    if (!settled) out.destroy();
  });
  out.end();
}
