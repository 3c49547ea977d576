import { z } from 'zod';
import { quantity } from '../common.js';
import { parseQuantity } from '../quantity.js';
import { rules } from './extensions.js';

/*
 * CPU and memory: what a container requests and is limited to, and the
 * cgroup limits of the whole sandbox. A request may exceed neither its own
 * limit nor the sandbox's; the spec checks the latter (spec.ts).
 */

const ResourceList = z
  .object({
    cpu: quantity('CPU in cores, such as 500m or 2.').optional(),
    memory: quantity('Memory in bytes, such as 128Mi or 1Gi.').optional(),
  })
  .strict()
  .describe('Amounts of CPU and memory, never negative.');

type Amount = string | number | undefined;
/** A request above its limit can never be honoured; Kubernetes refuses it too. */
export const exceeds = (request: Amount, limit: Amount) =>
  request !== undefined && limit !== undefined && parseQuantity(request) > parseQuantity(limit);
/** `quantity(x)` in CEL takes a string; an int-or-string may hold an integer. */
const celQuantity = (path: string) => `quantity(string(${path}))`;
export const celNotAbove = (request: string, limit: string) =>
  `!has(${request}) || !has(${limit}) || ${celQuantity(request)}.compareTo(${celQuantity(limit)}) <= 0`;

export const REQUEST_ABOVE_SANDBOX_LIMIT = (what: 'cpu' | 'memory') =>
  `every container's requests.${what} must be less than or equal to the sandbox's resources.${what}, which limits all its containers together`;

const REQUEST_ABOVE_LIMIT = (what: 'cpu' | 'memory') => `requests.${what} must be less than or equal to limits.${what}`;

export const ContainerResources = z
  .object({
    limits: ResourceList.optional().describe('Hard limits enforced by the container cgroup.'),
    requests: ResourceList.optional().describe(
      'Amounts the scheduler reserves on the node for this container (limits stand in for missing requests). requests.cpu also sets the CPU weight of the container and its sandbox as kubelet does (cpu.shares, 1024 per core; 2 for none), so a busy neighbour cannot starve it. Must not exceed limits.',
    ),
  })
  .strict()
  .superRefine((r, ctx) => {
    for (const what of ['cpu', 'memory'] as const) {
      if (exceeds(r.requests?.[what], r.limits?.[what]))
        ctx.addIssue({ code: 'custom', path: ['requests', what], message: REQUEST_ABOVE_LIMIT(what) });
    }
  })
  .meta({
    description: 'Compute resources of one container.',
    ...rules(
      ...(['cpu', 'memory'] as const).map((what) => ({
        rule: `!has(self.requests) || !has(self.limits) || (${celNotAbove(`self.requests.${what}`, `self.limits.${what}`)})`,
        message: REQUEST_ABOVE_LIMIT(what),
        fieldPath: `.requests.${what}`,
      })),
    ),
  });

export const SandboxResources = z
  .object({
    cpu: quantity('CPU limit of the whole sandbox, such as 2 or 500m.').optional(),
    memory: quantity('Memory limit of the whole sandbox, such as 512Mi.').optional(),
    pids: z
      .number()
      .int()
      .min(16)
      .max(4194304)
      .default(1024)
      .describe('Largest number of processes and threads in the sandbox. Defaults to 1024.'),
  })
  .strict()
  .describe('Limits of the sandbox cgroup, shared by all its containers.');
