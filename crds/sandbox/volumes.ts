import { z } from 'zod';
import { containerPath, dnsLabel, PARENT_ELEMENT_RE, quantity } from '../common.js';
import { rules } from './extensions.js';

const RESERVED_MOUNT_PATH =
  'mountPath must not be /proc, /sys, /dev or a path below them: the runtime mounts those itself';
/** /proc, /sys and /dev, also spelt with extra slashes or "." elements. */
const RESERVED_MOUNT_RE = '^[/.]*/(proc|sys|dev)(/|$)';
const PARENT_MOUNT_PATH = 'mountPath must not contain a ".." element';

export const VolumeMount = z
  .object({
    name: dnsLabel('volume name').describe('Name of a volume in spec.volumes.'),
    mountPath: containerPath('mountPath', RESERVED_MOUNT_RE, RESERVED_MOUNT_PATH).describe(
      'Absolute path inside the container where the volume is mounted. Not /proc, /sys, /dev or below them, and without ".." elements.',
    ),
    readOnly: z.boolean().default(false).describe('Mount the volume read-only.'),
  })
  .strict()
  .meta({
    description: 'Mounts a volume of the sandbox into the container.',
    ...rules(
      { rule: `!self.mountPath.matches('${PARENT_ELEMENT_RE}')`, message: PARENT_MOUNT_PATH, fieldPath: '.mountPath' },
      {
        rule: `!self.mountPath.matches('${RESERVED_MOUNT_RE}')`,
        message: RESERVED_MOUNT_PATH,
        fieldPath: '.mountPath',
      },
    ),
  });

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
