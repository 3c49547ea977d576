import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Paths of one certificate and its key, PEM. */
export interface KeyPair {
  cert: string;
  key: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await run('openssl', args, { cwd });
}

/**
 * A throwaway certificate authority for a test control plane, made with the
 * openssl CLI (Node has no X.509 issuing API). EC P-256 keys keep it fast.
 */
export class TestPki {
  readonly ca: KeyPair;

  private constructor(readonly dir: string) {
    this.ca = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  }

  static async create(dir: string, commonName = 'sandpit-test-ca'): Promise<TestPki> {
    await mkdir(dir, { recursive: true });
    const pki = new TestPki(dir);
    await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
    await openssl(
      [
        'req',
        '-x509',
        '-new',
        '-key',
        'ca.key',
        '-sha256',
        '-days',
        '3650',
        '-subj',
        `/CN=${commonName}`,
        '-out',
        'ca.crt',
      ],
      dir,
    );
    return pki;
  }

  /**
   * Issues a certificate signed by the CA. `organizations` become O= entries,
   * which the API server reads as groups (system:masters for the admin).
   */
  async issue(
    name: string,
    opts: {
      commonName: string;
      organizations?: string[];
      dnsNames?: string[];
      ipAddresses?: string[];
      usage: 'server' | 'client' | 'both';
    },
  ): Promise<KeyPair> {
    const pair = { cert: join(this.dir, `${name}.crt`), key: join(this.dir, `${name}.key`) };
    const subject = ['/CN=' + opts.commonName, ...(opts.organizations ?? []).map((o) => '/O=' + o)].join('');
    const san = [...(opts.dnsNames ?? []).map((d) => `DNS:${d}`), ...(opts.ipAddresses ?? []).map((i) => `IP:${i}`)];
    const eku = { server: 'serverAuth', client: 'clientAuth', both: 'serverAuth,clientAuth' }[opts.usage];
    const ext = [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${eku}`,
      ...(san.length ? [`subjectAltName=${san.join(',')}`] : []),
    ].join('\n');
    await writeFile(join(this.dir, `${name}.ext`), ext + '\n');
    await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], this.dir);
    await openssl(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`], this.dir);
    await openssl(
      [
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-days',
        '3650',
        '-sha256',
        '-extfile',
        `${name}.ext`,
        '-out',
        `${name}.crt`,
      ],
      this.dir,
    );
    return pair;
  }

  /** An RSA key pair for signing ServiceAccount tokens. */
  async serviceAccountKey(): Promise<{ privateKey: string; publicKey: string }> {
    await openssl(['genrsa', '-out', 'sa.key', '2048'], this.dir);
    await openssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], this.dir);
    return { privateKey: join(this.dir, 'sa.key'), publicKey: join(this.dir, 'sa.pub') };
  }
}
