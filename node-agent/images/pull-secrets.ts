import type { Sandbox } from '../../crds/sandbox.js';
import type { PullSecretData } from '../../protocol/agent-api.js';
import { ImageError } from './errors.js';

/*
 * Image pull Secrets on the agent. The controller reads them and sends them
 * beside the Sandbox in each PUT; the agent holds them only on the Sandbox
 * object that PUT parsed (a WeakMap, so they go with it, and nothing that
 * serialises the Sandbox or its record can carry them to sandbox.json, a log
 * line or the status). Every pull happens while a PUT is applied, so after an
 * agent restart the next PUT (the controller's resync sends one) brings them
 * again; a re-adopted sandbox pulls nothing until then.
 */

const held = new WeakMap<Sandbox, PullSecretData[]>();

const MAX_SECRETS = 16;

/** Keeps the `pullSecrets` of a PUT body with the Sandbox parsed from it; a malformed list is a 400. */
export function holdPullSecrets(sbx: Sandbox, body: unknown): void {
  const list = (body as { pullSecrets?: unknown }).pullSecrets;
  if (list === undefined) return;
  const ok =
    Array.isArray(list) &&
    list.length <= MAX_SECRETS &&
    list.every((s: unknown) => {
      const e = s as Record<string, unknown>;
      return (
        typeof e === 'object' &&
        e !== null &&
        typeof e.name === 'string' &&
        (typeof e.dockerConfigJson === 'string' || typeof e.error === 'string')
      );
    });
  if (!ok) throw new TypeError(`pullSecrets must be a list of at most ${MAX_SECRETS} {name, dockerConfigJson | error}`);
  held.set(sbx, list as PullSecretData[]);
}

/**
 * The Docker config JSON documents for pulling the images of `sbx`. A Secret
 * the spec names that could not be read, or whose data did not reach the
 * agent, fails the pull as ErrImagePull naming it; retried, since the Secret
 * may be created or fixed.
 */
export function pullCredentials(sbx: Sandbox, container: string): string[] {
  const names = (sbx.spec.imagePullSecrets ?? []).map((s) => s.name);
  if (names.length === 0) return [];
  const data = held.get(sbx) ?? [];
  const docs: string[] = [];
  const problems: string[] = [];
  for (const name of names) {
    const d = data.find((x) => x.name === name);
    if (!d)
      problems.push(`no data for imagePullSecret ${name} reached the agent (the controller sends it with the sandbox)`);
    else if (d.error !== undefined) problems.push(`imagePullSecret ${name}: ${d.error}`);
    else if (d.dockerConfigJson !== undefined) docs.push(d.dockerConfigJson);
  }
  if (problems.length) {
    throw new ImageError({
      reason: 'ErrImagePull',
      step: `pull the image of container ${container}`,
      sandbox: `${sbx.metadata.namespace}/${sbx.metadata.name}`,
      message: problems.join('; '),
      hint: 'create the Secret (kubectl create secret docker-registry) or fix spec.imagePullSecrets; the pull is retried',
      retryable: true,
    });
  }
  return docs;
}
