import { signingKey } from './keys.js';
import { utf8, x509 } from './provider.js';

/** A PKCS#10 request for `key` (PEM); the signer decides the final subject and names. */
export async function createCSR(key: string, commonName: string): Promise<string> {
  const signer = await signingKey(key);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [utf8(commonName)] }],
    keys: signer.pair,
    signingAlgorithm: signer.algorithm,
  });
  return csr.toString('pem') + '\n';
}
