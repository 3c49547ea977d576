import type { Sandbox } from '../../crds/sandbox.js';
import { desiredStatusPatch } from '../../protocol/status-patch.js';
import { AgentError } from '../agentclient/client.js';
import { readPullSecrets } from './pull-secrets.js';
import { agentApplyFailedStatus, type StatusPatch } from './status.js';
import { agentEndpoint, sbxRef, stepError, writeStatus, type Result, type Step } from './step.js';

/**
 * Whether the sandbox goes to its agent again. Not when the agent confirmed
 * this generation and the status shows it observed; always after an outage
 * we marked it NodeUnreachable: the agent may have reported before we saw
 * its node come back, so we ask it and write what it says instead of waiting
 * for its next periodic report.
 */
export function needsApply(sbx: Sandbox, appliedHere: boolean): { apply: boolean; refreshStatus: boolean } {
  const refreshStatus = sbx.status?.reason === 'NodeUnreachable';
  const current = appliedHere && sbx.status?.observedGeneration === sbx.metadata.generation;
  return { apply: refreshStatus || !current, refreshStatus };
}

/**
 * PUTs the sandbox, with its pull Secrets, to the agent of its node
 * (idempotent per UID and generation). An agent that does not take it is
 * reported in the Sandbox and the error thrown, so the key is retried with
 * back-off.
 */
export async function applyOnNode(step: Step, sbx: Sandbox, node: string): Promise<Result> {
  const { deps, key, log } = step;
  const { apply, refreshStatus } = needsApply(sbx, step.applied.has(sbx));
  if (!apply) return {};
  const endpoint = agentEndpoint(step, node);
  const pullSecrets = await readPullSecrets(deps.client, sbx);
  const obs = await deps.agents.apply(node, endpoint, sbx, pullSecrets).catch(async (err: unknown) => {
    await reportApplyFailure(step, sbx, node, err);
    throw stepError(err, key, 'apply on node', `check the agent on ${node} (its SandboxNode conditions and logs)`);
  });
  if (refreshStatus) {
    const patch = desiredStatusPatch(sbx, obs, node);
    if (patch) await writeStatus(step, sbx, patch as StatusPatch);
    log.info({ node }, 'Node is back; refreshed the sandbox status from its agent');
  }
  step.applied.record(sbx);
  log.debug({ node, generation: sbx.metadata.generation }, 'Agent applied the sandbox');
  return {};
}

/**
 * Says in the Sandbox (a condition and a Warning Event), not only in our
 * log, that its agent did not take it; the thrown error requeues it with
 * back-off. A failure to write this is left to that retry.
 */
async function reportApplyFailure(step: Step, sbx: Sandbox, node: string, err: unknown): Promise<void> {
  const agentReason = err instanceof AgentError ? err.reason : 'Unreachable';
  const patch = agentApplyFailedStatus(sbx, node, agentReason, (err as Error).message);
  if (!patch) return;
  await writeStatus(step, sbx, patch).catch(() => undefined);
  step.deps.events.record(
    sbxRef(sbx),
    'Warning',
    'FailedApply',
    patch.conditions?.find((c) => c.type === 'Reconciling')?.message ?? (err as Error).message,
    'Applying',
  );
}
