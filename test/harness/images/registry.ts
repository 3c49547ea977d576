import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createSign, randomBytes, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/*
 * Real registries for the image tests: Debian's docker-registry (distribution
 * 2.8) on 127.0.0.1, open, with htpasswd basic auth, or with token auth backed
 * by a small token endpoint here that signs ES256 JWTs with a key whose
 * certificate the registry trusts. Nothing leaves 127.0.0.1.
 */

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface TestRegistry {
  host: string;
  dir: string;
  /** Path of a blob's data file in the registry's storage (to corrupt it). */
  blobFile(digest: string): string;
  stop(): Promise<void>;
}

export interface TokenServer {
  url: string;
  /** Requests seen, for cache assertions. */
  requests: { scope: string[]; user: string | undefined }[];
  stop(): Promise<void>;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/** A token endpoint granting pull/push on any repository to `user:password` (and nothing to anonymous callers). */
export async function startTokenServer(opts: {
  keyPem: string;
  certPem: string;
  issuer: string;
  service: string;
  user: string;
  password: string;
}): Promise<TokenServer & { starveNext: (n: number) => void }> {
  let starve = 0;
  const x5c = [new X509Certificate(opts.certPem).raw.toString('base64')];
  const requests: TokenServer['requests'] = [];
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const auth = req.headers.authorization;
    let user: string | undefined;
    if (auth?.startsWith('Basic ')) {
      const [n, p] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
      if (n !== opts.user || p !== opts.password) {
        res.writeHead(401).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
      user = n;
    }
    const scopes = u.searchParams.getAll('scope');
    requests.push({ scope: scopes, user });
    const access =
      user && starve-- <= 0
        ? scopes.map((s) => {
            const [type, name, actions] = s.split(':');
            return { type, name, actions: (actions ?? '').split(',') };
          })
        : [];
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'ES256', typ: 'JWT', x5c };
    const claims = {
      iss: opts.issuer,
      sub: user ?? '',
      aud: opts.service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    };
    const signing = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('SHA256').update(signing).sign({ key: opts.keyPem, dsaEncoding: 'ieee-p1363' });
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ token: `${signing}.${b64url(sig)}`, expires_in: 300 }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/token`,
    requests,
    /** The next n tokens grant nothing, so the registry answers insufficient_scope. */
    starveNext: (n) => (starve = n),
    stop: () => new Promise((r) => server.close(() => r())),
  };
}

/** A CA and a server certificate for 127.0.0.1 signed by it, for the TLS registry. */
export function makeServerCert(dir: string): { caPem: string; certPath: string; keyPath: string } {
  const f = (n: string) => join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=sandpit-test-ca',
  );
  ssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    f('srv.key'),
    '-out',
    f('srv.csr'),
    '-subj',
    '/CN=127.0.0.1',
  );
  writeFileSync(f('srv.ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl(
    'x509',
    '-req',
    '-in',
    f('srv.csr'),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('srv.crt'),
    '-days',
    '2',
    '-extfile',
    f('srv.ext'),
  );
  return { caPem: readFileSync(f('ca.crt'), 'utf8'), certPath: f('srv.crt'), keyPath: f('srv.key') };
}

/** An EC P-256 key and a self-signed certificate for token signing. */
export function makeSigningKey(dir: string): { keyPem: string; certPem: string; certPath: string } {
  const key = join(dir, 'token.key');
  const cert = join(dir, 'token.crt');
  execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key], { stdio: 'ignore' });
  execFileSync(
    'openssl',
    ['req', '-new', '-x509', '-key', key, '-out', cert, '-days', '2', '-subj', '/CN=sandpit-test-token'],
    { stdio: 'ignore' },
  );
  return { keyPem: readFileSync(key, 'utf8'), certPem: readFileSync(cert, 'utf8'), certPath: cert };
}

export async function startRegistry(
  auth:
    | { kind: 'none' }
    | { kind: 'htpasswd'; user: string; password: string }
    | { kind: 'token'; realm: string; service: string; issuer: string; certPath: string },
  opts: { tls?: { certPath: string; keyPath: string } } = {},
): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'sandpit-registry-'));
  const port = await freePort();
  let authYaml = '';
  if (auth.kind === 'htpasswd') {
    const file = join(dir, 'htpasswd');
    execFileSync('htpasswd', ['-Bbc', file, auth.user, auth.password], { stdio: 'ignore' });
    authYaml = `auth:\n  htpasswd:\n    realm: sandpit-test\n    path: ${file}\n`;
  } else if (auth.kind === 'token') {
    authYaml = `auth:\n  token:\n    realm: ${auth.realm}\n    service: ${auth.service}\n    issuer: ${auth.issuer}\n    rootcertbundle: ${auth.certPath}\n`;
  }
  mkdirSync(join(dir, 'data'));
  const config = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${join(dir, 'data')}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: ${randomBytes(8).toString('hex')}
${opts.tls ? `  tls:\n    certificate: ${opts.tls.certPath}\n    key: ${opts.tls.keyPath}\n` : ''}${authYaml}`;
  writeFileSync(join(dir, 'config.yml'), config);
  const child: ChildProcess = spawn('/usr/bin/docker-registry', ['serve', join(dir, 'config.yml')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1', () => {
        s.end();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (up) break;
    if (i > 100 || child.exitCode !== null) throw new Error(`docker-registry did not start: ${stderr}`);
    await sleep(50);
  }
  return {
    host: `127.0.0.1:${port}`,
    dir,
    blobFile: (digest) =>
      join(dir, 'data/docker/registry/v2/blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data'),
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A front for a registry that answers blob GETs with a 307 to a "CDN" on
 * another host (127.0.0.2). The CDN records the Authorization header it got
 * and fetches the blob from the registry with its own credentials.
 */
export async function startRedirectingFront(
  target: string,
  cdnAuth: string,
): Promise<{ host: string; cdnAuthorization: (string | undefined)[]; stop(): Promise<void> }> {
  const [thost, tport] = target.split(':');
  const cdnAuthorization: (string | undefined)[] = [];
  const forward = (
    req: import('node:http').IncomingMessage,
    res: import('node:http').ServerResponse,
    headers: Record<string, string | string[] | undefined>,
  ) => {
    const up = httpRequest({ host: thost, port: Number(tport), method: req.method, path: req.url, headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.socket?.destroy());
    req.pipe(up);
  };
  const cdn = createServer((req, res) => {
    cdnAuthorization.push(req.headers.authorization);
    forward(req, res, { ...req.headers, host: target, authorization: cdnAuth });
  });
  await new Promise<void>((r) => cdn.listen(0, '127.0.0.2', r));
  const cdnPort = (cdn.address() as AddressInfo).port;
  const front = createServer((req, res) => {
    if (req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '')) {
      res.writeHead(307, { location: `http://127.0.0.2:${cdnPort}${req.url}` }).end();
      return;
    }
    forward(req, res, { ...req.headers, host: target });
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  const { port } = front.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    cdnAuthorization,
    stop: async () => {
      for (const s of [front, cdn]) {
        s.closeAllConnections();
        await new Promise<void>((r) => s.close(() => r()));
      }
    },
  };
}

/**
 * A TCP-level HTTP proxy in front of a registry that cuts the connection half
 * way through the first full (non-Range) response of each listed blob, so the
 * client has to resume with Range.
 */
export async function startCuttingProxy(
  target: string,
  cutDigests: Set<string>,
): Promise<{ host: string; rangeRequests: string[]; cuts: string[]; stop(): Promise<void> }> {
  const [thost, tport] = target.split(':');
  const rangeRequests: string[] = [];
  const cuts: string[] = [];
  const server = createServer((req, res) => {
    const digest = /\/blobs\/(sha256:[a-f0-9]{64})/.exec(req.url ?? '')?.[1];
    if (digest && req.headers.range) rangeRequests.push(`${digest} ${req.headers.range}`);
    const up = httpRequest(
      { host: thost, port: Number(tport), method: req.method, path: req.url, headers: req.headers },
      (ur) => {
        const cut = digest !== undefined && cutDigests.has(digest) && !req.headers.range && ur.statusCode === 200;
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        if (!cut) {
          ur.pipe(res);
          return;
        }
        cutDigests.delete(digest);
        const total = Number(ur.headers['content-length']);
        let sent = 0;
        ur.on('data', (c: Buffer) => {
          if (sent >= total / 2) return;
          const take = c.subarray(0, Math.max(0, Math.ceil(total / 2) - sent));
          sent += take.length;
          res.write(take);
          if (sent >= total / 2) {
            cuts.push(digest);
            ur.destroy();
            res.socket?.destroy();
          }
        });
      },
    );
    up.on('error', () => res.socket?.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    rangeRequests,
    cuts,
    stop: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
