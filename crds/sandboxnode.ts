import { z } from 'zod';
import { API_VERSION, conditionList, ObjectMeta } from './common.js';

/*
 * The SandboxNode API: one cluster-scoped object per node that runs an agent,
 * named after the node. The agent writes its status (facts and capacity); an
 * administrator may write its spec (cordon, subnet). The CRD in
 * crds/sandboxnode.yaml is generated from this schema.
 */

export const NodeResources = z
  .object({
    cpu: z.string().max(64).optional().describe('CPU cores as a quantity, such as 2 or 1500m.'),
    memory: z.string().max(64).optional().describe('Memory as a quantity, such as 24Gi.'),
    sandboxes: z.number().int().min(0).optional().describe('How many sandboxes the node takes.'),
  })
  .describe('Amounts of node resources.');

export const SandboxNodeSpec = z
  .object({
    unschedulable: z
      .boolean()
      .default(false)
      .describe('No new sandboxes are scheduled onto the node (cordon). Running ones stay.'),
  })
  .strict()
  .describe('Desired state of the node, set by administrators.');

export const SandboxNodeStatus = z
  .object({
    capacity: NodeResources.optional().describe('Everything the node has.'),
    allocatable: NodeResources.optional().describe(
      'What sandboxes may use: capacity less what the node keeps for itself.',
    ),
    endpoint: z.string().max(512).optional().describe('HTTPS address of the agent API (https://host:port).'),
    agentVersion: z.string().max(64).optional().describe('Version of the sandpit agent.'),
    kernelVersion: z.string().max(128).optional().describe('Kernel release of the node (uname -r).'),
    cgroupMode: z
      .enum(['v1', 'hybrid', 'v2'])
      .optional()
      .describe('cgroup layout of the node: v1, hybrid (v1 controllers plus a cgroup2 mount) or v2.'),
    sandboxCIDR: z
      .string()
      .max(43)
      .optional()
      .describe(
        "Subnet the agent gives its sandboxes addresses from: the agent's SANDPIT_SUBNET (chart value agent.network.subnet), default 10.88.0.0/24.",
      ),
    hostIP: z.string().max(45).optional().describe('Address of the node.'),
    sandboxes: z.number().int().min(0).optional().describe('Sandboxes running on the node.'),
    imageDiskUsageBytes: z.number().int().min(0).optional().describe('Bytes used by the image content store.'),
    conditions: conditionList().optional(),
  })
  .describe('Observed state of the node, written by its agent.');

export const SandboxNode = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('SandboxNode'),
  metadata: ObjectMeta,
  spec: SandboxNodeSpec.default({ unschedulable: false }),
  status: SandboxNodeStatus.optional(),
});
export type SandboxNode = z.infer<typeof SandboxNode>;
