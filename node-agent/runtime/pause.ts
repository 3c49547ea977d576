import { describeSandbox } from '../contracts.js';
import type { RuntimeContext } from './context.js';
import type { SandboxRecord } from './record.js';

/** Freezes or thaws the whole sandbox (its cgroup); a running sandbox reads Paused while frozen. */
export function setPaused(ctx: RuntimeContext, rec: SandboxRecord, paused: boolean): void {
  ctx.deps.cgroups.freeze(rec.id, paused, { sandbox: describeSandbox(rec.ref), step: paused ? 'freeze' : 'thaw' });
  if (rec.phase === 'Running' || rec.phase === 'Paused') rec.phase = paused ? 'Paused' : 'Running';
  ctx.save(rec);
}
