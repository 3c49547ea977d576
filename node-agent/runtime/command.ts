import { SandpitError } from '../../lib/errors.js';
import type { ImageConfig } from '../contracts.js';

/*
 * A container's argv and environment from its image config and its spec, as
 * kubelet and containerd make them together. Pure; the runtime calls it for
 * every start and exec.
 */

/** containerd's default for a process without PATH (oci.defaultUnixEnv). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface CommandSpec {
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
}

/** Neither the container nor its image names a program to run (kubelet: CreateContainerError). */
export class NoCommandError extends SandpitError {
  constructor(message: string) {
    super({ step: 'resolve the command', message });
    this.name = 'NoCommandError';
  }
}

/**
 * kubelet's $(VAR) expansion (third_party/forked/golang/expansion): `$$` is a
 * literal `$`, `$(NAME)` is NAME's value when `vars` has it and stays as
 * written otherwise, an unclosed `$(` and any other `$` stay as they are.
 */
export function expandVars(input: string, vars: ReadonlyMap<string, string>): string {
  let out = '';
  let i = 0;
  while (i < input.length) {
    const c = input[i]!;
    if (c !== '$' || i + 1 === input.length) {
      out += c;
      i++;
      continue;
    }
    const next = input[i + 1]!;
    if (next === '$') {
      out += '$';
      i += 2;
    } else if (next === '(') {
      const close = input.indexOf(')', i + 2);
      if (close < 0) {
        out += '$(';
        i += 2;
      } else {
        const name = input.slice(i + 2, close);
        out += vars.get(name) ?? `$(${name})`;
        i = close + 1;
      }
    } else {
      out += `$${next}`;
      i += 2;
    }
  }
  return out;
}

/**
 * The spec's env as kubelet resolves it: in order, each value expanded with
 * the variables defined before it in the spec (not the image's: kubelet does
 * not see those), a later entry of a name replacing an earlier one.
 */
export function specEnv(env: CommandSpec['env']): Map<string, string> {
  const vars = new Map<string, string>();
  for (const e of env ?? []) vars.set(e.name, expandVars(e.value ?? '', vars));
  return vars;
}

/**
 * The process environment as containerd builds it: PATH and HOSTNAME first,
 * then the image's Env, then the spec's (resolved by specEnv), each replacing
 * an earlier entry of its name in place. An image entry without `=` unsets an
 * earlier one of that name (containerd's replaceOrAppendEnvValues), so
 * `ENV PATH` with no value leaves no PATH at all.
 */
export function containerEnv(image: ImageConfig, spec: Map<string, string>, hostname: string): Record<string, string> {
  const env = new Map<string, string>([
    ['PATH', DEFAULT_PATH],
    ['HOSTNAME', hostname],
  ]);
  for (const kv of image.env ?? []) {
    const eq = kv.indexOf('=');
    if (eq < 0) env.delete(kv);
    else if (eq > 0) env.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  for (const [k, v] of spec) env.set(k, v);
  return Object.fromEntries(env);
}

/**
 * argv as Kubernetes makes it (kubelet expands, containerd's WithProcessArgs
 * merges): command replaces the image ENTRYPOINT and drops its CMD; args alone
 * replace CMD; neither keeps both. An empty list counts as unset (the CRI
 * cannot tell them apart), and an ENTRYPOINT of [""] is none, as in Docker.
 * Only what the spec wrote is expanded, with the spec's env.
 */
export function containerArgv(image: ImageConfig, spec: CommandSpec, vars: ReadonlyMap<string, string>): string[] {
  const expand = (xs: string[] | undefined) => (xs ?? []).map((s) => expandVars(s, vars));
  let command = expand(spec.command);
  let args = expand(spec.args);
  if (!command.length) {
    if (!args.length) args = [...(image.cmd ?? [])];
    const ep = image.entrypoint ?? [];
    if (!(ep.length === 1 && ep[0] === '')) command = [...ep];
  }
  const argv = [...command, ...args];
  if (!argv.length)
    throw new NoCommandError(
      'no command: the image has no ENTRYPOINT or CMD and the container sets neither command nor args',
    );
  return argv;
}

/** Both at once, for a container start. */
export function resolveCommand(
  image: ImageConfig,
  spec: CommandSpec,
  hostname: string,
): { argv: string[]; env: Record<string, string> } {
  const vars = specEnv(spec.env);
  return { argv: containerArgv(image, spec, vars), env: containerEnv(image, vars, hostname) };
}
