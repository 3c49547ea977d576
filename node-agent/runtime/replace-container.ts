import { sandboxDemand } from '../../crds/demand.js';
import type { Sandbox } from '../../crds/sandbox.js';
import { sharesFromMilliCpu } from '../cgroups/cpu-shares.js';
import { SandpitError } from '../../lib/errors.js';
import { describeSandbox } from '../contracts.js';
import { pullCredentials } from '../images/pull-secrets.js';
import { defaultPullPolicy } from '../images/reference.js';
import { restartDelay } from '../process/restart.js';
import { containerCommand, containerIdentity } from './container-identity.js';
import type { RuntimeContext } from './context.js';
import type { SandboxRecord } from './record.js';
import { startContainer } from './start-container.js';
import { stopContainerRun } from './stop.js';
import { waitingAfterFailedStart } from './transitions.js';
import { waitUntil } from './wait.js';

/**
 * An edited container, as kubelet handles a changed container definition:
 * the image is prepared and the new definition checked first (a failure
 * leaves the old run alone), then the old run is stopped (SIGTERM, SIGKILL
 * after the grace period) and the new one started in the same sandbox, with
 * a fresh cgroup (limits as the new spec says) and restartCount + 1. The
 * log file goes on, so `logs --previous` shows the old run. A new run that
 * fails to start waits with its reason and is retried with back-off. The
 * other containers are not touched. Takes the new sandbox spec as a whole: the
 * caller (RuntimeService.apply, spec-diff.ts) has found that nothing else
 * in it needs a new sandbox.
 */
export async function replaceContainer(
  ctx: RuntimeContext,
  rec: SandboxRecord,
  name: string,
  sandbox: Sandbox,
): Promise<void> {
  const { cgroups, images } = ctx.deps;
  const spec = sandbox.spec;
  const c = rec.containers.find((x) => x.name === name);
  const cspec = spec.containers.find((x) => x.name === name);
  const site = { sandbox: describeSandbox(rec.ref), step: `restart container ${name} with its new definition` };
  if (!c || !cspec)
    throw new SandpitError({ ...site, message: `container ${name} is not in the sandbox and the spec both` });
  if (!(await waitUntil(() => !ctx.busy.has(rec.id), 30_000)))
    throw new SandpitError({
      ...site,
      message: 'a create or restart has worked on the sandbox for 30 s',
      hint: 'the next reconcile retries',
    });
  if (rec.stopping) throw new SandpitError({ ...site, message: 'the sandbox is stopping' });
  ctx.busy.add(rec.id);
  try {
    const image = await images.prepare(cspec.image, {
      policy: cspec.imagePullPolicy ?? defaultPullPolicy(cspec.image),
      credentials: pullCredentials(sandbox, name),
      sandbox: rec.ref,
    });
    containerIdentity(ctx.config, cspec, image, site);
    containerCommand(rec.hostname, cspec, image, site);
    const frozen = cgroups.frozen(rec.id);
    if (frozen) cgroups.freeze(rec.id, false, { ...site, step: `${site.step}: thaw` });
    try {
      await stopContainerRun(ctx, rec, c, spec.terminationGracePeriodSeconds * 1000, site);
      rec.spec = { ...rec.spec, containers: rec.spec.containers.map((x) => (x.name === name ? cspec : x)) };
      // The sandbox's weight follows its requests, as the scheduler's reservation does.
      cgroups.setCpuShares(rec.id, sharesFromMilliCpu(sandboxDemand(rec.spec).milliCpu), site);
      rec.images[name] = image;
      if (c.state?.terminated) c.lastState = c.state; // the run just ended is the one --previous shows
      c.restartCount++;
      await startContainer(ctx, rec, c).catch((err: unknown) => {
        // The old run is gone and the spec is the new one: retried with back-off, as a crashed run is.
        ctx.log(rec).error({ err, ...site, container: name }, 'start of the edited container failed');
        const reason = err instanceof SandpitError ? err.reason : undefined;
        c.state = waitingAfterFailedStart(reason, (err as Error).message, 'RunContainerError');
        c.restartAt = Date.now() + restartDelay(c.restartCount, ctx.config.restartBackoff);
        ctx.save(rec);
      });
    } finally {
      if (frozen) cgroups.freeze(rec.id, true, { ...site, step: `${site.step}: freeze again` });
    }
  } finally {
    ctx.busy.delete(rec.id);
  }
}
