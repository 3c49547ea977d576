import type { Sandbox } from '../../crds/sandbox.js';
import { sandboxIdFor, type SandboxObservation } from '../contracts.js';
import { deriveConditions } from '../status/derive.js';
import type { SandboxRecord } from './record.js';
import type { SandboxSupervisor } from './supervisor.js';

/** The runtime's view of a sandbox, with the conditions the agent reports (status/derive.ts). */
export function observe(rt: SandboxSupervisor, rec: SandboxRecord): SandboxObservation {
  const generation = rec.generation ?? 0;
  let status;
  try {
    status = rt.status(rec.id);
  } catch {
    // Early in a create the runtime has no cgroup to read yet: that is Pending, not Unknown.
    status = { phase: rec.phase === 'Creating' ? ('Pending' as const) : ('Unknown' as const) };
  }
  const publishedPorts = rec.network?.publishedPorts;
  const sandboxIPs = rec.network?.sandboxIPs?.map((ip) => ({ ip }));
  return {
    ref: rec.ref,
    generation,
    status: {
      ...status,
      ...(sandboxIPs ? { sandboxIPs } : {}),
      ...(publishedPorts ? { publishedPorts } : {}),
      conditions: deriveConditions(status, generation),
    },
  };
}

/** The UID and generation of a Sandbox as the agent API hands it over. */
export const identify = (s: Sandbox) => ({
  uid: (s.metadata as { uid?: string }).uid!,
  generation: (s.metadata as { generation?: number }).generation ?? 0,
});
/** The reference a Sandbox's observations carry. */
export const refOf = (s: Sandbox): SandboxObservation['ref'] => {
  const meta = s.metadata as { namespace?: string; name?: string; uid?: string };
  return {
    id: sandboxIdFor(meta.uid!),
    namespace: meta.namespace ?? 'default',
    name: meta.name ?? 'sandbox',
    uid: meta.uid!,
  };
};
