/*
 * Command-line parsing of kubectl-sandpit, kubectl style: global flags
 * anywhere before `--`, the command after `--` passed through untouched.
 * Pure, so every usage error is unit-tested.
 */

import { UsageError } from './errors.js';

export interface Globals {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  controllerNamespace: string;
  /** The controller's Service (port `streams`): <release>-controller of the chart. */
  controllerService: string;
  /** Development escape hatch: talk to the controller's streams port directly. */
  direct?: string;
}

export type Command =
  | { name: 'exec'; sandbox: string; container?: string; stdin: boolean; tty: boolean; command: string[] }
  | {
      name: 'logs';
      sandbox: string;
      container?: string;
      follow: boolean;
      previous: boolean;
      timestamps: boolean;
      tail?: number;
      sinceSeconds?: number;
    }
  | { name: 'port-forward'; sandbox: string; ports: { local: number; remote: number }[]; address: string }
  | { name: 'cp'; from: string; to: string; container?: string }
  | { name: 'top'; sandbox: string }
  | { name: 'describe'; sandbox: string }
  | { name: 'help' };

export const USAGE = `kubectl sandpit: exec, logs, port-forward, cp, top and describe for sandpit Sandboxes.

Usage:
  kubectl sandpit exec SANDBOX [-c CONTAINER] [-i] [-t] -- COMMAND [ARG...]
  kubectl sandpit logs SANDBOX [-c CONTAINER] [-f] [--previous] [--since=DURATION] [--tail=N] [--timestamps]
  kubectl sandpit port-forward SANDBOX [LOCAL:]REMOTE [...] [--address=127.0.0.1]
  kubectl sandpit cp SANDBOX:PATH LOCAL_PATH | LOCAL_PATH SANDBOX:PATH [-c CONTAINER]
  kubectl sandpit top SANDBOX
  kubectl sandpit describe SANDBOX

Global flags: --kubeconfig PATH, --context NAME, -n/--namespace NS,
  --controller-namespace NS (where sandpit runs; default sandpit-system or $SANDPIT_NAMESPACE),
  --controller-service NAME (the chart's <release>-controller; default sandpit-controller or $SANDPIT_CONTROLLER_SERVICE),
  --direct URL (development: the controller's streams address instead of the API server's service proxy).`;

/** Go-style durations as kubectl takes them for --since: 30s, 5m, 1h30m. */
export function parseDuration(s: string): number {
  const re = /(\d+(?:\.\d+)?)(h|m|s|ms)/gy;
  let total = 0;
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = re.exec(s))) {
    total += Number(m[1]) * { h: 3600, m: 60, s: 1, ms: 0.001 }[m[2] as 'h' | 'm' | 's' | 'ms'];
    consumed = re.lastIndex;
  }
  if (!s || consumed !== s.length) throw new UsageError(`invalid duration "${s}": use forms like 30s, 5m or 1h`);
  return Math.ceil(total);
}

function portPair(spec: string): { local: number; remote: number } {
  const parts = spec.split(':');
  const num = (v: string | undefined) => {
    const n = Number(v);
    if (!v || !/^\d+$/.test(v) || n > 65535)
      throw new UsageError(`invalid port "${v ?? ''}" in "${spec}": ports are 0-65535 (0 as LOCAL picks a free port)`);
    return n;
  };
  if (parts.length === 1) return { local: num(parts[0]), remote: num(parts[0]) };
  if (parts.length === 2) {
    const remote = num(parts[1]);
    if (remote === 0) throw new UsageError(`the remote port in "${spec}" cannot be 0`);
    return { local: parts[0] === '' ? 0 : num(parts[0]), remote };
  }
  throw new UsageError(`invalid port mapping "${spec}": use [LOCAL:]REMOTE`);
}

export function parseArgs(argv: string[], env: NodeJS.ProcessEnv = {}): { globals: Globals; command: Command } {
  const dash = argv.indexOf('--');
  const before = dash >= 0 ? argv.slice(0, dash) : argv;
  const after = dash >= 0 ? argv.slice(dash + 1) : [];
  const globals: Globals = {
    controllerNamespace: env.SANDPIT_NAMESPACE || 'sandpit-system',
    controllerService: env.SANDPIT_CONTROLLER_SERVICE || 'sandpit-controller',
  };
  const flags = new Map<string, string | true>();
  const positional: string[] = [];
  const valued = new Set([
    'kubeconfig',
    'context',
    'namespace',
    'n',
    'controller-namespace',
    'controller-service',
    'direct',
    'container',
    'c',
    'since',
    'tail',
    'address',
  ]);
  for (let i = 0; i < before.length; i++) {
    const a = before[i]!;
    if (a === '-it' || a === '-ti') {
      flags.set('i', true);
      flags.set('t', true);
      continue;
    }
    const m = /^--?([A-Za-z][\w-]*)(?:=(.*))?$/.exec(a);
    if (!m) {
      positional.push(a);
      continue;
    }
    const name = m[1]!;
    if (valued.has(name)) {
      const v = m[2] ?? before[++i];
      if (v === undefined) throw new UsageError(`flag ${a} needs a value`);
      flags.set(name, v);
    } else if (['i', 'stdin', 't', 'tty', 'f', 'follow', 'previous', 'p', 'timestamps', 'help', 'h'].includes(name)) {
      flags.set(name, true);
    } else {
      throw new UsageError(`unknown flag ${a}`);
    }
  }
  const str = (...names: string[]) => names.map((n) => flags.get(n)).find((v): v is string => typeof v === 'string');
  const bool = (...names: string[]) => names.some((n) => flags.get(n) === true);
  const set = <K extends keyof Globals>(k: K, v: Globals[K] | undefined) => {
    if (v !== undefined) globals[k] = v;
  };
  set('kubeconfig', str('kubeconfig'));
  set('context', str('context'));
  set('namespace', str('namespace', 'n'));
  set('direct', str('direct'));
  const cns = str('controller-namespace');
  if (cns) globals.controllerNamespace = cns;
  const svc = str('controller-service');
  if (svc) globals.controllerService = svc;

  const [name, ...rest] = positional;
  if (!name || bool('help', 'h') || name === 'help') return { globals, command: { name: 'help' } };
  const container = str('container', 'c');
  const sandbox = () => {
    if (!rest[0]) throw new UsageError(`${name} needs a SANDBOX name`);
    return rest[0];
  };
  switch (name) {
    case 'exec': {
      const sbx = sandbox();
      if (rest.length > 1)
        throw new UsageError(
          `exec: put the command after --, as in: kubectl sandpit exec ${sbx} -- ${rest.slice(1).join(' ')}`,
        );
      if (after.length === 0)
        throw new UsageError('exec needs a command after --, as in: kubectl sandpit exec SANDBOX -- sh');
      return {
        globals,
        command: {
          name: 'exec',
          sandbox: sbx,
          ...(container ? { container } : {}),
          stdin: bool('i', 'stdin'),
          tty: bool('t', 'tty'),
          command: after,
        },
      };
    }
    case 'logs': {
      const tail = str('tail');
      if (tail !== undefined && !/^-?\d+$/.test(tail)) throw new UsageError(`--tail must be a number, got "${tail}"`);
      const since = str('since');
      const cmd: Command = {
        name: 'logs',
        sandbox: sandbox(),
        follow: bool('f', 'follow'),
        previous: bool('previous', 'p'),
        timestamps: bool('timestamps'),
      };
      if (container) cmd.container = container;
      if (tail !== undefined && Number(tail) >= 0) cmd.tail = Number(tail);
      if (since !== undefined) cmd.sinceSeconds = parseDuration(since);
      return { globals, command: cmd };
    }
    case 'port-forward': {
      const sbx = sandbox();
      if (rest.length < 2)
        throw new UsageError(
          'port-forward needs at least one [LOCAL:]REMOTE port, as in: kubectl sandpit port-forward SANDBOX 8080:80',
        );
      return {
        globals,
        command: {
          name: 'port-forward',
          sandbox: sbx,
          ports: rest.slice(1).map(portPair),
          address: str('address') ?? '127.0.0.1',
        },
      };
    }
    case 'cp': {
      if (rest.length !== 2) throw new UsageError('cp needs a source and a destination, one of them SANDBOX:PATH');
      const [from, to] = rest as [string, string];
      if (isRemote(from) === isRemote(to))
        throw new UsageError(
          'cp copies between a sandbox and here: exactly one of source and destination is SANDBOX:PATH',
        );
      return { globals, command: { name: 'cp', from, to, ...(container ? { container } : {}) } };
    }
    case 'top':
      return { globals, command: { name: 'top', sandbox: sandbox() } };
    case 'describe':
      return { globals, command: { name: 'describe', sandbox: sandbox() } };
    default:
      throw new UsageError(`unknown command "${name}": use exec, logs, port-forward, cp, top or describe`);
  }
}

/** SANDBOX:PATH, as kubectl cp spells it (a local path with a colon needs ./ in front). */
export function isRemote(spec: string): boolean {
  const i = spec.indexOf(':');
  return (
    i > 0 && !spec.startsWith('/') && !spec.startsWith('.') && /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(spec.slice(0, i))
  );
}

export function splitRemote(spec: string): { sandbox: string; path: string } {
  const i = spec.indexOf(':');
  return { sandbox: spec.slice(0, i), path: spec.slice(i + 1) || '.' };
}
