/*
 * Registry authentication: challenge parsing, pull-secret lookup and the
 * bearer-token cache. Tokens and passwords never reach a log line.
 */

export interface Challenge {
  scheme: 'basic' | 'bearer' | string;
  params: Record<string, string>;
}

/** Parses WWW-Authenticate: `Bearer realm="…",service="…",scope="…"` (several challenges allowed). */
export function parseChallenges(header: string | null | undefined): Challenge[] {
  if (!header) return [];
  const out: Challenge[] = [];
  const re = /\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s+|$)((?:[A-Za-z0-9_-]+\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?\s*)*)/y;
  let m: RegExpExecArray | null;
  while (re.lastIndex < header.length && (m = re.exec(header)) !== null) {
    if (m[0] === '') break;
    const params: Record<string, string> = {};
    const pre = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
    let p: RegExpExecArray | null;
    while ((p = pre.exec(m[2] ?? '')) !== null)
      params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
    out.push({ scheme: m[1]!.toLowerCase(), params });
  }
  return out;
}

export interface Credential {
  username?: string;
  password?: string;
  /** Docker "identitytoken": an OAuth2 refresh token for the token endpoint. */
  identityToken?: string;
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
}

/** Strips scheme, and the legacy Docker Hub key, so keys compare as host[:port][/path]. */
function normaliseKey(key: string): string {
  let k = key.replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '');
  if (k === 'index.docker.io/v1' || k === 'index.docker.io' || k === 'registry-1.docker.io') k = 'docker.io';
  return k;
}

function hostMatches(pattern: string, host: string): boolean {
  const [ph, pp] = pattern.split(':');
  const [hh, hp] = host.split(':');
  if ((pp ?? '') !== (hp ?? '')) return false;
  const pl = ph!.split('.');
  const hl = hh!.split('.');
  if (pl.length !== hl.length) return false;
  return pl.every((label, i) => {
    if (!label.includes('*')) return label === hl[i];
    const re = new RegExp(
      `^${label
        .split('*')
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('[^.]*')}$`,
    );
    return re.test(hl[i]!);
  });
}

/**
 * Credentials for `domain/path` from .dockerconfigjson documents, most specific
 * key first (kubelet keyring semantics: host globs per label, exact port, path prefix).
 * Every match is returned, in order, so a rotated secret can be tried after a stale one.
 */
export function credentialsFor(dockerConfigs: string[], domain: string, path: string): Credential[] {
  const found: { key: string; cred: Credential }[] = [];
  for (const doc of dockerConfigs) {
    let cfg: DockerConfig;
    try {
      const parsed = JSON.parse(doc) as DockerConfig & Record<string, unknown>;
      // Legacy .dockercfg is the bare auths map.
      cfg = parsed.auths ? parsed : { auths: parsed as DockerConfig['auths'] };
    } catch {
      continue;
    }
    for (const [rawKey, v] of Object.entries(cfg.auths ?? {})) {
      const key = normaliseKey(rawKey);
      const slash = key.indexOf('/');
      const host = slash < 0 ? key : key.slice(0, slash);
      const keyPath = slash < 0 ? '' : key.slice(slash + 1);
      if (!hostMatches(host, domain)) continue;
      if (keyPath && path !== keyPath && !path.startsWith(`${keyPath}/`)) continue;
      const cred: Credential = {};
      if (v.auth) {
        const dec = Buffer.from(v.auth, 'base64').toString('utf8');
        const colon = dec.indexOf(':');
        if (colon >= 0) {
          cred.username = dec.slice(0, colon);
          cred.password = dec.slice(colon + 1);
        }
      }
      if (v.username !== undefined) cred.username = v.username;
      if (v.password !== undefined) cred.password = v.password;
      if (v.identitytoken) cred.identityToken = v.identitytoken;
      found.push({ key, cred });
    }
  }
  return found.sort((a, b) => b.key.length - a.key.length).map((f) => f.cred);
}

export function basicAuth(c: Credential): string | undefined {
  if (c.username === undefined || c.password === undefined) return undefined;
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

/** Bearer tokens per (realm, service, scope, credential identity) until they expire. */
export class TokenCache {
  #tokens = new Map<string, { token: string; expiresAt: number }>();
  #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  get(key: string): string | undefined {
    const t = this.#tokens.get(key);
    if (!t) return undefined;
    if (t.expiresAt <= this.#now()) {
      this.#tokens.delete(key);
      return undefined;
    }
    return t.token;
  }

  /** expires_in defaults to 60 s and is never taken below 60 s (token spec); we renew 10 s early. */
  set(key: string, token: string, expiresInSeconds: number | undefined): void {
    const secs = Math.max(60, expiresInSeconds ?? 60);
    this.#tokens.set(key, { token, expiresAt: this.#now() + (secs - 10) * 1000 });
  }

  /** After a 401 every cached token is suspect (revoked, rotated or short of scope). */
  clearAll(): void {
    this.#tokens.clear();
  }
}
