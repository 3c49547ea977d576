import { z } from 'zod';
import { API_VERSION, ObjectMeta } from './common.js';
import { SandboxSpec } from './sandbox/spec.js';
import { SandboxStatus } from './sandbox/status.js';

/*
 * The Sandbox API. This zod schema is the single source of truth: the CRD in
 * crds/sandboxes.yaml is generated from it (npm run crds:generate), and the
 * controller and the agent validate every object they read with it. Rules that
 * span fields or compare old and new objects are CEL (x-kubernetes-validations)
 * so that the API server rejects a bad spec at apply time, dry runs included.
 *
 * The schema is split by part of the API under crds/sandbox/: container.ts
 * (image, command, env, ports), security.ts, resources.ts, volumes.ts,
 * network.ts, spec.ts (the whole spec and the rules across its parts) and
 * status.ts; extensions.ts holds the x-kubernetes-* helpers they share.
 */
export { SandboxSpec } from './sandbox/spec.js';
export { ContainerState, ContainerStatus, PublishedPortStatus, SandboxStatus } from './sandbox/status.js';

export const Sandbox = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('Sandbox'),
  metadata: ObjectMeta,
  spec: SandboxSpec,
  status: SandboxStatus.optional(),
});
export type Sandbox = z.infer<typeof Sandbox>;
