import { z } from 'zod';
import { dnsLabel, dnsSubdomain } from '../common.js';
import { Container } from './container.js';
import { listMap, rules } from './extensions.js';
import { SandboxNetwork } from './network.js';
import { celNotAbove, exceeds, REQUEST_ABOVE_SANDBOX_LIMIT, SandboxResources } from './resources.js';
import { Volume } from './volumes.js';

export const SandboxSpec = z
  .object({
    containers: z
      .array(Container)
      .min(1)
      .max(16)
      .meta({ description: 'Containers of the sandbox, started in order.', ...listMap(['name']) }),
    volumes: z
      .array(Volume)
      .max(32)
      .optional()
      .meta({ description: 'Volumes that containers can mount.', ...listMap(['name']) }),
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
        ...listMap(['name']),
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
