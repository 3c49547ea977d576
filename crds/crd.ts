import type { z } from 'zod';
import { GROUP, VERSION } from './common.js';
import { toStructuralSchema, type JSONSchema } from './openapi.js';
import { SandboxSpec, SandboxStatus } from './sandbox.js';
import { SandboxNodeSpec, SandboxNodeStatus } from './sandboxnode.js';

interface KindInfo {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  scope: 'Namespaced' | 'Cluster';
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  columns: { name: string; type: string; jsonPath: string; description: string; priority?: number }[];
}

const readyColumn = {
  name: 'Ready',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].status',
  description: 'Status of the Ready condition',
};
const ageColumn = {
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
  description: 'Time since creation',
};

export const KINDS: KindInfo[] = [
  {
    kind: 'Sandbox',
    plural: 'sandboxes',
    singular: 'sandbox',
    shortNames: ['sbx'],
    scope: 'Namespaced',
    description:
      'A Sandbox is a group of containers that share network, IPC and UTS namespaces (and by default a PID namespace), run by the sandpit agent on one node under one cgroup.',
    spec: SandboxSpec,
    status: SandboxStatus,
    columns: [
      { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Lifecycle phase' },
      { name: 'Node', type: 'string', jsonPath: '.status.nodeName', description: 'Node the sandbox is bound to' },
      { name: 'IP', type: 'string', jsonPath: '.status.sandboxIP', description: 'Address of the sandbox' },
      readyColumn,
      ageColumn,
      {
        name: 'Reason',
        type: 'string',
        jsonPath: '.status.reason',
        description: 'Why the sandbox is in its phase',
        priority: 1,
      },
      { name: 'Host-IP', type: 'string', jsonPath: '.status.hostIP', description: 'Address of the node', priority: 1 },
    ],
  },
  {
    kind: 'SandboxNode',
    plural: 'sandboxnodes',
    singular: 'sandboxnode',
    shortNames: ['sbxn'],
    scope: 'Cluster',
    description:
      'A SandboxNode is a node that runs the sandpit agent: its capacity, agent endpoint, kernel and cgroup facts, and health.',
    spec: SandboxNodeSpec,
    status: SandboxNodeStatus,
    columns: [
      readyColumn,
      { name: 'Sandboxes', type: 'integer', jsonPath: '.status.sandboxes', description: 'Sandboxes on the node' },
      { name: 'CIDR', type: 'string', jsonPath: '.status.sandboxCIDR', description: 'Sandbox subnet' },
      { name: 'Cgroups', type: 'string', jsonPath: '.status.cgroupMode', description: 'cgroup layout', priority: 1 },
      { name: 'Version', type: 'string', jsonPath: '.status.agentVersion', description: 'Agent version', priority: 1 },
      ageColumn,
    ],
  },
];

/** Builds the CustomResourceDefinition object of one kind from its zod schema. */
export function buildCrd(info: KindInfo): Record<string, unknown> {
  const spec = toStructuralSchema(info.spec);
  const status = toStructuralSchema(info.status);
  const schema: JSONSchema = {
    type: 'object',
    description: info.description,
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string', description: 'Versioned schema of this object: sandpit.dev/v1alpha1.' },
      kind: { type: 'string', description: `Kind of this object: ${info.kind}.` },
      metadata: { type: 'object' },
      spec,
      status,
    },
  };
  if (info.scope === 'Namespaced') {
    // The API server checks names of custom resources only as subdomains; the
    // sandbox name becomes a hostname and a cgroup/netns name, so keep it short.
    schema['x-kubernetes-validations'] = [
      {
        rule: 'size(self.metadata.name) <= 63',
        message: 'Sandbox names are at most 63 characters (they become host names)',
      },
    ];
  }
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${info.plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'sandpit', 'app.kubernetes.io/part-of': 'sandpit' },
      annotations: { 'helm.sh/resource-policy': 'keep' },
    },
    spec: {
      group: GROUP,
      names: {
        kind: info.kind,
        listKind: `${info.kind}List`,
        plural: info.plural,
        singular: info.singular,
        shortNames: info.shortNames,
        categories: ['sandpit'],
      },
      scope: info.scope,
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: info.columns,
          schema: { openAPIV3Schema: schema },
        },
      ],
    },
  };
}
