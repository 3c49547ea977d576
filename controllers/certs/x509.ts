import { execFile } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/*
 * X.509 issuing through the openssl CLI: Node can parse certificates
 * (X509Certificate) but not build them, and a hand-written DER encoder is
 * more attack surface than a Debian openssl. Keys are EC P-256 made by Node.
 */

const run = promisify(execFile);

export interface PemPair {
  cert: string;
  key: string;
}

export type Usage = 'server' | 'client';

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'sandpit-x509-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const e = err as { stderr?: string; code?: string };
    if (e.code === 'ENOENT')
      throw new Error('openssl is not installed: sandpit issues certificates with it (apt-get install openssl)', {
        cause: err,
      });
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.trim() ?? String(err)}`, { cause: err });
  }
}

export function newKey(): string {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString();
}

/** A self-signed CA. */
export async function createCA(commonName: string, days: number): Promise<PemPair> {
  return withDir(async (dir) => {
    const key = newKey();
    await writeFile(join(dir, 'ca.key'), key, { mode: 0o600 });
    await openssl(
      [
        'req',
        '-x509',
        '-new',
        '-key',
        'ca.key',
        '-sha256',
        '-days',
        String(days),
        '-subj',
        `/CN=${commonName}`,
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
        '-out',
        'ca.crt',
      ],
      dir,
    );
    return { cert: await readFile(join(dir, 'ca.crt'), 'utf8'), key };
  });
}

/** A PKCS#10 request for `key`; the signer decides the final subject and names. */
export async function createCSR(key: string, commonName: string): Promise<string> {
  return withDir(async (dir) => {
    await writeFile(join(dir, 'k.pem'), key, { mode: 0o600 });
    await openssl(['req', '-new', '-key', 'k.pem', '-subj', `/CN=${commonName}`, '-out', 'r.csr'], dir);
    return readFile(join(dir, 'r.csr'), 'utf8');
  });
}

/**
 * Signs a CSR with the CA. Subject and SANs come from the caller (the signer's
 * policy), never from the request, so a requester cannot ask for a name it
 * does not own.
 */
export async function signCSR(
  csr: string,
  ca: PemPair,
  opts: {
    commonName: string;
    organizations?: string[];
    dnsNames?: string[];
    ipAddresses?: string[];
    usage: Usage;
    days: number;
  },
): Promise<string> {
  return withDir(async (dir) => {
    await writeFile(join(dir, 'r.csr'), csr);
    await writeFile(join(dir, 'ca.crt'), ca.cert);
    await writeFile(join(dir, 'ca.key'), ca.key, { mode: 0o600 });
    const san = [...(opts.dnsNames ?? []).map((d) => `DNS:${d}`), ...(opts.ipAddresses ?? []).map((i) => `IP:${i}`)];
    const ext = [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${opts.usage === 'server' ? 'serverAuth' : 'clientAuth'}`,
      ...(san.length ? [`subjectAltName=${san.join(',')}`] : []),
    ];
    await writeFile(join(dir, 'ext.cnf'), ext.join('\n') + '\n');
    const subject = ['/CN=' + opts.commonName, ...(opts.organizations ?? []).map((o) => '/O=' + o)].join('');
    await openssl(
      [
        'x509',
        '-req',
        '-in',
        'r.csr',
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-set_serial',
        '0x' + randomSerial(),
        '-days',
        String(opts.days),
        '-sha256',
        '-extfile',
        'ext.cnf',
        '-subj',
        subject,
        '-out',
        'out.crt',
      ],
      dir,
    );
    return readFile(join(dir, 'out.crt'), 'utf8');
  });
}

/** Issues a key and certificate in one go (the controller's own client certificate). */
export async function issue(ca: PemPair, opts: Parameters<typeof signCSR>[2]): Promise<PemPair> {
  const key = newKey();
  const csr = await createCSR(key, opts.commonName);
  return { key, cert: await signCSR(csr, ca, opts) };
}

function randomSerial(): string {
  return [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, '0'))
    .join('')
    .replace(/^[89a-f]/, '1');
}

/** When the certificate stops being valid, and the point after which it should be renewed (2/3 of its life). */
export function lifetime(certPem: string): { notAfter: Date; renewAt: Date } {
  const c = new X509Certificate(certPem);
  const from = new Date(c.validFrom).getTime();
  const to = new Date(c.validTo).getTime();
  return { notAfter: new Date(to), renewAt: new Date(from + ((to - from) * 2) / 3) };
}
