import type { ImageConfig } from '../contracts.js';

/*
 * How an image config and a container spec combine, as the kubelet does it.
 * Pure: the runtime calls it with the PreparedImage config and the container.
 */

export interface ContainerSpecPart {
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  workingDir?: string;
  securityContext?: { runAsUser?: number; runAsGroup?: number };
}

/** The user to run as: numbers when known, names for the runtime to look up in the rootfs /etc/passwd and /etc/group. */
export interface ResolvedUserSpec {
  uid?: number;
  user?: string;
  gid?: number;
  group?: string;
}

export interface MergedContainerConfig {
  argv: string[];
  /** NAME=value, image first then container, later names replacing earlier ones in place. */
  env: string[];
  workingDir: string;
  user: ResolvedUserSpec;
}

export class ContainerConfigError extends Error {}

/** Kubernetes $(VAR) expansion: $$ escapes, unknown references stay as written. */
export function expandVars(s: string, vars: Map<string, string>): string {
  return s.replace(/\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)/g, (m, name: string | undefined) => {
    if (m === '$$') return '$';
    return vars.get(name!) ?? m;
  });
}

/** Parses an image User ("1000", "1000:1000", "app", "app:staff"). */
export function parseImageUser(user: string | undefined): ResolvedUserSpec {
  if (!user) return {};
  const [u, g] = user.split(':', 2);
  const out: ResolvedUserSpec = {};
  if (u) {
    if (/^[0-9]+$/.test(u)) out.uid = Number(u);
    else out.user = u;
  }
  if (g) {
    if (/^[0-9]+$/.test(g)) out.gid = Number(g);
    else out.group = g;
  }
  return out;
}

/**
 * command replaces ENTRYPOINT and drops CMD; args alone replace CMD; neither
 * keeps both. Env adds to the image's; workingDir falls back to the image's,
 * then "/"; runAsUser/runAsGroup override the image User.
 */
export function mergeContainerConfig(image: ImageConfig, c: ContainerSpecPart): MergedContainerConfig {
  const env = new Map<string, string>();
  for (const kv of image.env ?? []) {
    const eq = kv.indexOf('=');
    if (eq > 0) env.set(kv.slice(0, eq), kv.slice(eq + 1));
    else if (eq < 0 && kv) env.set(kv, '');
  }
  for (const e of c.env ?? []) env.set(e.name, expandVars(e.value ?? '', env));
  if (!env.has('PATH')) env.set('PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');

  let entry: string[];
  let args: string[];
  if (c.command) {
    entry = c.command;
    args = c.args ?? [];
  } else {
    entry = image.entrypoint ?? [];
    args = c.args ?? image.cmd ?? [];
  }
  const argv = [...entry.map((s) => (c.command ? expandVars(s, env) : s)), ...args.map((s) => (c.args ? expandVars(s, env) : s))];
  if (argv.length === 0) throw new ContainerConfigError('no command: the image has no ENTRYPOINT or CMD and the container sets neither command nor args');

  const user = parseImageUser(image.user);
  if (c.securityContext?.runAsUser !== undefined) {
    user.uid = c.securityContext.runAsUser;
    delete user.user;
  }
  if (c.securityContext?.runAsGroup !== undefined) {
    user.gid = c.securityContext.runAsGroup;
    delete user.group;
  }
  return {
    argv,
    env: [...env].map(([k, v]) => `${k}=${v}`),
    workingDir: c.workingDir ?? (image.workingDir || '/'),
    user,
  };
}
