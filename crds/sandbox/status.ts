import { z } from 'zod';
import { conditionList } from '../common.js';
import { listMap, rules } from './extensions.js';

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
        ...listMap(['hostPort', 'protocol']),
      }),
    containerStatuses: z
      .array(ContainerStatus)
      .max(16)
      .optional()
      .meta({ description: 'Observed state of each container.', ...listMap(['name']) }),
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
