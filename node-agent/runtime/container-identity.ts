import { readFileSync } from 'node:fs';
import type { SandboxSpec } from '../../crds/sandbox.js';
import { SandpitError } from '../../lib/errors.js';
import type { PreparedImage } from '../contracts.js';
import { allowPrivilegedHint, boundingCaps, containerCaps } from '../security/capabilities.js';
import type { Identity } from '../security/identity.js';
import { buildSeccompFilter } from '../security/seccomp.js';
import { NoCommandError, resolveCommand } from './command.js';
import type { RuntimeConfig } from './config.js';
import { configError, RuntimeError } from './errors.js';
import { ImageFileError, readImageFile } from './image-files.js';
import { parseGroup, parsePasswd, resolveUser, UserLookupError, type ResolvedUser } from './passwd.js';

/*
 * Who a container's process is and what it runs, from its spec, its image
 * and the node's policy. Checked before anything of a run exists (create,
 * an edited container) and again at each start and exec.
 */

/** What the agent itself may hand on (a container's capabilities are a subset of it). */
const AGENT_BOUNDING = boundingCaps(readFileSync('/proc/self/status', 'utf8'));

type ContainerSpec = SandboxSpec['containers'][number];
type Site = { sandbox: string; step: string };

/** The container's credentials, capabilities and seccomp filter; refused where the node's policy or the image says no. */
export function containerIdentity(
  config: RuntimeConfig,
  spec: ContainerSpec,
  image: PreparedImage,
  site: Site,
): Identity {
  const sc = spec.securityContext;
  const caps = containerCaps(
    { privileged: sc?.privileged, add: sc?.capabilities?.add, drop: sc?.capabilities?.drop },
    { ...config, bounding: AGENT_BOUNDING },
    site.sandbox,
  );
  const unconfined = sc?.privileged || sc?.seccompProfile?.type === 'Unconfined';
  if (sc?.seccompProfile?.type === 'Unconfined' && !config.allowPrivileged)
    throw new SandpitError({
      ...site,
      message: 'seccompProfile Unconfined is not allowed on this node',
      hint: allowPrivilegedHint(config.hints),
    });
  // runAsUser replaces the image's USER (group included), as in Kubernetes; runAsGroup then replaces the gid.
  const userSpec = sc?.runAsUser !== undefined ? String(sc.runAsUser) : (image.config.user ?? '');
  const user = imageUser(image, userSpec, site, spec.name);
  const uid = user.uid;
  const gid = sc?.runAsGroup ?? user.gid;
  if (sc?.runAsNonRoot && uid === 0)
    throw configError(
      site,
      `runAsNonRoot is set but the container would run as UID 0 (image user ${JSON.stringify(image.config.user ?? '')})`,
      'set securityContext.runAsUser to a non-zero UID or use an image with a non-root USER',
      spec.name,
    );
  const groups = [...new Set([...user.additionalGids, ...(sc?.supplementalGroups ?? [])])];
  return {
    uid,
    gid,
    groups,
    caps,
    noNewPrivs: !(sc?.allowPrivilegeEscalation ?? false) && !sc?.privileged,
    seccomp: unconfined ? null : buildSeccompFilter(caps),
  };
}

/**
 * The image's "user[:group]" (or runAsUser) against the image's own
 * /etc/passwd and /etc/group, read inside the image's layers (image-files.ts).
 * Not cached: two small reads cost well under a millisecond, and a dir: image can change.
 */
function imageUser(image: PreparedImage, spec: string, site: Site, container: string): ResolvedUser {
  const hint =
    "add the user and group to the image's /etc/passwd and /etc/group, or use a numeric user (USER 1000:1000, or securityContext.runAsUser)";
  try {
    const file = (path: string) => readImageFile(image.layers, path)?.toString('utf8');
    const passwd = file('/etc/passwd');
    const group = file('/etc/group');
    return resolveUser(
      spec,
      passwd === undefined ? undefined : parsePasswd(passwd),
      group === undefined ? undefined : parseGroup(group),
    );
  } catch (err) {
    if (err instanceof UserLookupError || err instanceof ImageFileError)
      throw configError(site, `image user ${JSON.stringify(spec)}: ${err.detail}`, hint, container);
    throw err;
  }
}

/** The container's argv and environment; an image and spec that name no program is kubelet's CreateContainerError. */
export function containerCommand(
  hostname: string,
  spec: ContainerSpec,
  image: PreparedImage,
  site: Site,
): { env: Record<string, string>; argv: string[] } {
  try {
    return resolveCommand(image.config, spec, hostname);
  } catch (err) {
    if (!(err instanceof NoCommandError)) throw err;
    throw new RuntimeError({
      ...site,
      message: err.detail,
      hint: 'set command (or args) on the container, or use an image with an ENTRYPOINT or CMD',
      reason: 'CreateContainerError',
      container: spec.name,
    });
  }
}
