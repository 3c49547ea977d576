import { z } from 'zod';
import { CAPABILITIES } from '../common.js';
import { rules } from './extensions.js';

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
