import { z } from 'zod';
import { containerPath, dnsLabel, PARENT_ELEMENT_RE } from '../common.js';
import { listMap, rules } from './extensions.js';
import { Protocol } from './network.js';
import { ContainerResources } from './resources.js';
import { SecurityContext } from './security.js';
import { VolumeMount } from './volumes.js';

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

const TERMINATION_PATH_RESERVED = 'terminationMessagePath must not be /proc, /sys or a path below them';
/** /proc and /sys, also spelt with extra slashes or "." elements. */
const TERMINATION_PATH_RESERVED_RE = '^[/.]*/(proc|sys)(/|$)';
const TERMINATION_PATH_PARENT = 'terminationMessagePath must not contain a ".." element';

const TerminationMessagePath = containerPath(
  'terminationMessagePath',
  TERMINATION_PATH_RESERVED_RE,
  TERMINATION_PATH_RESERVED,
)
  .default('/dev/termination-log')
  .meta({
    description:
      'File inside the container whose contents (up to 4096 bytes) become state.terminated.message when it exits, as in a Pod. Defaults to /dev/termination-log; absolute, without ".." elements, not under /proc or /sys.',
    ...rules(
      { rule: `!self.matches('${PARENT_ELEMENT_RE}')`, message: TERMINATION_PATH_PARENT },
      { rule: `!self.matches('${TERMINATION_PATH_RESERVED_RE}')`, message: TERMINATION_PATH_RESERVED },
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
        ...listMap(['name']),
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
        ...listMap(['containerPort', 'protocol']),
      }),
    resources: ContainerResources.optional(),
    securityContext: SecurityContext.optional(),
    volumeMounts: z
      .array(VolumeMount)
      .max(64)
      .optional()
      .meta({ description: 'Volumes mounted into the container.', ...listMap(['mountPath']) }),
    tty: z.boolean().default(false).describe('Allocate a terminal for the container process.'),
    terminationMessagePath: TerminationMessagePath,
    terminationMessagePolicy: z
      .enum(['File', 'FallbackToLogsOnError'])
      .default('File')
      .describe(
        'File: the message is what the container wrote to terminationMessagePath. FallbackToLogsOnError: when that file is empty and the container failed (exit code not 0), the last 80 lines (at most 2048 bytes) of its output this run.',
      ),
  })
  .strict()
  .describe('A container of the sandbox. Containers share the sandbox network, IPC and UTS namespaces.');
