import { X509Certificate } from 'node:crypto';
import { SandpitError } from '../errors.js';
import { newKey, signingKey } from './keys.js';
import { utf8, x509 } from './provider.js';
import { createCSR } from './csr.js';

/*
 * X.509 issuing in process (@peculiar/x509 over Node's WebCrypto). The
 * contents are what the openssl CLI produced before, so certificates issued
 * by an older controller and by this one are alike: SHA-256 signatures, a
 * random positive 128-bit serial, subject and authority key identifiers, and
 * critical basic constraints and key usage.
 */

export interface PemPair {
  cert: string;
  key: string;
}

export type Usage = 'server' | 'client';

const DAY_MS = 86_400_000;
const { KeyUsageFlags } = x509;

/** Whole seconds: X.509 times have no fractions, and a notBefore in the future by a few ms would fail a strict peer. */
const now = () => new Date(Math.floor(Date.now() / 1000) * 1000);

function randomSerial(): string {
  return [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, '0'))
    .join('')
    .replace(/^[89a-f]/, '1');
}

/** A self-signed CA. */
export async function createCA(commonName: string, days: number): Promise<PemPair> {
  const key = newKey();
  const signer = await signingKey(key);
  const notBefore = now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [utf8(commonName)] }],
    notBefore,
    notAfter: new Date(notBefore.getTime() + days * DAY_MS),
    keys: signer.pair,
    signingAlgorithm: signer.algorithm,
    extensions: [
      await x509.SubjectKeyIdentifierExtension.create(signer.pair.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(signer.pair.publicKey),
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key };
}

/** The key identifier a certificate signed by `ca` names its issuer by: the CA's own, or one made from its key. */
async function authorityKeyId(ca: x509.X509Certificate): Promise<x509.AuthorityKeyIdentifierExtension> {
  const skid = ca.getExtension(x509.SubjectKeyIdentifierExtension);
  return skid
    ? new x509.AuthorityKeyIdentifierExtension(skid.keyId)
    : x509.AuthorityKeyIdentifierExtension.create(ca.publicKey);
}

/**
 * Signs a CSR with the CA. Subject and SANs come from the caller (the signer's
 * policy), never from the request, so a requester cannot ask for a name it
 * does not own; the request's own signature must hold, so it proves the
 * requester has the key.
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
  const step = 'sign certificate request';
  let request: x509.Pkcs10CertificateRequest;
  try {
    request = new x509.Pkcs10CertificateRequest(csr);
  } catch (err) {
    throw new SandpitError({ step, message: `not a PEM PKCS#10 request: ${(err as Error).message}`, cause: err });
  }
  if (!(await request.verify()))
    throw new SandpitError({ step, message: 'the request self-signature does not verify' });
  const caCert = new x509.X509Certificate(ca.cert);
  const signer = await signingKey(ca.key);
  const names = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const notBefore = now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [utf8(opts.commonName)] }, ...(opts.organizations ?? []).map((o) => ({ O: [utf8(o)] }))],
    issuer: caCert.subjectName,
    notBefore,
    notAfter: new Date(notBefore.getTime() + opts.days * DAY_MS),
    publicKey: request.publicKey,
    signingKey: signer.pair.privateKey,
    signingAlgorithm: signer.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([
        opts.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth,
      ]),
      ...(names.length ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      await x509.SubjectKeyIdentifierExtension.create(request.publicKey),
      await authorityKeyId(caCert),
    ],
  });
  return cert.toString('pem') + '\n';
}

/** Issues a key and certificate in one go (the controller's own client certificate). */
export async function issue(ca: PemPair, opts: Parameters<typeof signCSR>[2]): Promise<PemPair> {
  const key = newKey();
  const csr = await createCSR(key, opts.commonName);
  return { key, cert: await signCSR(csr, ca, opts) };
}

/** When the certificate stops being valid, and the point after which it should be renewed (2/3 of its life). */
export function lifetime(certPem: string): { notAfter: Date; renewAt: Date } {
  const c = new X509Certificate(certPem);
  const from = new Date(c.validFrom).getTime();
  const to = new Date(c.validTo).getTime();
  return { notAfter: new Date(to), renewAt: new Date(from + ((to - from) * 2) / 3) };
}
