import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sandbox } from '../../crds/sandbox.js';
import { createLogger } from '../../lib/log.js';
import { sandboxIdFor, type SandboxObservation } from '../../node-agent/contracts.js';
import type { RuntimeService } from '../../node-agent/runtime/service.js';
import { defaultConfig, type RuntimeConfig } from '../../node-agent/runtime/config.js';
import { DirectoryImageProvider } from '../../node-agent/runtime/directory-image.js';
import { LoopbackOnlyNetwork } from '../../node-agent/runtime/none-network.js';
import { mountsUnder } from '../../node-agent/runtime/mounts.js';
import { SandboxSupervisor } from '../../node-agent/runtime/supervisor.js';
import { nodeEffects } from '../../node-agent/runtime/deps.js';
import type { SandboxRecord } from '../../node-agent/runtime/record.js';
import { libc } from '../../node-agent/sys/libc.js';
import { buildBusyboxRootfs } from '../fixtures/busybox-rootfs.js';

/*
 * Shared set-up for the runtime's node-tier tests: a private cgroup parent
 * (sandpit-test-<pid>) and state root per run, so concurrent runs and other
 * engineers' tests never collide, and a check that nothing is left behind.
 */

export const ROOTFS = buildBusyboxRootfs(join(tmpdir(), 'sandpit-test-rootfs'));

export interface TestRuntime {
  rt: SandboxSupervisor;
  config: RuntimeConfig;
  /** Stops the runtime, deletes what is left and asserts nothing leaked. */
  cleanup(): Promise<void>;
}

let counter = 0;

export function testConfig(over: Partial<RuntimeConfig> = {}): RuntimeConfig {
  const stateRoot = mkdtempSync(join(tmpdir(), `sandpit-test-${process.pid}-`));
  return defaultConfig({
    stateRoot,
    cgroupParent: `sandpit-test-${process.pid}-${counter++}`,
    pollMs: 25,
    restartBackoff: { baseMs: 50, maxMs: 400 },
    log: { maxBytes: 64 * 1024, maxFiles: 2 },
    ...over,
  });
}

export async function startRuntime(config: RuntimeConfig): Promise<SandboxSupervisor> {
  return SandboxSupervisor.start(config, {
    ...(await nodeEffects(config)),
    images: new DirectoryImageProvider(),
    network: new LoopbackOnlyNetwork(),
    log: createLogger('runtime-test'),
  });
}

export async function startTestRuntime(over: Partial<RuntimeConfig> = {}): Promise<TestRuntime> {
  const config = testConfig(over);
  const rt = await startRuntime(config);
  return { rt, config, cleanup: () => cleanupRuntime(rt, config) };
}

export async function cleanupRuntime(rt: SandboxSupervisor | undefined, config: RuntimeConfig): Promise<void> {
  if (rt) {
    for (const s of rt.list()) await rt.delete(s.id);
    await rt.close();
  }
  const leftovers = mountsUnder(config.stateRoot);
  const cgroupsLeft = rt?.cgroups.listSandboxes() ?? [];
  await rt?.cgroups.removeParent({ step: 'test cleanup' });
  rmSync(config.stateRoot, { recursive: true, force: true });
  if (leftovers.length) throw new Error(`mounts leaked: ${leftovers.join(', ')}`);
  if (cgroupsLeft.length) throw new Error(`cgroups leaked: ${cgroupsLeft.join(', ')}`);
}

/** A Sandbox object running one or more busybox containers. */
export function sandbox(name: string, spec: Record<string, unknown>): Sandbox {
  return Sandbox.parse({
    apiVersion: 'sandpit.dev/v1alpha1',
    kind: 'Sandbox',
    metadata: { namespace: 'test', name, uid: `${name}-${process.pid}-${counter++}` },
    spec: { network: { mode: 'None' }, terminationGracePeriodSeconds: 2, ...spec },
  });
}

export const sh = (name: string, script: string, extra: Record<string, unknown> = {}) => ({
  name,
  image: `dir:${ROOTFS}`,
  command: ['/bin/sh', '-c', script],
  ...extra,
});

/** Guests under emulation (the cgroup v2 VM) are many times slower; they say so here. */
export const SCALE = Number(process.env.SANDPIT_TEST_TIMEOUT_SCALE ?? 1) || 1;

export async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs * SCALE;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The text a container wrote to stdout/stderr, without the CRI prefixes. */
export function logText(rt: SandboxSupervisor, rec: SandboxRecord, container: string): string {
  const path = rt.logPath(rec.id, container);
  if (!existsSync(path)) return '';
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ').slice(3).join(' '))
    .join('\n');
}

const ioctlCount = libc.func('int ioctl(int fd, unsigned long request, _Out_ int *count)');
const FIONREAD = 0x541b;

/**
 * Bytes waiting in a log FIFO that the runtime's log reader has not taken yet.
 * FIONREAD counts what is in the pipe whichever end asks, so this opens it as a
 * writer and never competes with the reader (the runtime holds a write end of
 * its own, so closing this one sends the reader no EOF). The reader runs in
 * this process: once the pipe is empty, its data handler has written the log.
 */
function unreadLogBytes(fifo: string): number {
  if (!existsSync(fifo)) return 0;
  const fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  try {
    const count = [0];
    if (ioctlCount(fd, FIONREAD, count) !== 0) throw new Error(`ioctl FIONREAD on ${fifo} failed`);
    return count[0]!;
  } finally {
    closeSync(fd);
  }
}

/** Every byte the containers wrote to stdout and stderr is in their logs (tty containers log through the terminal, not these FIFOs). */
const logsDrained = (rt: SandboxSupervisor, rec: SandboxRecord) =>
  rec.containers.every((c) =>
    ['stdout.fifo', 'stderr.fifo'].every((f) => unreadLogBytes(join(rt.store.containerDir(rec.id, c.name), f)) === 0),
  );

export async function runToCompletion(rt: SandboxSupervisor, sb: Sandbox): Promise<SandboxRecord> {
  const rec = await rt.create(sb);
  await waitFor('containers to finish', () => rec.containers.every((c) => c.state?.terminated));
  await waitFor('the log readers to drain the FIFOs', () => logsDrained(rt, rec));
  return rec;
}

export const idOf = (sb: Sandbox) => sandboxIdFor(sb.metadata.uid as string);

/**
 * Applies through the agent's runtime service and waits for its background
 * create to end: built (Running, Paused, ...) or a failure in the status.
 */
export async function applied(svc: RuntimeService, sb: Sandbox): Promise<SandboxObservation> {
  await svc.apply(sb);
  const uid = sb.metadata.uid as string;
  const generation = sb.metadata.generation ?? 0;
  return waitFor(`the create of ${sb.metadata.name} to end`, () => {
    const o = svc.get(uid);
    return o && o.generation === generation && (o.status.phase !== 'Pending' || o.status.reason !== undefined)
      ? o
      : undefined;
  });
}
