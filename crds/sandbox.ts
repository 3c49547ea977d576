import { z } from 'zod';
import { API_VERSION, CAPABILITIES, conditionList, dnsLabel, dnsSubdomain, ObjectMeta, quantity } from './common.js';
import { parseQuantity } from './quantity.js';

/*
 * The Sandbox API. This zod schema is the single source of truth: the CRD in
 * crds/sandbox.yaml is generated from it (npm run crds:generate), and the
 * controller and the agent validate every object they read with it. Rules that
 * span fields or compare old and new objects are CEL (x-kubernetes-validations)
 * so that the API server rejects a bad spec at apply time, dry runs included.
 */

const map = (keys: string[]) => ({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': keys });
const rules = (...list: { rule: string; message: string; reason?: string; fieldPath?: string }[]) => ({
  'x-kubernetes-validations': list,
});

export const Protocol = z.enum(['TCP', 'UDP']).describe('Transport protocol: TCP or UDP. Defaults to TCP.');

export const EnvVar = z
  .object({
    name: z
      .string()
      .min(1)
      .max(256)
      .regex(
        /^[-._a-zA-Z][-._a-zA-Z0-9]*$/,
        'env names are letters, digits, "-", "." and "_", not starting with a digit',
      )
      .describe('Name of the environment variable.'),
    value: z
      .string()
      .max(32768)
      .default('')
      .describe('Value of the environment variable. Defaults to the empty string.'),
  })
  .strict()
  .describe('An environment variable set in the container.');

export const ContainerPort = z
  .object({
    name: dnsLabel('port name').max(15).optional().describe('Optional name of the port, unique in the container.'),
    containerPort: z.number().int().min(1).max(65535).describe('Port number the container listens on.'),
    protocol: Protocol.default('TCP'),
  })
  .strict()
  .describe('A port the container listens on. Informational unless published by spec.network.ports.');

export const ResourceList = z
  .object({
    cpu: quantity('CPU in cores, such as 500m or 2.').optional(),
    memory: quantity('Memory in bytes, such as 128Mi or 1Gi.').optional(),
  })
  .strict()
  .describe('Amounts of CPU and memory, never negative.');

type Amount = string | number | undefined;
/** A request above its limit can never be honoured; Kubernetes refuses it too. */
const exceeds = (request: Amount, limit: Amount) =>
  request !== undefined && limit !== undefined && parseQuantity(request) > parseQuantity(limit);
/** `quantity(x)` in CEL takes a string; an int-or-string may hold an integer. */
const celQuantity = (path: string) => `quantity(string(${path}))`;
const celNotAbove = (request: string, limit: string) =>
  `!has(${request}) || !has(${limit}) || ${celQuantity(request)}.compareTo(${celQuantity(limit)}) <= 0`;
const REQUEST_ABOVE_SANDBOX_LIMIT = (what: 'cpu' | 'memory') =>
  `every container's requests.${what} must be less than or equal to the sandbox's resources.${what}, which limits all its containers together`;
const REQUEST_ABOVE_LIMIT = (what: 'cpu' | 'memory') => `requests.${what} must be less than or equal to limits.${what}`;

export const ContainerResources = z
  .object({
    limits: ResourceList.optional().describe('Hard limits enforced by the container cgroup.'),
    requests: ResourceList.optional().describe(
      'Amounts the scheduler reserves on the node for this container. Must not exceed limits.',
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

const CAP_NAMES = [...CAPABILITIES, ...CAPABILITIES.map((c) => `CAP_${c}`)];
const celIn = (names: string[]) => `self in [${names.map((n) => `'${n}'`).join(', ')}]`;
const UNKNOWN_CAPABILITY =
  'unknown capability: use a Linux capability name from capabilities(7), such as NET_ADMIN or CAP_NET_ADMIN';
const UNKNOWN_DROP_CAPABILITY =
  'unknown capability: use a Linux capability name from capabilities(7), such as NET_RAW or CAP_NET_RAW, or ALL';
const capability = (names: string[], message: string) =>
  z
    .string()
    .max(64)
    .refine((c) => names.includes(c), message)
    .meta({ description: 'A capability name.', ...rules({ rule: celIn(names), message }) });

export const Capabilities = z
  .object({
    add: z.array(capability(CAP_NAMES, UNKNOWN_CAPABILITY)).max(64).optional().meta({
      description:
        'Capabilities added to the defaults, Linux names with or without the CAP_ prefix; only honoured when the agent allows them.',
      'x-kubernetes-list-type': 'set',
    }),
    drop: z
      .array(capability([...CAP_NAMES, 'ALL'], UNKNOWN_DROP_CAPABILITY))
      .max(64)
      .optional()
      .meta({
        description:
          'Capabilities removed from the defaults, Linux names with or without the CAP_ prefix; ALL drops every one.',
        'x-kubernetes-list-type': 'set',
      }),
  })
  .strict()
  .describe('Capabilities to add to or drop from the default set (the 14 Docker grants).');

export const SecurityContext = z
  .object({
    runAsUser: z
      .number()
      .int()
      .min(0)
      .max(2147483647)
      .optional()
      .describe('UID the container process runs as. Defaults to the image user.'),
    runAsGroup: z
      .number()
      .int()
      .min(0)
      .max(2147483647)
      .optional()
      .describe('GID the container process runs as. Defaults to the image group.'),
    supplementalGroups: z
      .array(z.number().int().min(0).max(2147483647))
      .max(32)
      .optional()
      .meta({ description: 'Extra groups of the container process.', 'x-kubernetes-list-type': 'set' }),
    runAsNonRoot: z.boolean().optional().describe('Refuse to start the container if it would run as UID 0.'),
    readOnlyRootFilesystem: z.boolean().default(false).describe('Mount the container root filesystem read-only.'),
    privileged: z
      .boolean()
      .default(false)
      .describe(
        'Run with all capabilities, no seccomp filter and host devices. Only honoured when the agent allows privileged sandboxes.',
      ),
    allowPrivilegeEscalation: z
      .boolean()
      .optional()
      .describe(
        'Allow the process to gain privileges (setuid binaries, file capabilities). Unset or false sets no_new_privs (unlike Docker, which leaves it off), so a setuid binary in the image cannot lift a process above the capabilities it was given; a privileged container never has it set.',
      ),
    capabilities: Capabilities.optional(),
    seccompProfile: z
      .object({
        type: z
          .enum(['RuntimeDefault', 'Unconfined'])
          .default('RuntimeDefault')
          .describe('RuntimeDefault (the default filter) or Unconfined (no filter; only when the agent allows it).'),
      })
      .strict()
      .optional()
      .describe('Seccomp filter of the container.'),
  })
  .strict()
  .superRefine((sc, ctx) => {
    // Mirrors the CEL rules below, for objects that never pass an API server (standalone agent).
    if (sc.privileged && sc.allowPrivilegeEscalation === false) {
      ctx.addIssue({ code: 'custom', message: 'allowPrivilegeEscalation cannot be false when privileged is true' });
    }
    if (sc.runAsNonRoot && sc.runAsUser === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['runAsUser'],
        message: 'runAsNonRoot is true but runAsUser is 0: pick a non-zero runAsUser or drop runAsNonRoot',
      });
    }
  })
  .meta({
    description:
      "Security options of one container. The defaults are containerd's and Docker's (14 capabilities, their seccomp profile, masked /proc paths) except allowPrivilegeEscalation, false here: no_new_privs is set unless it is true, which Docker and containerd leave off unless asked, so setuid binaries and file capabilities in an image cannot raise privileges.",
    ...rules(
      {
        rule: '!(self.privileged && has(self.allowPrivilegeEscalation) && !self.allowPrivilegeEscalation)',
        message: 'allowPrivilegeEscalation cannot be false when privileged is true',
      },
      {
        rule: '!(has(self.runAsNonRoot) && self.runAsNonRoot && has(self.runAsUser) && self.runAsUser == 0)',
        message: 'runAsNonRoot is true but runAsUser is 0: pick a non-zero runAsUser or drop runAsNonRoot',
        fieldPath: '.runAsUser',
      },
    ),
  });

const RESERVED_MOUNT_PATH =
  'mountPath must not be /proc, /sys, /dev or a path below them: the runtime mounts those itself';
/** /proc, /sys and /dev, also spelt with extra slashes or "." elements. */
const RESERVED_MOUNT_RE = '^[/.]*/(proc|sys|dev)(/|$)';
const PARENT_MOUNT_PATH = 'mountPath must not contain a ".." element';

export const VolumeMount = z
  .object({
    name: dnsLabel('volume name').describe('Name of a volume in spec.volumes.'),
    mountPath: z
      .string()
      .min(1)
      .max(1024) // bounds the cost of the CEL rules below
      .regex(/^\//, 'mountPath must be absolute')
      .refine((p) => !/(^|\/)\.\.(\/|$)/.test(p), PARENT_MOUNT_PATH)
      .refine((p) => !new RegExp(RESERVED_MOUNT_RE).test(p), RESERVED_MOUNT_PATH)
      .describe(
        'Absolute path inside the container where the volume is mounted. Not /proc, /sys, /dev or below them, and without ".." elements.',
      ),
    readOnly: z.boolean().default(false).describe('Mount the volume read-only.'),
  })
  .strict()
  .meta({
    description: 'Mounts a volume of the sandbox into the container.',
    ...rules(
      { rule: "!self.mountPath.matches('(^|/)[.][.](/|$)')", message: PARENT_MOUNT_PATH, fieldPath: '.mountPath' },
      {
        rule: `!self.mountPath.matches('${RESERVED_MOUNT_RE}')`,
        message: RESERVED_MOUNT_PATH,
        fieldPath: '.mountPath',
      },
    ),
  });

export const Container = z
  .object({
    name: dnsLabel('container name').describe('Name of the container, unique in the sandbox.'),
    image: z
      .string()
      .min(1)
      .max(512)
      .regex(/^[^\s]+$/, 'image must not contain white space')
      .describe(
        "OCI image reference, such as registry.example:5000/app:1.2 or busybox@sha256:.... dir:/path (an unpacked root on the node) works only below a directory the node's agent allows with --allow-dir-images (chart value agent.allowDirImages); otherwise it is refused with InvalidImageName.",
      ),
    imagePullPolicy: z
      .enum(['Always', 'IfNotPresent', 'Never'])
      .optional()
      .describe(
        'When to pull the image. Defaults to Always for :latest or untagged images and IfNotPresent otherwise.',
      ),
    command: z
      .array(z.string().max(4096))
      .max(256)
      .optional()
      .describe(
        'Entrypoint. Replaces the image ENTRYPOINT; the image CMD is then ignored. $(VAR) is replaced with the value of env VAR, $$ is a literal $, an unknown reference stays as written.',
      ),
    args: z
      .array(z.string().max(32768))
      .max(1024)
      .optional()
      .describe('Arguments to the entrypoint. Replace the image CMD. $(VAR) is expanded as in command.'),
    env: z
      .array(EnvVar)
      .max(256)
      .optional()
      .meta({
        description:
          'Environment variables, added to those of the image (which they replace by name). A value may refer to an earlier entry as $(VAR); $$ is a literal $.',
        ...map(['name']),
      }),
    workingDir: z
      .string()
      .max(4096)
      .regex(/^\//, 'workingDir must be absolute')
      .optional()
      .describe(
        'Working directory. Defaults to the image WorkingDir, then /. Made (0755, owned by the container root) when the image lacks it, as runc does.',
      ),
    ports: z
      .array(ContainerPort)
      .max(64)
      .optional()
      .meta({
        description:
          'Ports the container listens on. Informational, as in a Pod: listing a port does not publish it (spec.network.ports does) and leaving one out does not block it.',
        ...map(['containerPort', 'protocol']),
      }),
    resources: ContainerResources.optional(),
    securityContext: SecurityContext.optional(),
    volumeMounts: z
      .array(VolumeMount)
      .max(64)
      .optional()
      .meta({ description: 'Volumes mounted into the container.', ...map(['mountPath']) }),
    tty: z.boolean().default(false).describe('Allocate a terminal for the container process.'),
  })
  .strict()
  .describe('A container of the sandbox. Containers share the sandbox network, IPC and UTS namespaces.');

export const EmptyDirVolume = z
  .object({
    medium: z.enum(['', 'Memory']).default('').describe('Empty for node disk, Memory for a tmpfs.'),
    sizeLimit: quantity('Largest size the volume may grow to, such as 64Mi.').optional(),
  })
  .strict()
  .describe('A directory that starts empty and lives as long as the sandbox.');

export const Volume = z
  .object({
    name: dnsLabel('volume name').describe('Name of the volume, referred to by volumeMounts.'),
    emptyDir: EmptyDirVolume,
  })
  .strict()
  .describe('A volume shared by the containers of the sandbox.');

export const PublishedPort = z
  .object({
    name: dnsLabel('port name').max(15).optional().describe('Optional name of the published port.'),
    containerPort: z.number().int().min(1).max(65535).describe('Port inside the sandbox that traffic is forwarded to.'),
    hostPort: z.number().int().min(1).max(65535).describe('Port on the node that is forwarded to containerPort.'),
    protocol: Protocol.default('TCP'),
    hostIP: z
      .string()
      .max(45)
      .optional()
      .describe('Node address to publish on. Defaults to every address of the node, 127.0.0.1 included.'),
  })
  .strict()
  .describe('A node port forwarded to a port of the sandbox.');

export const DnsConfig = z
  .object({
    nameservers: z.array(z.string().max(45)).max(3).optional().meta({
      description:
        "Resolvers written to the sandbox's /etc/resolv.conf. Defaults to the node's non-loopback resolvers.",
      'x-kubernetes-list-type': 'atomic',
    }),
    searches: z
      .array(z.string().max(253))
      .max(32)
      .optional()
      .meta({ description: 'Search domains. Defaults to those of the node.', 'x-kubernetes-list-type': 'atomic' }),
    ndots: z.number().int().min(0).max(15).optional().describe('The ndots resolver option.'),
  })
  .strict()
  .describe('DNS settings of the sandbox.');

export const SandboxNetwork = z
  .object({
    mode: z
      .enum(['Bridge', 'None'])
      .default('Bridge')
      .describe('Bridge gives the sandbox an address on the node bridge; None gives it loopback only.'),
    egress: z
      .enum(['Allow', 'Deny'])
      .default('Allow')
      .describe('Allow lets the sandbox reach other hosts; Deny permits only DNS to its resolvers.'),
    ports: z
      .array(PublishedPort)
      .max(64)
      .optional()
      .meta({ description: 'Ports published on the node.', ...map(['hostPort', 'protocol']) }),
    dns: DnsConfig.optional(),
  })
  .strict()
  .superRefine((net, ctx) => {
    if (net.mode === 'None' && (net.ports?.length ?? 0) > 0) {
      ctx.addIssue({ code: 'custom', path: ['ports'], message: 'published ports need network.mode Bridge' });
    }
  })
  .meta({
    description: 'Network of the sandbox.',
    ...rules(
      {
        rule: "self.mode == 'Bridge' || !has(self.ports) || size(self.ports) == 0",
        message: 'published ports need network.mode Bridge',
        fieldPath: '.ports',
      },
      {
        rule: '!has(oldSelf.mode) || self.mode == oldSelf.mode',
        message: 'network.mode is immutable: delete and recreate the sandbox to change it',
      },
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

export const SandboxSpec = z
  .object({
    containers: z
      .array(Container)
      .min(1)
      .max(16)
      .meta({ description: 'Containers of the sandbox, started in order.', ...map(['name']) }),
    volumes: z
      .array(Volume)
      .max(32)
      .optional()
      .meta({ description: 'Volumes that containers can mount.', ...map(['name']) }),
    resources: SandboxResources.default({ pids: 1024 }),
    network: SandboxNetwork.default({ mode: 'Bridge', egress: 'Allow' }),
    hostname: dnsLabel('hostname')
      .optional()
      .describe('Hostname inside the sandbox. Defaults to the Sandbox name, cut to 63 characters.'),
    nodeSelector: z
      .record(z.string().max(317), z.string().max(63))
      .optional()
      .describe('Labels a SandboxNode must have for the sandbox to be scheduled onto it.'),
    nodeName: dnsSubdomain('nodeName')
      .optional()
      .describe('Pins the sandbox to this node, skipping the scheduler. Immutable.'),
    imagePullSecrets: z
      .array(
        z
          .object({
            name: dnsSubdomain('secret name').describe(
              'Name of a kubernetes.io/dockerconfigjson (or kubernetes.io/dockercfg) Secret in the namespace.',
            ),
          })
          .strict()
          .describe('Reference to a pull secret.'),
      )
      .max(16)
      .optional()
      .meta({
        description:
          'Secrets with registry credentials for pulling the images. The controller reads them and passes them to the agent for each pull; one that is missing or malformed fails the pull with ErrImagePull naming it.',
        ...map(['name']),
      }),
    restartPolicy: z
      .enum(['Always', 'OnFailure', 'Never'])
      .default('Always')
      .describe('Whether containers are restarted when they exit: Always, OnFailure or Never.'),
    activeDeadlineSeconds: z
      .number()
      .int()
      .min(1)
      .max(31536000)
      .optional()
      .describe('Seconds after start at which the sandbox is stopped and marked Failed with reason DeadlineExceeded.'),
    terminationGracePeriodSeconds: z
      .number()
      .int()
      .min(0)
      .max(3600)
      .default(30)
      .describe('Seconds between SIGTERM and SIGKILL when containers are stopped.'),
    paused: z.boolean().default(false).describe('Freeze every process of the sandbox (true) or thaw it (false).'),
    shareProcessNamespace: z
      .boolean()
      .default(true)
      .describe('Containers share one PID namespace (true) or each gets its own (false). Immutable.'),
    hostUsers: z
      .boolean()
      .default(true)
      .describe(
        'false runs the sandbox in its own user namespace, so root inside is unprivileged on the node. Immutable.',
      ),
  })
  .strict()
  .superRefine((spec, ctx) => {
    // List-map keys and cross-field rules the API server enforces, mirrored for standalone mode.
    const names = spec.containers.map((c) => c.name);
    names.forEach((name, i) => {
      if (names.indexOf(name) !== i)
        ctx.addIssue({ code: 'custom', path: ['containers', i], message: `Duplicate value: {"name":"${name}"}` });
    });
    const volumes = new Set((spec.volumes ?? []).map((v) => v.name));
    if (spec.containers.some((c) => (c.volumeMounts ?? []).some((m) => !volumes.has(m.name)))) {
      ctx.addIssue({
        code: 'custom',
        path: ['containers'],
        message: 'every volumeMounts[].name must name a volume in spec.volumes',
      });
    }
    for (const what of ['cpu', 'memory'] as const) {
      if (spec.containers.some((c) => exceeds(c.resources?.requests?.[what], spec.resources[what]))) {
        ctx.addIssue({ code: 'custom', path: ['containers'], message: REQUEST_ABOVE_SANDBOX_LIMIT(what) });
      }
    }
  })
  .meta({
    description: 'Desired state of the sandbox.',
    ...rules(
      {
        rule: 'self.containers.all(c, !has(c.volumeMounts) || c.volumeMounts.all(m, has(self.volumes) && self.volumes.exists(v, v.name == m.name)))',
        message: 'every volumeMounts[].name must name a volume in spec.volumes',
        fieldPath: '.containers',
      },
      ...(['cpu', 'memory'] as const).map((what) => ({
        rule: `!has(self.resources.${what}) || self.containers.all(c, !has(c.resources) || !has(c.resources.requests) || (${celNotAbove(`c.resources.requests.${what}`, `self.resources.${what}`)}))`,
        message: REQUEST_ABOVE_SANDBOX_LIMIT(what),
        fieldPath: '.containers',
      })),
      {
        rule: 'has(self.nodeName) == has(oldSelf.nodeName) && (!has(self.nodeName) || self.nodeName == oldSelf.nodeName)',
        message: 'nodeName is immutable: delete and recreate the sandbox to move it',
        fieldPath: '.nodeName',
      },
      {
        rule: 'self.shareProcessNamespace == oldSelf.shareProcessNamespace',
        message: 'shareProcessNamespace is immutable',
        fieldPath: '.shareProcessNamespace',
      },
      { rule: 'self.hostUsers == oldSelf.hostUsers', message: 'hostUsers is immutable', fieldPath: '.hostUsers' },
    ),
  });
export type SandboxSpec = z.infer<typeof SandboxSpec>;

export const ContainerState = z
  .object({
    waiting: z
      .object({
        reason: z
          .string()
          .max(256)
          .optional()
          .describe('Why the container is not running yet, such as ImagePullBackOff or CrashLoopBackOff.'),
        message: z.string().max(4096).optional().describe('Details for people.'),
      })
      .describe('The container has not started yet or waits to restart.')
      .optional(),
    running: z
      .object({ startedAt: z.string().optional().describe('When the current run started (RFC 3339).') })
      .describe('The container is running.')
      .optional(),
    terminated: z
      .object({
        exitCode: z.number().int().describe('Exit code of the process; 128+N when it was killed by signal N.'),
        signal: z.number().int().optional().describe('Signal that ended the process, if any.'),
        reason: z.string().max(256).optional().describe('Completed, Error, OOMKilled, DeadlineExceeded or Killed.'),
        message: z.string().max(4096).optional().describe('Details for people.'),
        startedAt: z.string().optional().describe('When the run started (RFC 3339).'),
        finishedAt: z.string().optional().describe('When the run ended (RFC 3339).'),
      })
      .describe('The container has exited.')
      .optional(),
  })
  .describe('State of a container: exactly one of waiting, running or terminated.');

export const ContainerStatus = z
  .object({
    name: z.string().describe('Name of the container.'),
    image: z.string().describe('Image reference from the spec.'),
    imageID: z.string().optional().describe('Resolved image digest (repository@sha256:...).'),
    ready: z.boolean().describe('The container is running.'),
    restartCount: z.number().int().min(0).describe('How many times the container has been restarted.'),
    state: ContainerState.optional(),
    lastState: ContainerState.optional().describe('The previous state, kept after a restart.'),
  })
  .describe('Observed state of one container.');

export const SandboxPhase = z
  .enum(['Pending', 'Running', 'Paused', 'Succeeded', 'Failed', 'Unknown'])
  .describe('Pending, Running, Paused, Succeeded, Failed or Unknown (the node stopped reporting).');

export const PublishedPortStatus = z
  .object({
    name: z.string().max(15).optional().describe('Name of the published port, from spec.network.ports.'),
    containerPort: z.number().int().min(1).max(65535).describe('Port inside the sandbox that traffic is forwarded to.'),
    hostPort: z.number().int().min(1).max(65535).describe('Port on the node that is forwarded to containerPort.'),
    protocol: z.enum(['TCP', 'UDP']).describe('Transport protocol: TCP or UDP.'),
    hostIP: z
      .string()
      .max(45)
      .describe(
        'Node address the port is published on; 0.0.0.0 means every address of the node (IPv4, 127.0.0.1 included, and IPv6 on a dual-stack node).',
      ),
  })
  .describe('A port the agent published on the node for the sandbox.');
export type PublishedPortStatus = z.infer<typeof PublishedPortStatus>;

export const SandboxStatus = z
  .object({
    phase: SandboxPhase.optional(),
    observedGeneration: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('The .metadata.generation this status was written for.'),
    conditions: conditionList().optional(),
    nodeName: z.string().max(253).optional().describe('Node the sandbox is bound to. Set once by the controller.'),
    hostIP: z.string().max(45).optional().describe('Address of the node.'),
    sandboxIP: z.string().max(45).optional().describe('Address of the sandbox on the node bridge.'),
    sandboxIPs: z
      .array(
        z
          .object({ ip: z.string().max(45).describe('An address of the sandbox.') })
          .describe('An address of the sandbox.'),
      )
      .max(2)
      .optional()
      .meta({
        description: "Every address of the sandbox on a dual-stack node, IPv4 first (as a Pod's podIPs).",
        'x-kubernetes-list-type': 'atomic',
      }),
    publishedPorts: z
      .array(PublishedPortStatus)
      .max(64)
      .optional()
      .meta({
        description: 'Ports published on the node and forwarding to the sandbox, as installed by the agent.',
        ...map(['hostPort', 'protocol']),
      }),
    containerStatuses: z
      .array(ContainerStatus)
      .max(16)
      .optional()
      .meta({ description: 'Observed state of each container.', ...map(['name']) }),
    startTime: z.string().optional().describe('When the node accepted the sandbox (RFC 3339).'),
    message: z.string().max(32768).optional().describe('Why the sandbox is in its phase, for people.'),
    reason: z
      .string()
      .max(256)
      .optional()
      .describe('Why the sandbox is in its phase, a CamelCase word such as NodeLost.'),
    usage: z
      .object({
        cpu: z
          .string()
          .optional()
          .describe(
            'CPU used, in millicores ("250m" is a quarter of a core): the average rate since the previous sample (at least 2 s before; the first one since the sandbox started), as kubectl top means it.',
          ),
        memory: z.string().optional().describe('Memory used, as a quantity.'),
        pids: z.number().int().optional().describe('Processes and threads in the sandbox.'),
      })
      .optional()
      .describe('Resource usage read from the sandbox cgroup.'),
  })
  .meta({
    description:
      'Observed state of the sandbox, written by the controller (scheduling) and the agent (everything else).',
    ...rules({
      // The one exception: the controller unbinds a sandbox of a lost node to reschedule it (restartPolicy Always/OnFailure).
      rule: "!has(oldSelf.nodeName) || oldSelf.nodeName == '' || (has(self.nodeName) && self.nodeName == oldSelf.nodeName) || (!has(self.nodeName) && has(self.reason) && self.reason == 'NodeLost' && has(self.phase) && self.phase == 'Pending')",
      message:
        'status.nodeName cannot change once the sandbox is bound (it is only cleared, with reason NodeLost, to reschedule a sandbox of a lost node)',
      fieldPath: '.nodeName',
    }),
  });
export type SandboxStatus = z.infer<typeof SandboxStatus>;

export const Sandbox = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('Sandbox'),
  metadata: ObjectMeta,
  spec: SandboxSpec,
  status: SandboxStatus.optional(),
});
export type Sandbox = z.infer<typeof Sandbox>;
