import type { SandboxSpec } from '../../crds/sandbox.js';

/*
 * What a new generation of a Sandbox spec asks of a running sandbox, as
 * kubelet treats an edited Pod: a changed container is killed and started
 * again with its new definition (same sandbox, same IP, the other containers
 * untouched); a change to what the sandbox itself is made of (network,
 * volumes, its cgroup, its namespaces, the set of containers) needs a new
 * sandbox; `paused` freezes or thaws; the rest (scheduling, restart policy,
 * deadlines, grace period, pull secrets) is read when it is used and takes
 * effect as it is. Pure, so the rules are one table test.
 */

export interface SpecDiff {
  /** Containers to restart with their new definition, in spec order. */
  restartContainers: string[];
  /** Field paths that need a new sandbox; empty when the sandbox stays. */
  recreateReasons: string[];
  /** The new `paused` when it changed. */
  pauseChange?: boolean;
}

type Container = SandboxSpec['containers'][number];

/** Sandbox-level fields a running sandbox is built from: a change needs a new one. */
const SANDBOX_FIELDS = [
  'volumes',
  'resources',
  'network',
  'hostname',
  'shareProcessNamespace',
  'hostUsers',
] as const satisfies readonly (keyof SandboxSpec)[];

/**
 * Container fields a new run takes up (image, command, environment, cgroup
 * limits, identity, mounts of existing volumes, terminal). `ports` is only
 * informational and `privileged` decides what the sandbox allows (a user
 * namespace refuses it), so it is a sandbox-level change.
 */
const CONTAINER_FIELDS = [
  'image',
  'imagePullPolicy',
  'command',
  'args',
  'env',
  'workingDir',
  'resources',
  'securityContext',
  'volumeMounts',
  'tty',
  'terminationMessagePath',
  'terminationMessagePolicy',
] as const satisfies readonly (keyof Container)[];

export function diffSpec(before: SandboxSpec, after: SandboxSpec): SpecDiff {
  const recreateReasons: string[] = [];
  for (const f of SANDBOX_FIELDS) {
    // network and resources are objects: name the sub-field that changed.
    const b = before[f];
    const a = after[f];
    if (isObject(b) && isObject(a)) recreateReasons.push(...changedKeys(b, a).map((k) => `spec.${f}.${k}`));
    else if (!same(b, a)) recreateReasons.push(`spec.${f}`);
  }

  const oldNames = before.containers.map((c) => c.name);
  const newNames = after.containers.map((c) => c.name);
  for (const n of newNames) if (!oldNames.includes(n)) recreateReasons.push(`spec.containers[${n}] (added)`);
  for (const n of oldNames) if (!newNames.includes(n)) recreateReasons.push(`spec.containers[${n}] (removed)`);
  const kept = newNames.filter((n) => oldNames.includes(n));
  if (
    !same(
      kept,
      oldNames.filter((n) => newNames.includes(n)),
    )
  )
    recreateReasons.push('spec.containers (order)');

  const restartContainers: string[] = [];
  for (const c of after.containers) {
    const old = before.containers.find((x) => x.name === c.name);
    if (!old) continue;
    if (!same(old.securityContext?.privileged ?? false, c.securityContext?.privileged ?? false))
      recreateReasons.push(`spec.containers[${c.name}].securityContext.privileged`);
    else if (CONTAINER_FIELDS.some((f) => !same(old[f], c[f]))) restartContainers.push(c.name);
  }

  const diff: SpecDiff = { restartContainers: recreateReasons.length ? [] : restartContainers, recreateReasons };
  if ((before.paused ?? false) !== (after.paused ?? false)) diff.pauseChange = after.paused ?? false;
  return diff;
}

/** Container fields that differ, for the Event that says why a container restarts. */
export function changedContainerFields(before: Container, after: Container): string[] {
  return CONTAINER_FIELDS.filter((f) => !same(before[f], after[f]));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function changedKeys(b: Record<string, unknown>, a: Record<string, unknown>): string[] {
  return [...new Set([...Object.keys(b), ...Object.keys(a)])].filter((k) => !same(b[k], a[k])).sort();
}

/** Structural equality of JSON values, key order ignored (specs come from JSON). */
function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (isObject(v))
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .filter((k) => v[k] !== undefined)
        .map((k) => [k, canonical(v[k])]),
    );
  return v;
}
