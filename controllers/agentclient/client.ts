import { checkServerIdentity, createSecureContext, type PeerCertificate } from 'node:tls';
import { Agent, request } from 'node:https';
import type { Sandbox } from '../../crds/sandbox.js';
import type { SandboxObservation } from '../../protocol/agent-api.js';
import {
  sandboxesPath,
  sandboxPath,
  type ApiErrorBody,
  type DeleteResponse,
  type ListResponse,
  type PullSecretData,
  type PutBody,
} from '../../protocol/agent-api.js';
import { SandpitError } from '../../lib/errors.js';
import type { ClientCertificate, ClientCredentials } from '../certs/authority.js';

/**
 * An error answer (or no answer) from an agent; `reason` is the agent's
 * (its error body's), or Unreachable when no answer came, `status` 0 then.
 */
export class AgentError extends SandpitError {
  declare readonly reason: string;
  constructor(
    readonly node: string,
    readonly status: number,
    reason: string,
    message: string,
  ) {
    super({ step: `agent on ${node}`, message, reason });
    this.name = 'AgentError';
  }
}

/**
 * Talks to the agents over mutual TLS. The agent must present a certificate
 * from the sandpit CA whose DNS name is the node we meant to reach: the
 * endpoint comes from a SandboxNode an agent wrote, and this check is what
 * stops one node's agent from answering for another.
 */
export class AgentClient {
  #agent: Agent | undefined;
  #creds: ClientCredentials | undefined;

  constructor(
    readonly certificate: ClientCertificate,
    readonly timeoutMs = 30_000,
  ) {}

  async #httpsAgent(): Promise<Agent> {
    const creds = await this.certificate.get();
    if (creds !== this.#creds || !this.#agent) {
      this.#agent?.destroy();
      this.#creds = creds;
      // One TLS context per credentials, not one per connection (see KubeClient).
      this.#agent = new Agent({
        keepAlive: true,
        maxSockets: 16,
        secureContext: createSecureContext({ ca: creds.ca, cert: creds.cert, key: creds.key }),
      });
    }
    return this.#agent;
  }

  async #call<T>(
    node: string,
    endpoint: string,
    method: string,
    path: string,
    body?: unknown,
    timeoutMs = this.timeoutMs,
  ): Promise<T> {
    const agent = await this.#httpsAgent();
    const url = new URL(path, endpoint);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          agent,
          timeout: timeoutMs,
          headers: payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {},
          servername: node,
          checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(node, cert),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              parsed = undefined;
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) return resolve(parsed as T);
            const e = (parsed ?? {}) as Partial<ApiErrorBody>;
            reject(
              new AgentError(
                node,
                status,
                e.reason ?? 'Unknown',
                `${method} ${url.pathname}: ${status} ${e.reason ?? ''}: ${e.message ?? text.slice(0, 300)}`,
              ),
            );
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (err) =>
        reject(
          err instanceof AgentError
            ? err
            : new AgentError(node, 0, 'Unreachable', `${method} ${url.pathname}: ${err.message}`),
        ),
      );
      req.end(payload);
    });
  }

  /**
   * Hands the sandbox to the node, with the pull Secrets the controller read
   * for it; idempotent for the same UID and generation. The agent answers at
   * once with what it has (the create, a pull included, runs there in the
   * background and reports through status).
   */
  apply(
    node: string,
    endpoint: string,
    sandbox: Sandbox,
    pullSecrets: PullSecretData[] = [],
  ): Promise<SandboxObservation> {
    const body: PutBody<Sandbox> = pullSecrets.length ? { ...sandbox, pullSecrets } : sandbox;
    return this.#call(node, endpoint, 'PUT', sandboxPath(sandbox.metadata.uid ?? ''), body);
  }

  /**
   * Resolves once the agent confirms nothing of the sandbox is left on the
   * node. The agent answers after the containers' grace period (and a create
   * under way) ended, so the wait is the grace period plus the usual timeout.
   */
  async remove(node: string, endpoint: string, uid: string, graceSeconds = 0): Promise<void> {
    await this.#call<DeleteResponse>(
      node,
      endpoint,
      'DELETE',
      sandboxPath(uid),
      undefined,
      this.timeoutMs + graceSeconds * 1000,
    );
  }

  async list(node: string, endpoint: string): Promise<SandboxObservation[]> {
    return (await this.#call<ListResponse>(node, endpoint, 'GET', sandboxesPath())).items;
  }

  close(): void {
    this.#agent?.destroy();
  }
}
