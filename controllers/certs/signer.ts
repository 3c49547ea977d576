import type { Logger } from '../../lib/log.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { paths, type ObjectList } from '../../lib/kube/resources.js';
import { AGENT_SIGNER } from '../../lib/pki/names.js';
import { signCSR, type PemPair } from '../../lib/pki/x509.js';
import { agentCommonName } from '../../protocol/agent-api.js';

export interface CSR {
  metadata: { name: string; resourceVersion?: string; uid?: string };
  spec: {
    request: string;
    signerName: string;
    usages?: string[];
    username?: string;
    extra?: Record<string, string[]>;
  };
  status?: { certificate?: string; conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';

/**
 * The decision about one agent CSR, pure: approve it for the node bound to
 * the requester's token, or deny it and say why. The node comes from the
 * token the API server authenticated, never from the CSR text, so an agent
 * can only get a certificate for the node its pod runs on.
 */
export function reviewAgentCSR(csr: CSR, agentUsername: string): { node: string } | { denied: string } {
  if (csr.spec.username !== agentUsername)
    return {
      denied: `requested by ${csr.spec.username ?? 'nobody'}, not by the agent ServiceAccount ${agentUsername}`,
    };
  const node = csr.spec.extra?.[NODE_NAME_EXTRA]?.[0];
  if (!node) return { denied: 'the requester token is not bound to a pod on a node (no node-name in its extra info)' };
  const usages = csr.spec.usages ?? [];
  if (
    !usages.includes('server auth') ||
    usages.some((u) => !['server auth', 'digital signature', 'key encipherment'].includes(u))
  ) {
    return {
      denied: `usages must be server auth (plus digital signature, key encipherment), got ${usages.join(', ')}`,
    };
  }
  return { node };
}

const decided = (csr: CSR) =>
  Boolean(csr.status?.certificate) ||
  (csr.status?.conditions ?? []).some((c) => c.type === 'Denied' || c.type === 'Failed');

/**
 * Approves and signs agent serving-certificate requests (signerName
 * sandpit.dev/agent-serving). Runs on the leader only; the certificate names
 * the node (DNS SAN) so the controller can check it is talking to the agent
 * of the node it means to.
 */
export class AgentCertificateSigner {
  #timer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(
    readonly client: KubeClient,
    readonly ca: PemPair,
    readonly agentUsername: string,
    readonly days: number,
    readonly log: Logger,
  ) {}

  start(intervalMs = 2_000): void {
    const tick = () => {
      if (this.#busy) return;
      this.#busy = true;
      this.signPending()
        .catch((err: Error) => this.log.warn({ err: err.message }, 'Signing agent certificates failed; retrying'))
        .finally(() => (this.#busy = false));
    };
    tick();
    this.#timer = setInterval(tick, intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  async signPending(): Promise<void> {
    const list = await this.client.get<ObjectList<CSR>>(paths.csrs(), {
      fieldSelector: `spec.signerName=${AGENT_SIGNER}`,
    });
    for (const csr of list.items) {
      if (decided(csr)) continue;
      const verdict = reviewAgentCSR(csr, this.agentUsername);
      const conditions = csr.status?.conditions ?? [];
      if ('denied' in verdict) {
        this.log.warn({ csr: csr.metadata.name, why: verdict.denied }, 'Denied an agent certificate request');
        await this.client.replace(`${paths.csr(csr.metadata.name)}/approval`, {
          ...csr,
          status: {
            conditions: [
              ...conditions,
              { type: 'Denied', status: 'True', reason: 'SandpitPolicy', message: verdict.denied },
            ],
          },
        });
        continue;
      }
      let current = csr;
      if (!conditions.some((c) => c.type === 'Approved')) {
        current = await this.client.replace<CSR>(`${paths.csr(csr.metadata.name)}/approval`, {
          ...csr,
          status: {
            conditions: [
              ...conditions,
              {
                type: 'Approved',
                status: 'True',
                reason: 'SandpitAutoApproved',
                message: `serving certificate of the agent on ${verdict.node}`,
              },
            ],
          },
        });
      }
      const pem = await signCSR(Buffer.from(csr.spec.request, 'base64').toString('utf8'), this.ca, {
        commonName: agentCommonName(verdict.node),
        dnsNames: [verdict.node],
        usage: 'server',
        days: this.days,
      });
      await this.client.replace(`${paths.csr(csr.metadata.name)}/status`, {
        ...current,
        status: { ...current.status, certificate: Buffer.from(pem).toString('base64') },
      });
      this.log.info({ csr: csr.metadata.name, node: verdict.node }, 'Issued an agent serving certificate');
    }
  }
}
