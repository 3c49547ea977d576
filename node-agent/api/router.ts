import type { IncomingMessage, ServerResponse } from 'node:http';
import { Sandbox } from '../../crds/sandbox.js';
import { SandpitError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { SandboxRuntime } from '../contracts.js';
import { holdPullSecrets } from '../images/pull-secrets.js';
import { API_PREFIX, type ApiErrorBody, type ListResponse } from '../../protocol/agent-api.js';

const MAX_BODY = 1 << 20;

/** A request refused with an HTTP status and a machine-readable reason; its body's message is the `detail`. */
export class ApiRefusal extends SandpitError {
  declare readonly reason: string;
  constructor(
    readonly status: number,
    reason: string,
    message: string,
    sandbox?: string,
  ) {
    super({ step: 'check request', message, reason, ...(sandbox ? { sandbox } : {}) });
    this.name = 'ApiRefusal';
  }
}

/**
 * Checks a PUT body: it must be a Sandbox that passes the same zod schema the
 * CRD is generated from, for the UID in the path, bound to this node (or not
 * yet bound). Pure, so the rules are unit-tested without a server.
 */
export function parsePutBody(uid: string, body: unknown, node: string): Sandbox {
  const parsed = Sandbox.safeParse(body);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ApiRefusal(400, 'Invalid', `the body is not a valid Sandbox: ${issues.join('; ')}`);
  }
  const sbx = parsed.data;
  const name = `${sbx.metadata.namespace}/${sbx.metadata.name}`;
  if (!sbx.metadata.uid || sbx.metadata.uid !== uid)
    throw new ApiRefusal(
      400,
      'UIDMismatch',
      `metadata.uid ${sbx.metadata.uid ?? '(none)'} differs from the path UID ${uid}`,
      name,
    );
  if (!sbx.metadata.namespace || !sbx.metadata.name)
    throw new ApiRefusal(400, 'Invalid', 'metadata.namespace and metadata.name are required', name);
  const bound = sbx.status?.nodeName ?? sbx.spec.nodeName;
  if (bound && bound !== node)
    throw new ApiRefusal(409, 'WrongNode', `the sandbox is bound to node ${bound}, this agent runs on ${node}`, name);
  return sbx;
}

/** The PUT body's pull Secrets, kept with the parsed Sandbox (node-agent/images/pull-secrets.ts); a malformed list is refused. */
function holdPullSecretsOf(sbx: Sandbox, body: unknown): void {
  try {
    holdPullSecrets(sbx, body);
  } catch (err) {
    throw new ApiRefusal(400, 'Invalid', (err as Error).message, `${sbx.metadata.namespace}/${sbx.metadata.name}`);
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new ApiRefusal(413, 'TooLarge', `request bodies are limited to ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new ApiRefusal(400, 'Invalid', 'the body is not JSON');
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * The reason the controller sees for a failed runtime step: a subsystem's own
 * reason when it has one (the network's HostPortInUse, HostPortConflict, ...,
 * the same word the sandbox's NetworkReady condition carries), else the errno
 * name of a failed syscall, else RuntimeError.
 */
export function runtimeReason(err: SandpitError): string {
  return err.reason || err.code || 'RuntimeError';
}

/**
 * Routes the agent API onto the runtime. Work on one sandbox is serialised
 * (a PUT racing a DELETE of the same UID must not interleave); different
 * sandboxes proceed in parallel.
 */
export class AgentRouter {
  readonly #chains = new Map<string, Promise<unknown>>();

  /** `onPut` sees each accepted Sandbox before the runtime applies it (the status reporter keeps it as its starting point). */
  constructor(
    readonly runtime: SandboxRuntime,
    readonly node: string,
    readonly log: Logger,
    readonly onPut: (sbx: Sandbox) => void = () => undefined,
  ) {}

  #serial<T>(uid: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#chains.get(uid) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.#chains.set(uid, tail);
    void tail.then(() => {
      if (this.#chains.get(uid) === tail) this.#chains.delete(uid);
    });
    return next;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://agent');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    try {
      if (`/${parts[0]}` !== API_PREFIX || parts[1] !== 'sandboxes')
        throw new ApiRefusal(404, 'NotFound', `no such path ${url.pathname}`);
      const uid = parts[2];
      const method = req.method ?? 'GET';
      if (uid === undefined) {
        if (method !== 'GET')
          throw new ApiRefusal(405, 'MethodNotAllowed', `${method} is not allowed on the sandbox list`);
        const list: ListResponse = { node: this.node, items: this.runtime.list() };
        return send(res, 200, list);
      }
      if (parts.length > 3) return this.#streams(parts.slice(3), uid);
      switch (method) {
        case 'PUT': {
          const body = await readJson(req);
          const sbx = parsePutBody(uid, body, this.node);
          holdPullSecretsOf(sbx, body);
          this.onPut(sbx);
          const obs = await this.#serial(uid, async () => {
            const cur = this.runtime.get(uid);
            if (cur && cur.generation === sbx.metadata.generation) return cur; // idempotent by UID and generation
            return this.runtime.apply(sbx);
          });
          return send(res, 200, obs);
        }
        case 'DELETE':
          await this.#serial(uid, () => this.runtime.remove(uid));
          return send(res, 200, { uid, removed: true });
        case 'GET': {
          const obs = this.runtime.get(uid);
          if (!obs) throw new ApiRefusal(404, 'NotFound', `no sandbox with UID ${uid} on node ${this.node}`);
          return send(res, 200, obs);
        }
        default:
          throw new ApiRefusal(405, 'MethodNotAllowed', `${method} is not allowed on a sandbox`);
      }
    } catch (err) {
      send(res, ...this.#errorBody(err));
    }
  }

  #streams(rest: string[], uid: string): never {
    const what =
      rest[0] === 'exec' ? 'exec' : rest[0] === 'containers' && rest[2] === 'log' ? 'log streaming' : undefined;
    if (!what) throw new ApiRefusal(404, 'NotFound', `no such sandbox sub-resource ${rest.join('/')}`);
    throw new ApiRefusal(
      400,
      'UpgradeRequired',
      `${what} for sandbox ${uid} is a WebSocket stream: upgrade with the v5.channel.k8s.io subprotocol`,
    );
  }

  #errorBody(err: unknown): [number, ApiErrorBody] {
    if (err instanceof ApiRefusal)
      return [
        err.status,
        { reason: err.reason, message: err.detail, ...(err.sandbox ? { sandbox: err.sandbox } : {}) },
      ];
    if (err instanceof SandpitError) {
      this.log.warn({ sandbox: err.sandbox, step: err.step, err: err.message }, 'Runtime step failed');
      return [
        500,
        {
          reason: runtimeReason(err),
          message: err.message,
          step: err.step,
          ...(err.sandbox ? { sandbox: err.sandbox } : {}),
        },
      ];
    }
    this.log.error({ err: (err as Error).message, stack: (err as Error).stack }, 'Unexpected agent API error');
    return [500, { reason: 'InternalError', message: (err as Error).message }];
  }
}
