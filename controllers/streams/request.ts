/*
 * What a caller asks of the controller's streaming endpoint, parsed from the
 * path below the service proxy prefix: /sandboxes/NAMESPACE/NAME/ACTION with
 * the query the agent understands. Pure, so routing and the RBAC attributes
 * of each action are unit-tested.
 */

export type StreamAction = 'exec' | 'log' | 'portforward' | 'top';

export interface StreamRequest {
  namespace: string;
  name: string;
  action: StreamAction;
  query: URLSearchParams;
}

const ACTIONS: readonly StreamAction[] = ['exec', 'log', 'portforward', 'top'];
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/**
 * The API server's service proxy does not carry the query string of an
 * upgrade request to the backend, so the plugin sends it in this header too;
 * the header wins when both are present.
 */
export const QUERY_HEADER = 'x-sandpit-query';

export function parseStreamRequest(rawUrl: string, queryHeader?: string): StreamRequest | string {
  const url = new URL(rawUrl, 'https://controller');
  if (queryHeader) url.search = queryHeader;
  const p = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (p.length !== 4 || p[0] !== 'sandboxes')
    return `no stream at ${url.pathname}: use /sandboxes/NAMESPACE/NAME/{${ACTIONS.join('|')}}`;
  const [, namespace, name, action] = p as [string, string, string, string];
  if (!DNS_LABEL.test(namespace) || namespace.length > 63) return `"${namespace}" is not a valid namespace name`;
  if (!DNS_SUBDOMAIN.test(name) || name.length > 253) return `"${name}" is not a valid sandbox name`;
  if (!(ACTIONS as readonly string[]).includes(action))
    return `unknown stream "${action}": use one of ${ACTIONS.join(', ')}`;
  return { namespace, name, action: action as StreamAction, query: url.searchParams };
}

/** The RBAC check of each action, modelled on pods/exec, pods/log and pods/portforward. */
export function accessFor(action: StreamAction): { verb: 'create' | 'get'; subresource?: string } {
  switch (action) {
    case 'exec':
      return { verb: 'create', subresource: 'exec' };
    case 'portforward':
      return { verb: 'create', subresource: 'portforward' };
    case 'log':
      return { verb: 'get', subresource: 'log' };
    case 'top':
      return { verb: 'get' };
  }
}

/** The bearer token of the caller. The API server's proxy drops Authorization after authenticating, so the plugin repeats it in X-Sandpit-Authorization. */
export function bearerToken(headers: Record<string, string | string[] | undefined>): string | undefined {
  for (const h of ['x-sandpit-authorization', 'authorization']) {
    const v = headers[h];
    const s = Array.isArray(v) ? v[0] : v;
    const m = s ? /^Bearer\s+(\S+)$/i.exec(s.trim()) : null;
    if (m) return m[1];
  }
  return undefined;
}

export function refusalMessage(user: string, action: StreamAction, namespace: string, reason?: string): string {
  const { verb, subresource } = accessFor(action);
  const resource = subresource ? `sandboxes/${subresource}` : 'sandboxes';
  return `User "${user}" cannot ${verb} ${resource} (sandpit.dev) in namespace "${namespace}"${reason ? `: ${reason}` : ''}`;
}
