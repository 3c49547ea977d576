import { readFile } from 'node:fs/promises';
import type { Logger } from '../../lib/log.js';
import { isAlreadyExists, isNotFound, type KubeClient } from '../../lib/kube/client.js';
import { paths } from '../../lib/kube/resources.js';
import { CA_SECRET, CA_BUNDLE_CONFIGMAP } from '../../lib/pki/names.js';
import { createCA, issue, lifetime, type PemPair } from '../../lib/pki/x509.js';
import { CONTROLLER_CLIENT_CN } from '../../protocol/agent-api.js';

interface Secret {
  metadata: { name: string; namespace: string };
  type?: string;
  data?: Record<string, string>;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

/**
 * Returns the CA kept in a Secret, creating it when none exists. Two
 * replicas starting together both try to create; the loser reads the
 * winner's, so every certificate is signed by the same CA.
 */
export async function ensureCA(client: KubeClient, namespace: string, log: Logger, days = 3650): Promise<PemPair> {
  const read = async () => {
    const s = await client.get<Secret>(paths.secret(namespace, CA_SECRET));
    const pair = { cert: unb64(s.data?.['tls.crt']), key: unb64(s.data?.['tls.key']) };
    if (!pair.cert || !pair.key)
      throw new Error(
        `Secret ${namespace}/${CA_SECRET} lacks tls.crt or tls.key: delete it to let the controller create a new CA, or fill it`,
      );
    return pair;
  };
  try {
    return await read();
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const ca = await createCA('sandpit-ca', days);
  try {
    await client.create(paths.secrets(namespace), {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: CA_SECRET, namespace, labels: { 'app.kubernetes.io/part-of': 'sandpit' } },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': b64(ca.cert), 'tls.key': b64(ca.key), 'ca.crt': b64(ca.cert) },
    });
    log.info({ secret: `${namespace}/${CA_SECRET}` }, 'Created the sandpit CA');
    return ca;
  } catch (err) {
    if (isAlreadyExists(err)) return read();
    throw err;
  }
}

/** Publishes the CA certificate (never the key) where agents may read it. */
export async function publishCABundle(client: KubeClient, namespace: string, caCert: string): Promise<void> {
  const body = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: CA_BUNDLE_CONFIGMAP, namespace, labels: { 'app.kubernetes.io/part-of': 'sandpit' } },
    data: { 'ca.crt': caCert },
  };
  try {
    const cur = await client.get<{ data?: Record<string, string> }>(paths.configMap(namespace, CA_BUNDLE_CONFIGMAP));
    if (cur.data?.['ca.crt'] !== caCert)
      await client.patch(paths.configMap(namespace, CA_BUNDLE_CONFIGMAP), { data: body.data });
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await client.create(paths.configMaps(namespace), body).catch((e: unknown) => {
      if (!isAlreadyExists(e)) throw e;
    });
  }
}

/** The controller's TLS material for talking to agents: the CA that signs agents, and its own client certificate. */
export interface ClientCredentials {
  ca: string;
  cert: string;
  key: string;
}

/**
 * Keeps the controller's client certificate fresh. With files (the
 * provided-certificates path: Helm, cert-manager) it rereads them; with the
 * in-cluster CA it reissues itself one before 2/3 of the lifetime has passed.
 */
export class ClientCertificate {
  #current: ClientCredentials | undefined;
  #renewAt = 0;

  constructor(readonly source: { files: { ca: string; cert: string; key: string } } | { ca: PemPair; days: number }) {}

  async get(): Promise<ClientCredentials> {
    if (this.#current && Date.now() < this.#renewAt) return this.#current;
    if ('files' in this.source) {
      const f = this.source.files;
      const [ca, cert, key] = await Promise.all([
        readFile(f.ca, 'utf8'),
        readFile(f.cert, 'utf8'),
        readFile(f.key, 'utf8'),
      ]);
      this.#current = { ca, cert, key };
      this.#renewAt = Date.now() + 60_000; // reread a minute later: rotated files are picked up without a restart
    } else {
      const pair = await issue(this.source.ca, {
        commonName: CONTROLLER_CLIENT_CN,
        usage: 'client',
        days: this.source.days,
      });
      this.#current = { ca: this.source.ca.cert, ...pair };
      this.#renewAt = lifetime(pair.cert).renewAt.getTime();
    }
    return this.#current;
  }
}
