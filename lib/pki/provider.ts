// tsyringe (inside @peculiar/x509) needs the Reflect metadata API before it loads: keep this import first.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

/*
 * @peculiar/x509 builds and signs certificates over WebCrypto. It is handed
 * Node's own implementation explicitly, so signing runs on Node's OpenSSL in
 * process, and no CA key is ever written to a file or handed to a CLI.
 */
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };

/**
 * A name attribute as UTF8String, what the openssl CLI wrote (RFC 5280's
 * choice for new certificates), taken verbatim: no DN-string unescaping.
 * The library's JSON name type lists only strings, but its name builder takes
 * this object form too (Name.createAttribute), hence the cast.
 */
export const utf8 = (value: string) => ({ utf8String: value }) as unknown as string;
