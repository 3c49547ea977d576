import { createPrivateKey, createPublicKey, generateKeyPairSync, webcrypto, type KeyObject } from 'node:crypto';

import { SandpitError } from '../errors.js';

/** A private key as WebCrypto needs it to sign, with the signature algorithm that goes with it. */
export interface SigningKey {
  pair: webcrypto.CryptoKeyPair;
  /** SHA-256 always, as the openssl CLI's `-sha256` gave before: ECDSA for EC keys, PKCS#1 v1.5 for RSA. */
  algorithm: webcrypto.EcdsaParams | webcrypto.RsaHashedImportParams;
}

const CURVES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/** A new private key, EC P-256 in PKCS#8 PEM: small and fast to sign with, and every TLS peer accepts it. */
export function newKey(): string {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString();
}

function algorithmOf(key: KeyObject): {
  importAs: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams;
  sign: SigningKey['algorithm'];
} {
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''];
    if (curve) return { importAs: { name: 'ECDSA', namedCurve: curve }, sign: { name: 'ECDSA', hash: 'SHA-256' } };
  }
  if (type === 'rsa') {
    const rsa = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    return { importAs: rsa, sign: rsa };
  }
  const what = type === 'ec' ? `EC curve ${key.asymmetricKeyDetails?.namedCurve ?? 'unknown'}` : `${type} key`;
  throw new SandpitError({
    step: 'load signing key',
    message: `a ${what} cannot sign sandpit certificates`,
    hint: 'use an EC P-256, P-384, P-521 or an RSA key',
  });
}

/**
 * Turns a PEM private key (PKCS#8, or the SEC1/PKCS#1 forms other tools
 * write) into a WebCrypto key pair. The key stays in memory.
 */
export async function signingKey(pem: string): Promise<SigningKey> {
  const key = createPrivateKey(pem);
  const { importAs, sign } = algorithmOf(key);
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const [privateKey, publicKey] = await Promise.all([
    webcrypto.subtle.importKey('pkcs8', pkcs8, importAs, false, ['sign']),
    webcrypto.subtle.importKey('spki', spki, importAs, true, ['verify']),
  ]);
  return { pair: { privateKey, publicKey } as webcrypto.CryptoKeyPair, algorithm: sign };
}
