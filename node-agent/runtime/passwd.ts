import { SandpitError } from '../../lib/errors.js';

/*
 * Image users by name: an image config's `User` ("nobody", "www-data:www-data",
 * "1000:staff", "0") resolved against the image's own /etc/passwd and
 * /etc/group, with the semantics runc and containerd give it, so that an
 * image that says USER nobody runs as nobody and not as root. Pure: the files
 * are read elsewhere (image-files.ts), confined to the image's root.
 */

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** The passwd name of the user, when it has an entry (its /etc/group memberships follow from it). */
  name?: string;
  /** gids of the groups that list the user as a member, in file order (Docker and containerd add these). */
  additionalGids: number[];
}

/** A user or group name the image's files do not define, or an id out of range: the container cannot start. */
export class UserLookupError extends SandpitError {
  constructor(message: string) {
    super({ step: 'look up the image user', message });
    this.name = 'UserLookupError';
  }
}

/** Largest uid/gid runc accepts (2^31 - 1). */
const ID_MAX = 2 ** 31 - 1;

const isId = (s: string) => /^\d+$/.test(s);

function toId(s: string, what: string): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n > ID_MAX) throw new UserLookupError(`${what} ${s} is out of range (0..${ID_MAX})`);
  return n;
}

/** Lines of a colon-separated file, without comments, blank lines and NIS (+/-) lines. */
function records(text: string): string[][] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#') && !l.startsWith('+') && !l.startsWith('-'))
    .map((l) => l.split(':'));
}

/** /etc/passwd: name:password:uid:gid:gecos:home:shell. Malformed lines are skipped, as libc does. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const f of records(text)) {
    if (f.length < 4 || !f[0] || !isId(f[2]!) || !isId(f[3]!)) continue;
    out.push({ name: f[0], uid: Number(f[2]), gid: Number(f[3]) });
  }
  return out;
}

/** /etc/group: name:password:gid:member,member,... Malformed lines are skipped. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const f of records(text)) {
    if (f.length < 3 || !f[0] || !isId(f[2]!)) continue;
    out.push({
      name: f[0],
      gid: Number(f[2]),
      members: (f[3] ?? '')
        .split(',')
        .map((m) => m.trim())
        .filter(Boolean),
    });
  }
  return out;
}

/**
 * Resolves "user[:group]" as runc's GetExecUser and containerd's
 * WithAdditionalGIDs do:
 * - empty means root (uid 0, gid 0);
 * - a name must have a passwd entry; a numeric uid need not, and then its gid
 *   is 0 (runc's default) unless a group is given, else the entry's primary gid;
 * - a group name must have a group entry; a numeric gid need not;
 * - the user's name (when known) brings in every group that lists it as a
 *   member, except the group of the same name (containerd's rule).
 * `passwd`/`group` undefined: the image has no such file (every name fails).
 */
export function resolveUser(
  spec: string,
  passwd: PasswdEntry[] | undefined,
  group: GroupEntry[] | undefined,
): ResolvedUser {
  const trimmed = spec.trim();
  const colon = trimmed.indexOf(':');
  const userPart = (colon < 0 ? trimmed : trimmed.slice(0, colon)) || '0';
  const groupPart = colon < 0 ? '' : trimmed.slice(colon + 1);

  let uid: number;
  let gid = 0;
  let name: string | undefined;
  if (isId(userPart)) {
    uid = toId(userPart, 'uid');
    const entry = passwd?.find((p) => p.uid === uid);
    if (entry) ({ gid, name } = entry);
  } else {
    const entry = passwd?.find((p) => p.name === userPart);
    if (!entry)
      throw new UserLookupError(
        `unable to find user ${userPart}: ${passwd ? 'no matching entry in /etc/passwd' : 'the image has no /etc/passwd'}`,
      );
    ({ uid, gid, name } = entry);
  }

  if (groupPart) {
    if (isId(groupPart)) gid = toId(groupPart, 'gid');
    else {
      const entry = group?.find((g) => g.name === groupPart);
      if (!entry)
        throw new UserLookupError(
          `unable to find group ${groupPart}: ${group ? 'no matching entry in /etc/group' : 'the image has no /etc/group'}`,
        );
      gid = entry.gid;
    }
  }

  const additionalGids: number[] = [];
  if (name !== undefined) {
    for (const g of group ?? [])
      if (g.name !== name && g.members.includes(name) && !additionalGids.includes(g.gid)) additionalGids.push(g.gid);
  }
  return { uid, gid, ...(name !== undefined ? { name } : {}), additionalGids };
}
