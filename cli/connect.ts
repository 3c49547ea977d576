import type { RequestOptions } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import WebSocket from 'ws';
import { CHANNEL_PROTOCOL } from '../protocol/streams.js';
import type { Globals } from './args.js';
import { CliError } from './errors.js';
import { refusalError } from './refusal.js';

export interface Session {
  kc: KubeConfig;
  namespace: string;
  globals: Globals;
  server: string;
}

/** Loads the kubeconfig the way kubectl does: --kubeconfig, else $KUBECONFIG, else ~/.kube/config; --context; -n or the context's namespace. */
export function loadSession(globals: Globals): Session {
  const kc = new KubeConfig();
  try {
    if (globals.kubeconfig) kc.loadFromFile(globals.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new CliError('load kubeconfig', `cannot load the kubeconfig: ${(err as Error).message}`);
  }
  if (globals.context) {
    if (!kc.getContextObject(globals.context))
      throw new CliError('load kubeconfig', `context "${globals.context}" does not exist in the kubeconfig`);
    kc.setCurrentContext(globals.context);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster)
    throw new CliError(
      'load kubeconfig',
      'the kubeconfig has no current cluster: set one with kubectl config use-context',
    );
  const namespace = globals.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  return { kc, namespace, globals, server: cluster.server.replace(/\/$/, '') };
}

/** TLS and credentials of the kubeconfig user, as request options (runs exec credential plugins). */
async function requestOptions(s: Session): Promise<RequestOptions & { headers: Record<string, string> }> {
  const opts: RequestOptions = {};
  await s.kc.applyToHTTPSOptions(opts);
  return { ...opts, headers: { ...((opts.headers as Record<string, string>) ?? {}) } };
}

/**
 * Opens a stream to the controller: through the API server's service proxy
 * (the API server authenticates us and checks services/proxy), or, with
 * --direct, to the controller itself. Either way the controller checks our
 * token with TokenReview and SubjectAccessReview, so the token travels in
 * X-Sandpit-Authorization too: the API server drops Authorization once it
 * has authenticated the request.
 */
export async function openStream(
  s: Session,
  sandbox: string,
  action: string,
  query: URLSearchParams,
): Promise<WebSocket> {
  const opts = await requestOptions(s);
  const auth = opts.headers.Authorization ?? opts.headers.authorization;
  if (!auth || !/^Bearer /i.test(auth)) {
    throw new CliError(
      'open stream',
      "your kubeconfig user has no bearer token (client-certificate users cannot be checked by the sandpit controller): use a token user, e.g. a ServiceAccount token or your cloud provider's exec plugin",
    );
  }
  const path = `/sandboxes/${encodeURIComponent(s.namespace)}/${encodeURIComponent(sandbox)}/${action}?${query.toString()}`;
  const base = s.globals.direct
    ? s.globals.direct.replace(/^http/, 'ws').replace(/\/$/, '')
    : `${s.server.replace(/^http/, 'ws')}/api/v1/namespaces/${encodeURIComponent(s.globals.controllerNamespace)}/services/https:${encodeURIComponent(s.globals.controllerService)}:streams/proxy`;
  const ws = new WebSocket(base + path, [CHANNEL_PROTOCOL], {
    ...(s.globals.direct
      ? { rejectUnauthorized: false }
      : { ca: opts.ca, cert: opts.cert, key: opts.key, rejectUnauthorized: opts.rejectUnauthorized }),
    // The API server's service proxy drops the query string of an upgrade request: repeat it in a header.
    headers: { ...opts.headers, 'X-Sandpit-Authorization': auth, 'X-Sandpit-Query': query.toString() },
    perMessageDeflate: false,
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => reject(refusalError(res.statusCode ?? 0, body, s.globals.controllerNamespace)));
    });
    ws.once('error', (err) =>
      reject(new CliError('open stream', `cannot reach the sandpit controller: ${err.message}`)),
    );
  });
}
