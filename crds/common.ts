import { z } from 'zod';

/** API group and version served by the CRDs in this folder. */
export const GROUP = 'sandpit.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
/** Held on every Sandbox until its node confirms that nothing of it is left. */
export const FINALIZER = 'sandpit.dev/cleanup';

/** RFC 1123 label: what Kubernetes accepts as a container or port name. */
export const dnsLabel = (what: string) =>
  z
    .string()
    .min(1)
    .max(63)
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${what} must be a lowercase RFC 1123 label`);

/** RFC 1123 subdomain: what Kubernetes accepts as an object (and node) name. */
export const dnsSubdomain = (what: string) =>
  z
    .string()
    .min(1)
    .max(253)
    .regex(
      /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
      `${what} must be a lowercase RFC 1123 subdomain`,
    );

/**
 * A Kubernetes resource quantity ("500m", "1", "128Mi", or a bare integer).
 * On the server it is an int-or-string checked with CEL's isQuantity(); here the
 * same grammar is checked by a regular expression so the controller and the
 * agent reject exactly what the API server rejects.
 */
/** A path element "..", which would climb out of where a path is meant to stay. */
export const PARENT_ELEMENT_RE = '(^|/)[.][.](/|$)';

/**
 * An absolute path inside a container, without ".." elements and not at or
 * below the directories the runtime mounts itself (`reservedRe`, matched the
 * same way by the CEL rules next to each use). Up to 1024 characters, which
 * bounds the cost of those rules.
 */
export const containerPath = (field: string, reservedRe: string, reservedMessage: string) =>
  z
    .string()
    .min(1)
    .max(1024)
    .regex(/^\//, `${field} must be absolute`)
    .refine((p) => !new RegExp(PARENT_ELEMENT_RE).test(p), `${field} must not contain a ".." element`)
    .refine((p) => !new RegExp(reservedRe).test(p), reservedMessage);

export const QUANTITY_PATTERN = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[munkMGTPE])?$/;

/** Said by the API server (CEL) and by the in-process check alike. */
const NEGATIVE_QUANTITY_MESSAGE = 'must not be negative: use an amount such as 500m, 2 or 128Mi';

/**
 * A Kubernetes resource quantity ("500m", "1", "128Mi", or a bare integer), in
 * the same int-or-string shape as core/v1 quantities: the pattern applies to
 * string values only, so `cpu: 2` and `cpu: "500m"` are both accepted. The
 * grammar allows a sign (it is the quantity grammar); a CEL rule refuses
 * negative amounts, which no resource field can use. It looks only at the first
 * character, so its cost stays small on an unbounded int-or-string.
 */
export const quantity = (description: string) =>
  z
    .union([
      z
        .string()
        .max(64)
        .regex(QUANTITY_PATTERN, 'must be a Kubernetes quantity such as 500m, 2 or 128Mi')
        .refine((s) => !s.startsWith('-'), NEGATIVE_QUANTITY_MESSAGE),
      z.number().int().min(0, NEGATIVE_QUANTITY_MESSAGE),
    ])
    .meta({
      description,
      'x-kubernetes-int-or-string': true,
      pattern: QUANTITY_PATTERN.source,
      maxLength: 64,
      'x-kubernetes-validations': [
        { rule: "type(self) == string ? !self.startsWith('-') : self >= 0", message: NEGATIVE_QUANTITY_MESSAGE },
      ],
    });

/**
 * Linux capability names in bit order (capabilities(7)); a spec may write them
 * with or without the CAP_ prefix, as Kubernetes and Docker accept.
 */
export const CAPABILITIES = [
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'KILL',
  'SETGID',
  'SETUID',
  'SETPCAP',
  'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE',
  'NET_BROADCAST',
  'NET_ADMIN',
  'NET_RAW',
  'IPC_LOCK',
  'IPC_OWNER',
  'SYS_MODULE',
  'SYS_RAWIO',
  'SYS_CHROOT',
  'SYS_PTRACE',
  'SYS_PACCT',
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_NICE',
  'SYS_RESOURCE',
  'SYS_TIME',
  'SYS_TTY_CONFIG',
  'MKNOD',
  'LEASE',
  'AUDIT_WRITE',
  'AUDIT_CONTROL',
  'SETFCAP',
  'MAC_OVERRIDE',
  'MAC_ADMIN',
  'SYSLOG',
  'WAKE_ALARM',
  'BLOCK_SUSPEND',
  'AUDIT_READ',
  'PERFMON',
  'BPF',
  'CHECKPOINT_RESTORE',
] as const;

/** metav1.Condition, the shape kstatus and `kubectl wait --for=condition=` read. */
export const Condition = z
  .object({
    type: z.string().min(1).max(316).describe('Type of condition in CamelCase, such as Ready or Scheduled.'),
    status: z.enum(['True', 'False', 'Unknown']).describe('Status of the condition: True, False or Unknown.'),
    observedGeneration: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('The .metadata.generation that the condition was set from.'),
    lastTransitionTime: z.string().describe('When the condition last changed from one status to another (RFC 3339).'),
    reason: z
      .string()
      .min(1)
      .max(1024)
      .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/)
      .describe('A CamelCase word that says why the condition has its status, for machines to match on.'),
    message: z.string().max(32768).describe('A sentence for people: what happened and, when it is bad, what to do.'),
  })
  .describe('A condition in the metav1.Condition shape.');
export type Condition = z.infer<typeof Condition>;

/** A list keyed by `type`, so server-side apply merges conditions one by one. */
export const conditionList = () =>
  z
    .array(Condition)
    .max(16)
    .meta({
      description: 'Current observations of the object state, one per condition type.',
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
    });

/** Standard object metadata as far as our code reads it; the API server owns the rest. */
export const ObjectMeta = z
  .object({
    name: z.string().optional(),
    namespace: z.string().optional(),
    uid: z.string().optional(),
    generation: z.number().int().optional(),
    resourceVersion: z.string().optional(),
    creationTimestamp: z.string().optional(),
    deletionTimestamp: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
    finalizers: z.array(z.string()).optional(),
  })
  .loose();
