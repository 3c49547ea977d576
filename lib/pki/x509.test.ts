import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { SandpitError } from '../errors.js';
import { createCSR } from './csr.js';
import { newKey } from './keys.js';
import { x509 } from './provider.js';
import { createCA, issue, lifetime, signCSR } from './x509.js';

const DAY = 86_400_000;
const ext = <T extends x509.Extension>(pem: string, type: new (raw: ArrayBuffer) => T) => {
  const e = new x509.X509Certificate(pem).getExtension(type as never) as T | null;
  assert.ok(e, `extension ${type.name}`);
  return e;
};

describe('unit: lib/pki certificates (in process, the contents the openssl CLI gave)', () => {
  let ca: Awaited<ReturnType<typeof createCA>>;
  before(async () => {
    ca = await createCA('sandpit-ca', 3650);
  });

  it('makes a self-signed CA: CN, critical CA:TRUE, keyCertSign and cRLSign, SKID = AKID, 10 years', () => {
    const c = new X509Certificate(ca.cert);
    assert.equal(c.subject, 'CN=sandpit-ca');
    assert.equal(c.issuer, 'CN=sandpit-ca');
    assert.equal(c.ca, true);
    assert.ok(c.verify(c.publicKey));
    assert.equal(createPrivateKey(ca.key).asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const bc = ext(ca.cert, x509.BasicConstraintsExtension);
    assert.equal(bc.critical, true);
    assert.equal(bc.ca, true);
    const ku = ext(ca.cert, x509.KeyUsagesExtension);
    assert.equal(ku.critical, true);
    assert.equal(ku.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    assert.equal(
      ext(ca.cert, x509.AuthorityKeyIdentifierExtension).keyId,
      ext(ca.cert, x509.SubjectKeyIdentifierExtension).keyId,
    );
    const days = (new Date(c.validTo).getTime() - new Date(c.validFrom).getTime()) / DAY;
    assert.equal(days, 3650);
    assert.equal(new x509.X509Certificate(ca.cert).signatureAlgorithm.hash.name, 'SHA-256');
  });

  it('signs a server CSR with the subject, SANs and usage the caller sets, never the requested ones', async () => {
    const csr = await createCSR(newKey(), 'asked-for-this');
    const pem = await signCSR(csr, ca, {
      commonName: 'system:sandpit-agent:n1',
      organizations: ['o1', 'o2'],
      dnsNames: ['n1'],
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
      days: 1,
    });
    const c = new X509Certificate(pem);
    assert.equal(c.subject, 'CN=system:sandpit-agent:n1\nO=o1\nO=o2');
    assert.equal(c.issuer, 'CN=sandpit-ca');
    assert.equal(c.subjectAltName, 'DNS:n1, IP Address:127.0.0.1');
    assert.equal(c.ca, false);
    assert.deepEqual(c.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.ok(c.verify(new X509Certificate(ca.cert).publicKey), 'signed by the CA');
    assert.ok(c.checkIssued(new X509Certificate(ca.cert)));
    assert.ok(
      !/^[89a-f]/i.test(c.serialNumber) && c.serialNumber.length === 32,
      `positive 128-bit serial ${c.serialNumber}`,
    );
    const bc = ext(pem, x509.BasicConstraintsExtension);
    assert.equal(bc.critical && !bc.ca, true);
    const ku = ext(pem, x509.KeyUsagesExtension);
    assert.equal(ku.critical, true);
    assert.equal(ku.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    assert.equal(ext(pem, x509.ExtendedKeyUsageExtension).critical, false);
    assert.equal(
      ext(pem, x509.AuthorityKeyIdentifierExtension).keyId,
      ext(ca.cert, x509.SubjectKeyIdentifierExtension).keyId,
    );
    assert.equal((new Date(c.validTo).getTime() - new Date(c.validFrom).getTime()) / DAY, 1);
  });

  it('issues a client certificate with its key, without SANs, renewed at 2/3 of its life', async () => {
    const pair = await issue(ca, { commonName: 'sandpit-controller', usage: 'client', days: 3 });
    const c = new X509Certificate(pair.cert);
    assert.equal(c.subject, 'CN=sandpit-controller');
    assert.equal(c.subjectAltName, undefined);
    assert.deepEqual(c.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.ok(c.checkPrivateKey(createPrivateKey(pair.key)));
    const { notAfter, renewAt } = lifetime(pair.cert);
    assert.equal(notAfter.getTime() - renewAt.getTime(), DAY);
  });

  it('signs with a CA key in SEC1 form (as openssl ecparam writes it) and a CA from elsewhere', async () => {
    const sec1 = createPrivateKey(ca.key).export({ type: 'sec1', format: 'pem' }).toString();
    const pem = await signCSR(
      await createCSR(newKey(), 'x'),
      { cert: ca.cert, key: sec1 },
      {
        commonName: 'x',
        usage: 'client',
        days: 1,
      },
    );
    assert.ok(new X509Certificate(pem).verify(new X509Certificate(ca.cert).publicKey));
  });

  it('refuses a request whose self-signature does not hold, naming the step', async () => {
    const raw = new Uint8Array(new x509.Pkcs10CertificateRequest(await createCSR(newKey(), 'x')).rawData);
    raw[raw.length - 1]! ^= 0x01; // the last byte of the signature's s
    await assert.rejects(
      signCSR(new x509.Pkcs10CertificateRequest(raw).toString('pem'), ca, {
        commonName: 'x',
        usage: 'client',
        days: 1,
      }),
      (e: SandpitError) =>
        e instanceof SandpitError && e.step === 'sign certificate request' && /self-signature/.test(e.message),
    );
  });
});
