import { readFile } from 'node:fs/promises';
import { createCSR } from '../../lib/pki/csr.js';
import { newKey } from '../../lib/pki/keys.js';
import { AGENT_SIGNER, CA_BUNDLE_CONFIGMAP } from '../../lib/pki/names.js';
import { lifetime } from '../../lib/pki/x509.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { paths } from '../../lib/kube/resources.js';
import { agentCommonName } from '../../protocol/agent-api.js';
import { SandpitError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { ServingTLS } from './server.js';

export type CertificateSource =
  | { kind: 'files'; clientCA: string; cert: string; key: string }
  | { kind: 'csr'; namespace: string; timeoutMs: number };

interface CsrObject {
  metadata: { name: string };
  status?: { certificate?: string; conditions?: { type: string; message?: string }[] };
}

/**
 * The agent's serving certificate. Provided files are reread on every
 * refresh; otherwise the agent makes a key that never leaves the node, asks
 * for a certificate through a CertificateSigningRequest (signer
 * sandpit.dev/agent-serving; the controller signs it for the node its pod
 * token is bound to) and trusts the CA bundle the controller publishes.
 */
export class AgentCertificates {
  #renewAt = 0;

  constructor(
    readonly client: KubeClient,
    readonly node: string,
    readonly source: CertificateSource,
    readonly log: Logger,
  ) {}

  /** True once the current certificate is past 2/3 of its life (or none was loaded). */
  get dueForRenewal(): boolean {
    return Date.now() >= this.#renewAt;
  }

  async obtain(): Promise<ServingTLS> {
    const tls =
      this.source.kind === 'files'
        ? await this.#fromFiles(this.source)
        : await this.#fromCSR(this.source.namespace, this.source.timeoutMs);
    this.#renewAt = this.source.kind === 'files' ? Date.now() + 60_000 : lifetime(tls.cert).renewAt.getTime();
    return tls;
  }

  async #fromFiles(f: { clientCA: string; cert: string; key: string }): Promise<ServingTLS> {
    const [clientCA, cert, key] = await Promise.all([
      readFile(f.clientCA, 'utf8'),
      readFile(f.cert, 'utf8'),
      readFile(f.key, 'utf8'),
    ]);
    return { clientCA, cert, key };
  }

  async #caBundle(namespace: string, deadline: number): Promise<string> {
    for (;;) {
      try {
        const cm = await this.client.get<{ data?: Record<string, string> }>(
          paths.configMap(namespace, CA_BUNDLE_CONFIGMAP),
        );
        if (cm.data?.['ca.crt']) return cm.data['ca.crt'];
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
      if (Date.now() > deadline) throw new Error(`ConfigMap ${namespace}/${CA_BUNDLE_CONFIGMAP} has no ca.crt`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  async #fromCSR(namespace: string, timeoutMs: number): Promise<ServingTLS> {
    const deadline = Date.now() + timeoutMs;
    const hint =
      'is sandpit-controller running (it creates the CA and signs agent certificates), and does the agent ServiceAccount token come from a pod on this node?';
    try {
      const clientCA = await this.#caBundle(namespace, deadline);
      const key = newKey();
      const request = await createCSR(key, agentCommonName(this.node));
      const name = `sandpit-agent-${this.node}-${Date.now().toString(36)}`.slice(0, 253);
      await this.client.create(paths.csrs(), {
        apiVersion: 'certificates.k8s.io/v1',
        kind: 'CertificateSigningRequest',
        metadata: { name, labels: { 'sandpit.dev/node': this.node } },
        spec: {
          request: Buffer.from(request).toString('base64'),
          signerName: AGENT_SIGNER,
          usages: ['digital signature', 'key encipherment', 'server auth'],
        },
      });
      this.log.info({ csr: name }, 'Requested a serving certificate');
      for (;;) {
        const csr = await this.client.get<CsrObject>(paths.csr(name));
        const denied = csr.status?.conditions?.find((c) => c.type === 'Denied' || c.type === 'Failed');
        if (denied) throw new Error(`CSR ${name} was ${denied.type.toLowerCase()}: ${denied.message ?? ''}`);
        if (csr.status?.certificate) {
          const cert = Buffer.from(csr.status.certificate, 'base64').toString('utf8');
          return { clientCA, cert, key };
        }
        if (Date.now() > deadline) throw new Error(`CSR ${name} not signed within ${Math.round(timeoutMs / 1000)} s`);
        await new Promise((r) => setTimeout(r, 500));
      }
    } catch (err) {
      throw new SandpitError({ step: 'obtain serving certificate', message: (err as Error).message, hint, cause: err });
    }
  }
}
