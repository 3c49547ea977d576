import type { Sandbox } from '../../crds/sandbox.js';
import type { SandboxNotice, SandboxRef } from '../contracts.js';
import { identify } from './observe.js';
import type { SandboxRecord } from './record.js';
import { changedContainerFields, diffSpec } from './spec-diff.js';
import type { SandboxSupervisor } from './supervisor.js';

/**
 * An edit the running sandbox takes in place (spec-diff.ts): restarts the
 * containers whose definition changed (as kubelet restarts an edited Pod's
 * container), each with a Killing Event naming the fields, then takes the
 * new generation. A container whose new run cannot start keeps its old run
 * (replace-container.ts checks before it stops).
 */
export async function editInPlace(
  runtime: SandboxSupervisor,
  rec: SandboxRecord,
  sandbox: Sandbox,
  notice: (ref: SandboxRef, notice: SandboxNotice) => void,
): Promise<void> {
  const diff = diffSpec(rec.spec, sandbox.spec);
  for (const name of diff.restartContainers) {
    const fields = changedContainerFields(
      rec.spec.containers.find((c) => c.name === name)!,
      sandbox.spec.containers.find((c) => c.name === name)!,
    );
    notice(rec.ref, {
      type: 'Normal',
      reason: 'Killing',
      note: `Container ${name} definition changed (${fields.join(', ')}), will be restarted`,
    });
    await runtime.restartContainer(rec.id, name, sandbox);
  }
  rec.spec = sandbox.spec;
  rec.generation = identify(sandbox).generation;
  if (diff.pauseChange !== undefined) runtime.pause(rec.id, diff.pauseChange);
}
