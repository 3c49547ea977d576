import type { Sandbox } from '../../crds/sandbox.js';
import type { PullSecretData } from '../../protocol/agent-api.js';
import { ApiError, type KubeClient } from '../../lib/kube/client.js';
import { paths } from '../../lib/kube/resources.js';

/*
 * The image pull Secrets of a Sandbox, read by the controller (GET each one by
 * name in the Sandbox's namespace, never list) for the PUT to its agent: the
 * agent never has Secret read rights. A Secret that is missing, of another
 * type or malformed is passed on as an error naming it, which the agent
 * reports as the container's ErrImagePull; other API failures are thrown so
 * the reconcile retries.
 */

interface SecretObject {
  type?: string;
  data?: Record<string, string>;
}

/** The Docker config JSON of a Secret's data, or why there is none. Pure. */
export function dockerConfigOf(secret: SecretObject, ref: string): { dockerConfigJson: string } | { error: string } {
  const key =
    secret.type === 'kubernetes.io/dockerconfigjson'
      ? '.dockerconfigjson'
      : secret.type === 'kubernetes.io/dockercfg'
        ? '.dockercfg'
        : undefined;
  if (!key)
    return {
      error: `Secret ${ref} has type ${secret.type ?? '(none)'}; an image pull Secret has type kubernetes.io/dockerconfigjson (or kubernetes.io/dockercfg)`,
    };
  const raw = secret.data?.[key];
  if (!raw) return { error: `Secret ${ref} has no ${key} key` };
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(raw, 'base64').toString('utf8'));
  } catch {
    return { error: `Secret ${ref}: ${key} is not JSON` };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    return { error: `Secret ${ref}: ${key} is not a JSON object` };
  // The legacy .dockercfg is the bare auths map.
  const auths = key === '.dockercfg' ? doc : (doc as { auths?: unknown }).auths;
  if (typeof auths !== 'object' || auths === null || Array.isArray(auths))
    return { error: `Secret ${ref}: ${key} has no "auths" object` };
  return { dockerConfigJson: JSON.stringify({ auths }) };
}

/** Reads every Secret in spec.imagePullSecrets; an empty list when it names none. */
export async function readPullSecrets(client: KubeClient, sbx: Sandbox): Promise<PullSecretData[]> {
  const ns = sbx.metadata.namespace ?? 'default';
  const out: PullSecretData[] = [];
  for (const { name } of sbx.spec.imagePullSecrets ?? []) {
    const ref = `${ns}/${name}`;
    try {
      out.push({ name, ...dockerConfigOf(await client.get<SecretObject>(paths.secret(ns, name)), ref) });
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (err.status === 404) out.push({ name, error: `Secret ${ref} not found` });
      else if (err.status === 403)
        out.push({
          name,
          error: `the controller may not read Secret ${ref} (install the chart with controller.readPullSecrets=true)`,
        });
      else throw err;
    }
  }
  return out;
}
