import { basicAuth, parseChallenges, TokenCache, type Challenge, type Credential } from './auth.js';
import { ImageError } from './errors.js';
import { registryHost, type ImageReference } from './reference.js';
import { header, RetryableError, type RegistryResponse, type Send } from './registry-http.js';

/*
 * The Authorization header for a repository: the registry's challenge (asked
 * once per host at /v2/), then Basic credentials or a bearer token from the
 * token endpoint, cached per realm, service, scope and credential identity.
 */

/** The challenge to answer among those a 401 offers: bearer before basic, anything else is anonymous. */
export function pickChallenge(all: Challenge[]): Challenge | null {
  return all.find((x) => x.scheme === 'bearer') ?? all.find((x) => x.scheme === 'basic') ?? null;
}

/** Pull scope on `path` first, then any further scopes a registry asked for, without repeating it. */
export function pullScopes(path: string, extraScopes: string[]): string[] {
  const pull = `repository:${path}:pull`;
  return [pull, ...extraScopes.filter((s) => s !== pull)];
}

/** The scopes an insufficient_scope bearer challenge on a 401 asks for, or undefined when it asks for none. */
export function scopesAskedFor(wwwAuthenticate: string | undefined): string[] | undefined {
  const ch = parseChallenges(wwwAuthenticate).find((c) => c.scheme === 'bearer');
  if (ch?.params.error === 'insufficient_scope' && ch.params.scope) return ch.params.scope.split(' ');
  return undefined;
}

/** The error a registry's 401 leaves once every credential has been tried. */
export function accessRefused(ref: ImageReference, cred: Credential | undefined): ImageError {
  return new ImageError({
    reason: 'Unauthorized',
    step: 'pull',
    message: `${ref.domain} refused ${cred ? `the credentials for user ${JSON.stringify(cred.username ?? '(token)')}` : 'anonymous access'} to ${ref.path}`,
    hint: cred ? 'check the pull secret' : 'add an imagePullSecret with credentials for this registry',
    retryable: false,
  });
}

const tokenKey = (ch: Challenge, scopes: string[], cred: Credential | undefined) =>
  `${ch.params.realm}|${ch.params.service ?? ''}|${scopes.join(' ')}|${cred?.username ?? ''}|${cred?.identityToken ? 'id' : ''}`;

export class RegistryAuthorizer {
  readonly #send: Send;
  readonly #baseUrl: (ref: ImageReference) => string;
  readonly #tokens = new TokenCache();
  readonly #challenges = new Map<string, Challenge | null>();

  constructor(send: Send, baseUrl: (ref: ImageReference) => string) {
    this.#send = send;
    this.#baseUrl = baseUrl;
  }

  /** The Authorization header for pulling `ref` with `cred` (undefined: send none). */
  async authorization(
    ref: ImageReference,
    cred: Credential | undefined,
    extraScopes: string[] = [],
  ): Promise<string | undefined> {
    const ch = await this.#challengeFor(ref);
    if (!ch) return undefined;
    if (ch.scheme === 'basic') return cred ? basicAuth(cred) : undefined;
    return `Bearer ${await this.#token(ch, pullScopes(ref.path, extraScopes), cred)}`;
  }

  /** Forgets the host's challenge and every token: after a 401 they may have rotated, or lacked the scope. */
  forget(ref: ImageReference): void {
    this.#challenges.delete(registryHost(ref));
    this.#tokens.clearAll();
  }

  async #challengeFor(ref: ImageReference): Promise<Challenge | null> {
    const host = registryHost(ref);
    if (this.#challenges.has(host)) return this.#challenges.get(host)!;
    const r = await this.#send(`${this.#baseUrl(ref)}/v2/`, 'GET', {});
    await r.body.dump();
    const c = r.status === 401 ? pickChallenge(parseChallenges(header(r, 'www-authenticate'))) : null;
    this.#challenges.set(host, c);
    return c;
  }

  async #token(ch: Challenge, scopes: string[], cred: Credential | undefined): Promise<string> {
    const realm = ch.params.realm;
    if (!realm)
      throw new ImageError({ reason: 'Unauthorized', step: 'authenticate', message: 'bearer challenge without realm' });
    const key = tokenKey(ch, scopes, cred);
    const cached = this.#tokens.get(key);
    if (cached) return cached;
    const r = await this.#requestToken(realm, ch, scopes, cred);
    if (r.status === 401 || r.status === 403) {
      await r.body.dump();
      throw new ImageError({
        reason: 'Unauthorized',
        step: 'authenticate',
        message: `token endpoint ${new URL(realm).host} refused the credentials (HTTP ${r.status})`,
        hint: 'check the imagePullSecrets of the sandbox',
        retryable: false,
      });
    }
    if (r.status !== 200) {
      await r.body.dump();
      throw new RetryableError(`token endpoint answered HTTP ${r.status}`);
    }
    const j = (await r.body.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = j.token ?? j.access_token;
    if (!token)
      throw new ImageError({
        reason: 'Unauthorized',
        step: 'authenticate',
        message: 'token endpoint returned no token',
      });
    this.#tokens.set(key, token, j.expires_in);
    return token;
  }

  /** An identity token is an OAuth2 refresh token (POST); otherwise GET with Basic credentials, if any. */
  #requestToken(
    realm: string,
    ch: Challenge,
    scopes: string[],
    cred: Credential | undefined,
  ): Promise<RegistryResponse> {
    if (cred?.identityToken) {
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: cred.identityToken,
        client_id: 'sandpit',
      });
      if (ch.params.service) form.set('service', ch.params.service);
      form.set('scope', scopes.join(' '));
      return this.#send(realm, 'POST', { 'content-type': 'application/x-www-form-urlencoded' }, form.toString());
    }
    const u = new URL(realm);
    if (ch.params.service) u.searchParams.set('service', ch.params.service);
    for (const s of scopes) u.searchParams.append('scope', s);
    const auth = cred ? basicAuth(cred) : undefined;
    return this.#send(u.toString(), 'GET', auth ? { authorization: auth } : {});
  }
}
