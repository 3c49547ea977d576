/*
 * Which container a log or exec request without -c means, as kubectl picks
 * one for a Pod: the container the `kubectl.kubernetes.io/default-container`
 * annotation names, else the first; with more than one and no annotation,
 * kubectl says which it took. Pure: the CLI prints the notice, the streams
 * server applies the same rule to a request that names no container.
 */

export const DEFAULT_CONTAINER_ANNOTATION = 'kubectl.kubernetes.io/default-container';

interface Target {
  metadata?: { annotations?: Record<string, string> };
  spec: { containers: { name: string }[] };
}

export function defaultContainer(sbx: Target): { name: string | undefined; notice?: string } {
  const names = sbx.spec.containers.map((c) => c.name);
  const annotated = sbx.metadata?.annotations?.[DEFAULT_CONTAINER_ANNOTATION];
  if (annotated && names.includes(annotated)) return { name: annotated };
  const name = names[0];
  if (names.length > 1) return { name, notice: `Defaulted container "${name}" out of: ${names.join(', ')}` };
  return { name };
}
