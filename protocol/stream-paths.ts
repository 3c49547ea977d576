import type { Duplex } from 'node:stream';
import { API_PREFIX } from './agent-api.js';

/*
 * Where the streams of a sandbox live on the agent, and how a refused upgrade
 * answers: the controller dials these paths and splices, the agent parses them.
 */

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
