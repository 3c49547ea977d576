import { z } from 'zod';
import { dnsLabel } from '../common.js';
import { listMap, rules } from './extensions.js';

export const Protocol = z.enum(['TCP', 'UDP']).describe('Transport protocol: TCP or UDP. Defaults to TCP.');

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
      .meta({ description: 'Ports published on the node.', ...listMap(['hostPort', 'protocol']) }),
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
