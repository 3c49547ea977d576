import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { createLogger } from '../../lib/log.js';
import { MtlsServer } from '../../node-agent/api/server.js';
import { CHANNEL_PROTOCOL } from '../../protocol/streams.js';
import { StreamRouter } from '../../node-agent/api/streams/router.js';
import { TestPki } from '../harness/pki.js';

/*
 * Who may open a stream on the agent: the production MtlsServer and
 * StreamRouter, with certificates from one CA. Only the controller's client
 * certificate gets past the upgrade; another certificate from the same CA
 * (say, an agent's) is refused before anything starts, and a client without
 * one fails the TLS handshake. The runtime is not under test here (none is
 * attached, so an admitted stream is answered 501).
 */
describe('cluster: agent stream upgrades accept only the controller (mTLS)', function () {
  this.timeout(60_000);
  let dir: string;
  let server: MtlsServer;
  let router: StreamRouter;
  let port: number;
  let ca: string;
  const pem: Record<string, { cert: string; key: string }> = {};

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sandpit-streams-mtls-'));
    const pki = await TestPki.create(dir);
    ca = await readFile(pki.ca.cert, 'utf8');
    const issued = {
      serving: await pki.issue('agent', {
        commonName: 'node-x',
        dnsNames: ['node-x'],
        ipAddresses: ['127.0.0.1'],
        usage: 'server',
      }),
      controller: await pki.issue('controller', { commonName: 'sandpit-controller', usage: 'client' }),
      intruder: await pki.issue('intruder', { commonName: 'node-y', usage: 'both' }),
    };
    for (const [k, v] of Object.entries(issued))
      pem[k] = { cert: await readFile(v.cert, 'utf8'), key: await readFile(v.key, 'utf8') };
    const log = createLogger('test');
    server = new MtlsServer({ clientCA: ca, ...pem.serving! }, () => Promise.resolve(), log);
    router = new StreamRouter(undefined, log);
    server.onUpgrade((req, socket, head) => router.upgrade(req, socket, head));
    port = await server.listen('127.0.0.1', 0);
  });

  after(async () => {
    router?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const open = (client?: { cert: string; key: string }) =>
    new Promise<{ status: number; body: string } | 'open'>((resolve, reject) => {
      const ws = new WebSocket(
        `wss://127.0.0.1:${port}/v1/sandboxes/u-1/exec?container=main&command=true`,
        [CHANNEL_PROTOCOL],
        { ca, ...(client ?? {}) },
      );
      ws.once('open', () => {
        ws.terminate();
        resolve('open');
      });
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      ws.once('error', reject);
    });

  it('lets the controller through to the stream router', async () => {
    const r = await open(pem.controller);
    assert.notEqual(r, 'open');
    assert.equal(
      (r as { status: number }).status,
      501,
      'past the client check: the router answers (no runtime attached)',
    );
  });

  it('refuses another certificate of the same CA before the upgrade, with a reason', async () => {
    const r = await open(pem.intruder);
    assert.notEqual(r, 'open');
    assert.equal((r as { status: number }).status, 403);
    assert.match((r as { body: string }).body, /CN node-y is not sandpit-controller/);
  });

  it('refuses a client without a certificate in the TLS handshake', async () => {
    await assert.rejects(open());
  });
});
