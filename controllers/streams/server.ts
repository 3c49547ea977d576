import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Duplex } from 'node:stream';
import type { Sandbox } from '../../crds/sandbox.js';
import type { SandboxNode } from '../../crds/sandboxnode.js';
import type { Logger } from '../../lib/log.js';
import { agentStreamPath, refuseUpgrade } from '../../protocol/stream-paths.js';
import type { ClientCertificate } from '../certs/authority.js';
import { createCA, issue } from '../../lib/pki/x509.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { AccessDenied, authorizeStream } from './authz.js';
import { proxyUpgrade } from './proxy.js';
import { bearerToken, parseStreamRequest, QUERY_HEADER, type StreamRequest } from './request.js';
import { defaultContainer } from '../../lib/default-container.js';

export interface StreamsDeps {
  client: KubeClient;
  /** Cached lookups (the controller's informers), by namespace/name and node name. */
  sandbox(key: string): Sandbox | undefined;
  node(name: string): SandboxNode | undefined;
  certificate: ClientCertificate;
  log: Logger;
}

/** The agent-side target of a request, or why there is none. */
export function resolveTarget(
  req: StreamRequest,
  sbx: Sandbox | undefined,
  node: SandboxNode | undefined,
):
  | { node: string; endpoint: string; path: string; query: URLSearchParams }
  | { status: number; reason: string; message: string } {
  const who = `${req.namespace}/${req.name}`;
  if (!sbx) return { status: 404, reason: 'NotFound', message: `sandbox ${who} not found` };
  const uid = sbx.metadata.uid ?? '';
  const nodeName = sbx.status?.nodeName;
  if (!nodeName)
    return { status: 409, reason: 'NotScheduled', message: `sandbox ${who} is not scheduled to a node yet` };
  const endpoint = node?.status?.endpoint;
  if (!endpoint)
    return {
      status: 503,
      reason: 'NodeUnavailable',
      message: `node ${nodeName} of sandbox ${who} has no agent endpoint`,
    };
  const query = new URLSearchParams(req.query);
  const container = query.get('container') || defaultContainer(sbx).name || '';
  if (!sbx.spec.containers.some((c) => c.name === container)) {
    return {
      status: 400,
      reason: 'BadRequest',
      message: `container "${container}" not found in sandbox ${who} (containers: ${sbx.spec.containers.map((c) => c.name).join(', ')})`,
    };
  }
  switch (req.action) {
    case 'exec':
      query.set('container', container);
      return { node: nodeName, endpoint, path: agentStreamPath.exec(uid), query };
    case 'log':
      query.delete('container');
      return { node: nodeName, endpoint, path: agentStreamPath.log(uid, container), query };
    case 'portforward':
      return { node: nodeName, endpoint, path: agentStreamPath.portforward(uid), query };
    case 'top':
      return { node: nodeName, endpoint, path: agentStreamPath.usage(uid), query: new URLSearchParams() };
  }
}

/**
 * The controller's streaming endpoint (exec, logs, port-forward, top), run by
 * every replica behind the sandpit-controller Service's `streams` port. The
 * API server's service proxy carries the plugin's WebSocket here; each
 * request is authenticated and authorised against the API server, then
 * spliced to the agent of the sandbox's node over mutual TLS. TLS here uses
 * a certificate made at start-up: the API server's proxy does not verify
 * its backends, and direct (development) clients are told to skip it too.
 */
export class StreamsServer {
  #server: Server | undefined;

  constructor(readonly deps: StreamsDeps) {}

  async listen(host: string, port: number, namespace: string): Promise<number> {
    const ca = await createCA('sandpit-controller-streams', 3650);
    const serving = await issue(ca, {
      commonName: 'sandpit-controller',
      dnsNames: ['sandpit-controller', `sandpit-controller.${namespace}.svc`, 'localhost'],
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
      days: 3650,
    });
    this.#server = createServer(
      { cert: serving.cert, key: serving.key, minVersion: 'TLSv1.2' },
      (_req: IncomingMessage, res: ServerResponse) => {
        const body = JSON.stringify({
          reason: 'UpgradeRequired',
          message: 'sandpit streams are WebSocket connections (v5.channel.k8s.io); use kubectl sandpit',
        });
        res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      },
    );
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => undefined);
      this.#handle(req, socket, head).catch((err: Error) => {
        this.deps.log.error({ err: err.message }, 'Stream request failed');
        refuseUpgrade(socket, 500, 'InternalError', err.message);
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.#server!.once('error', reject);
      this.#server!.listen(port, host, () => resolve());
    });
    const a = this.#server.address();
    return typeof a === 'object' && a ? a.port : port;
  }

  async #handle(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const { deps } = this;
    const header = req.headers[QUERY_HEADER];
    const parsed = parseStreamRequest(req.url ?? '/', Array.isArray(header) ? header[0] : header);
    if (typeof parsed === 'string') return refuseUpgrade(socket, 404, 'NotFound', parsed);
    let user: string;
    try {
      user = await authorizeStream(deps.client, bearerToken(req.headers), parsed);
    } catch (err) {
      if (!(err instanceof AccessDenied)) throw err;
      deps.log.info(
        { sandbox: `${parsed.namespace}/${parsed.name}`, action: parsed.action, why: err.detail },
        'Refused a stream',
      );
      return refuseUpgrade(socket, err.status, err.reason, err.detail);
    }
    const sbx = deps.sandbox(`${parsed.namespace}/${parsed.name}`);
    const target = resolveTarget(parsed, sbx, sbx?.status?.nodeName ? deps.node(sbx.status.nodeName) : undefined);
    if ('status' in target) return refuseUpgrade(socket, target.status, target.reason, target.message);
    deps.log.info(
      { user, sandbox: `${parsed.namespace}/${parsed.name}`, action: parsed.action, node: target.node },
      'Stream authorised',
    );
    const creds = await deps.certificate.get();
    proxyUpgrade({ req, socket, head }, target, creds, (f) => refuseUpgrade(socket, f.status, f.reason, f.message));
  }

  async close(): Promise<void> {
    if (!this.#server) return;
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server!.close(() => r()));
  }
}
