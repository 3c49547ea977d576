import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { KubeConfig } from '@kubernetes/client-node';
import { AgentClient, AgentError } from '../../controllers/agentclient/client.js';
import { ClientCertificate } from '../../controllers/certs/authority.js';
import { createCSR } from '../../lib/pki/csr.js';
import { newKey } from '../../lib/pki/keys.js';
import { issue, type PemPair } from '../../lib/pki/x509.js';
import { KubeClient } from '../../lib/kube/client.js';
import { createLogger } from '../../lib/log.js';
import { AgentCertificates } from '../../node-agent/api/certificates.js';
import type { ListResponse } from '../../protocol/agent-api.js';
import { MtlsServer, type ServingTLS } from '../../node-agent/api/server.js';
import { sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { TestPki } from '../harness/pki.js';
import {
  agentKubeconfig,
  applyCRDs,
  applyManifests,
  startController,
  waitFor,
  type ControllerProcess,
} from './sandpit-processes.js';

/*
 * Certificates end to end and the agent API's mutual TLS: the controller
 * creates its CA, an agent gets a serving certificate through a CSR made
 * with its pod-bound token, and the agent's TLS server (the production
 * MtlsServer) lets only the controller's client certificate through. The
 * handler behind it answers a fixed list: what is under test is who gets
 * to it, not the runtime.
 */
describe('cluster: agent API mutual TLS and certificates', function () {
  this.timeout(180_000);
  const node = 'mtls-a';
  let cp: ControlPlane;
  let controller: ControllerProcess;
  let agentClient: KubeClient;
  let certs: AgentCertificates;
  let tls: ServingTLS;
  let server: MtlsServer;
  let endpoint: string;
  let port: number;
  let ca: PemPair;
  let reached = 0;
  const log = createLogger('test');

  /** A raw HTTPS GET of the agent list with the given client credentials; resolves the status or rejects on a TLS refusal. */
  const rawGet = (client?: { cert: string; key: string }) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/v1/sandboxes',
          ca: tls.clientCA,
          servername: node,
          agent: false,
          ...(client ?? {}),
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end();
    });

  before(async () => {
    cp = await sharedControlPlane();
    await applyCRDs(cp);
    await applyManifests(cp);
    controller = await startController(cp, 'mtls', ['--namespace', 'sandpit-system', '--leader-elect', 'false']);
    const kc = new KubeConfig();
    kc.loadFromFile(await agentKubeconfig(cp, node));
    agentClient = await KubeClient.fromKubeConfig(kc);
    certs = new AgentCertificates(
      agentClient,
      node,
      { kind: 'csr', namespace: 'sandpit-system', timeoutMs: 90_000 },
      log,
    );
    tls = await certs.obtain();
    server = new MtlsServer(
      tls,
      async (_req, res) => {
        reached++;
        const body: ListResponse = { node, items: [] };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      },
      log,
    );
    port = await server.listen('127.0.0.1', 0);
    endpoint = `https://127.0.0.1:${port}`;
    const secret = JSON.parse(
      (await cp.kubectl(['-n', 'sandpit-system', 'get', 'secret', 'sandpit-ca', '-o', 'json'])).stdout,
    ) as { data: Record<string, string> };
    ca = {
      cert: Buffer.from(secret.data['tls.crt']!, 'base64').toString(),
      key: Buffer.from(secret.data['tls.key']!, 'base64').toString(),
    };
  });

  after(async () => {
    await server?.close();
    await controller?.stop();
  });

  it('issues the agent a serving certificate for its own node, signed by the CA the controller created', () => {
    const cert = new X509Certificate(tls.cert);
    assert.equal(cert.subjectAltName, `DNS:${node}`);
    assert.ok(cert.verify(new X509Certificate(ca.cert).publicKey), 'signed by the sandpit CA');
    assert.equal(tls.clientCA.trim(), ca.cert.trim(), 'the CA bundle the agent trusts is the published one');
  });

  it('serves the controller, which checks that it reached the agent of the node it meant', async () => {
    const agents = new AgentClient(new ClientCertificate({ ca, days: 1 }));
    assert.deepEqual(await agents.list(node, endpoint), []);
    await assert.rejects(
      agents.list('mtls-b', endpoint),
      (e: AgentError) => e instanceof AgentError && e.reason === 'Unreachable' && /mtls-b/.test(e.message),
    );
    agents.close();
  });

  it('refuses a client without a certificate at the TLS handshake', async () => {
    const before = reached;
    await assert.rejects(rawGet(), /certificate|socket hang up|ECONNRESET|alert/i);
    assert.equal(reached, before);
  });

  it('refuses a client certificate from another CA, even with the controller CN', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sandpit-foreign-'));
    const other = await TestPki.create(dir, 'foreign-ca');
    const pair = await other.issue('impostor', { commonName: 'sandpit-controller', usage: 'client' });
    const client = { cert: await readFile(pair.cert, 'utf8'), key: await readFile(pair.key, 'utf8') };
    await rm(dir, { recursive: true, force: true });
    const before = reached;
    await assert.rejects(rawGet(client), /certificate|socket hang up|ECONNRESET|alert/i);
    assert.equal(reached, before);
  });

  it("refuses a sandpit-CA client certificate that is not the controller's (403, JSON reason)", async () => {
    const mallory = await issue(ca, { commonName: 'mallory', usage: 'client', days: 1 });
    const before = reached;
    const res = await rawGet(mallory);
    assert.equal(res.status, 403);
    assert.equal((JSON.parse(res.body) as { reason: string }).reason, 'Forbidden');
    assert.equal(reached, before);
  });

  it('refuses an agent serving certificate used as a client certificate', async () => {
    const before = reached;
    const outcome = await rawGet({ cert: tls.cert, key: tls.key }).then(
      (r) => r.status,
      () => 'refused',
    );
    assert.notEqual(outcome, 200);
    assert.equal(reached, before);
  });

  it('denies a CSR for the agent signer from anyone but the agent ServiceAccount', async () => {
    const csr = await createCSR(newKey(), 'system:sandpit-agent:mtls-a');
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'certificates.k8s.io/v1',
        kind: 'CertificateSigningRequest',
        metadata: { name: 'not-an-agent' },
        spec: {
          request: Buffer.from(csr).toString('base64'),
          signerName: 'sandpit.dev/agent-serving',
          usages: ['digital signature', 'key encipherment', 'server auth'],
        },
      }),
    });
    const denied = await waitFor('the CSR denied', async () => {
      const r = JSON.parse((await cp.kubectl(['get', 'csr', 'not-an-agent', '-o', 'json'])).stdout) as {
        status?: { certificate?: string; conditions?: { type: string; message: string }[] };
      };
      assert.equal(r.status?.certificate, undefined);
      return r.status?.conditions?.find((c) => c.type === 'Denied');
    });
    assert.match(denied.message, /not by the agent ServiceAccount/);
  });

  it('rotates the serving certificate in place: new connections see the new one, the server is not restarted', async () => {
    const client = await issue(ca, { commonName: 'sandpit-controller', usage: 'client', days: 1 });
    const serial = () =>
      new Promise<string>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            path: '/v1/sandboxes',
            ca: tls.clientCA,
            servername: node,
            agent: false,
            ...client,
          },
          (res) => {
            const peer = (res.socket as TLSSocket).getPeerCertificate();
            res.resume();
            resolve(peer.serialNumber);
          },
        );
        req.on('error', reject);
        req.end();
      });
    const first = await serial();
    const fresh = await certs.obtain();
    server.setTLS(fresh);
    const second = await serial();
    assert.notEqual(first, second);
    assert.equal(second.toLowerCase(), new X509Certificate(fresh.cert).serialNumber.toLowerCase());
  });
});
