import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandboxDemand } from '../../crds/demand.js';
import { parseQuantity } from '../../crds/quantity.js';
import { sharesFromMilliCpu } from '../cgroups/cpu-shares.js';
import type { Sandbox, SandboxSpec } from '../../crds/sandbox.js';
import { SandpitError } from '../../lib/errors.js';
import { pid1Cgroup } from '../cgroups/paths.js';
import { describeSandbox } from '../contracts.js';
import { defaultPullPolicy } from '../images/reference.js';
import { pullCredentials } from '../images/pull-secrets.js';
import { allocateUsernsBlock, createUserNamespace, USERNS_SIZE } from '../namespaces/userns.js';
import { containerIdentity } from './container-identity.js';
import { now, type RuntimeContext } from './context.js';
import { configError, RuntimeError, type CreateStage } from './errors.js';
import { setPaused } from './pause.js';
import { startPid1 } from './pid1.js';
import { newRecord, type SandboxRecord } from './record.js';
import { startContainer } from './start-container.js';
import { teardown } from './stop.js';
import { faultPoint } from './wait.js';

/*
 * A sandbox's create, as runc runs a container's: a sequence of named steps
 * (cgroups, user namespace, storage, images, container configs, PID 1,
 * network, containers), each failure naming its step. The record is written
 * first, so a crash anywhere leaves one that says "half built" and recovery
 * tears it down; a failure tears down what was built and rethrows.
 */

/** Creates and starts the sandbox; the record of one this runtime already has is returned as it is. */
export async function createSandbox(ctx: RuntimeContext, sandbox: Sandbox): Promise<SandboxRecord> {
  const rec = newRecord(sandbox, now());
  const existing = ctx.sandboxes.get(rec.id);
  if (existing) return existing;
  const who = describeSandbox(rec.ref);
  if (!sandbox.spec.hostUsers) rec.userns = allocateUserns(ctx, sandbox.spec, who);
  const dir = ctx.deps.store.sandboxDir(rec.id);
  const log = ctx.log(rec);
  ctx.busy.add(rec.id);
  try {
    mkdirSync(join(dir, 'containers'), { recursive: true });
    mkdirSync(join(dir, 'logs'), { recursive: true });
    // Written first: a crash from here on leaves a record that says "half built".
    ctx.save(rec);
    ctx.sandboxes.set(rec.id, rec);
    faultPoint('after-record');
    const t = new StepTimer();
    createCgroups(ctx, rec);
    t.mark('cgroups');
    if (rec.userns) {
      await createUserNamespace(ctx.config.binaries.init, rec.userns.base, join(dir, 'userns'), {
        sandbox: who,
        step: 'create user namespace',
      });
      faultPoint('after-userns');
      t.mark('userns');
    }
    mountSandboxStorage(ctx, rec);
    faultPoint('after-mounts');
    t.mark('mounts');
    await prepareImages(ctx, rec, sandbox);
    checkContainerConfigs(ctx, rec);
    t.mark('images');
    await startPid1(ctx, rec);
    t.mark('pid1');
    faultPoint('after-pid1');
    ctx.deps.cgroups.delegateTo(rec.id, { sandbox: who, step: 'delegate controllers' });
    await setUpNetwork(ctx, rec);
    t.mark('network');
    for (const c of rec.containers) await startContainer(ctx, rec, c).catch(inStage(c.name, 'start'));
    t.mark('containers');
    faultPoint('after-containers');
    rec.phase = 'Running';
    if (sandbox.spec.paused) setPaused(ctx, rec, true);
    ctx.save(rec);
    log.info({ step: 'create', pid1: rec.pid1?.pid, ms: t.marks }, 'sandbox running');
    return rec;
  } catch (err) {
    log.error({ err, step: 'create' }, 'sandbox creation failed; tearing down what was built');
    await teardown(ctx, rec).catch((e: unknown) => log.error({ err: e }, 'teardown after failed create'));
    throw err;
  } finally {
    ctx.busy.delete(rec.id);
    // Warm the next PID 1 now: during the create it would compete for the CPU.
    setImmediate(() => void ctx.warm.fill());
  }
}

/**
 * A free block of host ids for a hostUsers: false sandbox, taken from the
 * blocks of every sandbox this runtime knows (re-adopted ones included).
 * Refused, with nothing created, where a user namespace cannot work.
 */
function allocateUserns(ctx: RuntimeContext, spec: SandboxSpec, who: string): { base: number; size: number } {
  const site = { sandbox: who, step: 'allocate user namespace' };
  const privileged = spec.containers.find((c) => c.securityContext?.privileged);
  // A container configuration that cannot work, reported as kubelet reports one (the container waits with this reason).
  if (privileged)
    throw configError(
      site,
      `container ${privileged.name} is privileged, which hostUsers: false does not allow: privileged means the node's root, unconfined`,
      'drop privileged: true or set hostUsers: true',
      privileged.name,
    );
  const used = [...ctx.sandboxes.values()].flatMap((r) => (r.userns ? [r.userns.base] : []));
  const range = ctx.config.usernsRange;
  const base = allocateUsernsBlock(range, used);
  if (base === undefined)
    throw new SandpitError({
      ...site,
      message: `every block of ${USERNS_SIZE} host ids in the agent's range ${range.first}:${range.count} is in use`,
      hint: 'delete sandboxes with hostUsers: false or widen SANDPIT_USERNS_RANGE',
      reason: 'UserNamespaceRangeExhausted',
    });
  return { base, size: USERNS_SIZE };
}

/** The sandbox cgroup with its limits, and the PID 1 leaf below it. */
function createCgroups(ctx: RuntimeContext, rec: SandboxRecord): void {
  const { cgroups } = ctx.deps;
  const site = (step: string) => ({ sandbox: describeSandbox(rec.ref), step });
  cgroups.create(rec.id, site('create sandbox cgroup'));
  cgroups.create(pid1Cgroup(rec.id), site('create PID 1 cgroup'));
  const r = rec.spec.resources;
  cgroups.setLimits(
    rec.id,
    {
      pids: r.pids,
      memory: r.memory ? parseQuantity(r.memory) : undefined,
      cpu: r.cpu ? parseQuantity(r.cpu) : undefined,
    },
    site('set sandbox limits'),
  );
  // Its weight among the node's sandboxes, from what it requests (the amount the scheduler reserved for it).
  cgroups.setCpuShares(rec.id, sharesFromMilliCpu(sandboxDemand(rec.spec).milliCpu), site('set sandbox CPU weight'));
}

/** The sandbox's /dev/shm and its emptyDir volumes. */
function mountSandboxStorage(ctx: RuntimeContext, rec: SandboxRecord): void {
  const dir = ctx.deps.store.sandboxDir(rec.id);
  const shmBytes = ctx.config.shmBytes;
  const site = { sandbox: describeSandbox(rec.ref), step: 'mount sandbox storage' };
  const { mounts } = ctx.deps;
  // With a user namespace, /dev/shm and volumes belong to the container's root (host id base).
  const owner = rec.userns?.base;
  mkdirSync(join(dir, 'shm'), { recursive: true });
  mounts.tmpfs('shm', join(dir, 'shm'), { size: shmBytes, noexec: true, owner }, site);
  for (const v of rec.spec.volumes ?? []) {
    const vdir = join(dir, 'volumes', v.name);
    mkdirSync(vdir, { recursive: true });
    const volumeSite = { ...site, step: `mount volume ${v.name}` };
    if (v.emptyDir.medium === 'Memory') {
      const size = v.emptyDir.sizeLimit ? parseQuantity(v.emptyDir.sizeLimit) : shmBytes;
      mounts.tmpfs('emptydir', vdir, { size, owner }, volumeSite);
    } else if (v.emptyDir.sizeLimit) {
      // A disk emptyDir with a limit is a size-capped tmpfs too: the node has no per-directory quota to rely on.
      mounts.tmpfs('emptydir', vdir, { size: parseQuantity(v.emptyDir.sizeLimit), owner }, volumeSite);
    } else if (rec.userns) {
      chownSync(vdir, rec.userns.base, rec.userns.base);
    }
  }
}

/**
 * Each container's image, as kubelet pulls: no policy in the spec means
 * Always for :latest or untagged images, IfNotPresent otherwise. A pull
 * secret that did not reach the agent fails here too, as an image error.
 */
async function prepareImages(ctx: RuntimeContext, rec: SandboxRecord, sandbox: Sandbox): Promise<void> {
  for (const c of sandbox.spec.containers) {
    rec.images[c.name] = await Promise.resolve()
      .then(() =>
        ctx.deps.images.prepare(c.image, {
          policy: c.imagePullPolicy ?? defaultPullPolicy(c.image),
          credentials: pullCredentials(sandbox, c.name),
          sandbox: rec.ref,
        }),
      )
      .catch(inStage(c.name, 'image'));
  }
}

/** A user the image does not define (and the like) fails here, before any process exists. */
function checkContainerConfigs(ctx: RuntimeContext, rec: SandboxRecord): void {
  const who = describeSandbox(rec.ref);
  for (const c of rec.spec.containers) {
    try {
      containerIdentity(ctx.config, c, rec.images[c.name]!, {
        sandbox: who,
        step: `resolve the user of container ${c.name}`,
      });
    } catch (err) {
      inStage(c.name, 'config')(err);
    }
  }
}

/** The sandbox's network namespace configured, and the /etc files every container gets from it. */
async function setUpNetwork(ctx: RuntimeContext, rec: SandboxRecord): Promise<void> {
  const dir = ctx.deps.store.sandboxDir(rec.id);
  rec.network = await ctx.deps.network.setup(
    {
      sandbox: rec.ref,
      netnsPath: `/proc/${rec.pid1!.pid}/ns/net`,
      hostname: rec.hostname,
      network: rec.spec.network,
    },
    ctx.log(rec),
  );
  writeFileSync(join(dir, 'hostname'), `${rec.hostname}\n`);
  writeFileSync(join(dir, 'hosts'), rec.network.hosts);
  writeFileSync(join(dir, 'resolv.conf'), rec.network.resolvConf);
  // Bind-mounted into every container: owned by its root, as kubelet does for a pod with its own user namespace.
  if (rec.userns)
    for (const f of ['hostname', 'hosts', 'resolv.conf']) chownSync(join(dir, f), rec.userns.base, rec.userns.base);
}

/** Rethrows an error of a create as one that names the container and the stage it failed in. */
function inStage(container: string, stage: CreateStage): (err: unknown) => never {
  return (err: unknown) => {
    throw RuntimeError.inCreate(err, container, stage);
  };
}

/** Milliseconds spent per creation step, for the log line that says a sandbox runs. */
class StepTimer {
  readonly marks: Record<string, number> = {};
  #last = performance.now();
  mark(step: string): void {
    const t = performance.now();
    this.marks[step] = Math.round((t - this.#last) * 10) / 10;
    this.#last = t;
  }
}
