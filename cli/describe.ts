import { ApiException, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { Sandbox } from '../crds/sandbox.js';
import type { Session } from './connect.js';
import { CliError, serverError } from './errors.js';

interface EventLike {
  type?: string;
  reason?: string;
  message?: string;
  count?: number;
  lastTimestamp?: Date | string;
  eventTime?: Date | string;
  source?: { component?: string };
  reportingComponent?: string;
  involvedObject?: { uid?: string };
}

const age = (t: Date | string | undefined, now: number) => {
  if (!t) return '<unknown>';
  const s = Math.max(0, Math.round((now - new Date(t).getTime()) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
};

/** kubectl describe's layout for a Sandbox: identity, placement, containers, conditions, events. Pure. */
export function formatDescribe(s: Sandbox, events: EventLike[], now = Date.now()): string {
  const st = s.status;
  const out: string[] = [];
  const kv = (k: string, v: unknown) =>
    out.push(`${`${k}:`.padEnd(16)}${v === undefined || v === '' ? '<none>' : String(v)}`);
  kv('Name', s.metadata.name);
  kv('Namespace', s.metadata.namespace);
  kv('Node', st?.nodeName);
  kv('Phase', st?.phase);
  kv('IP', st?.sandboxIP);
  kv('Host IP', st?.hostIP);
  kv('Start Time', st?.startTime);
  if (st?.reason || st?.message) kv('Reason', `${st?.reason ?? ''} ${st?.message ?? ''}`.trim());
  out.push('Containers:');
  for (const c of s.spec.containers) {
    const cs = st?.containerStatuses?.find((x) => x.name === c.name);
    out.push(`  ${c.name}:`, `    Image:          ${c.image}`);
    const state = cs?.state;
    if (state?.running) out.push(`    State:          Running`, `      Started:      ${state.running.startedAt ?? ''}`);
    else if (state?.waiting)
      out.push(`    State:          Waiting`, `      Reason:       ${state.waiting.reason ?? ''}`);
    else if (state?.terminated)
      out.push(
        `    State:          Terminated`,
        `      Exit Code:    ${state.terminated.exitCode}`,
        `      Reason:       ${state.terminated.reason ?? ''}`,
      );
    else out.push('    State:          <unknown>');
    const last = cs?.lastState?.terminated;
    if (last)
      out.push(
        `    Last State:     Terminated`,
        `      Exit Code:    ${last.exitCode}`,
        `      Reason:       ${last.reason ?? ''}`,
      );
    out.push(`    Ready:          ${cs?.ready ?? false}`, `    Restart Count:  ${cs?.restartCount ?? 0}`);
  }
  out.push('Conditions:');
  const conds = st?.conditions ?? [];
  if (conds.length === 0) out.push('  <none>');
  else {
    out.push('  Type              Status  Reason');
    for (const c of conds)
      out.push(`  ${c.type.padEnd(18)}${c.status.padEnd(8)}${c.reason ?? ''}${c.message ? ` (${c.message})` : ''}`);
  }
  out.push('Events:');
  // Only this Sandbox's: an earlier Sandbox of the same name left Events with its own UID.
  const own = events.filter(
    (e) => !e.involvedObject?.uid || !s.metadata.uid || e.involvedObject.uid === s.metadata.uid,
  );
  if (own.length === 0) out.push('  <none>');
  else {
    const rows = own.map((e) => [
      e.type ?? '',
      e.reason ?? '',
      age(e.lastTimestamp ?? e.eventTime, now),
      e.source?.component || e.reportingComponent || '',
      e.message ?? '',
    ]);
    out.push(...table(['Type', 'Reason', 'Age', 'From', 'Message'], rows).map((l) => `  ${l}`));
  }
  return out.join('\n') + '\n';
}

/** Columns as kubectl's tabwriter lays them out: each as wide as its widest cell, two spaces apart, a dashed rule under the header. */
function table(header: string[], rows: string[][]): string[] {
  const all = [header, header.map((h) => '-'.repeat(h.length)), ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]! + 2)))
      .join('')
      .trimEnd(),
  );
}

export async function describeCommand(s: Session, name: string): Promise<number> {
  let sbx: Sandbox;
  try {
    sbx = (await s.kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({
      group: 'sandpit.dev',
      version: 'v1alpha1',
      namespace: s.namespace,
      plural: 'sandboxes',
      name,
    })) as Sandbox;
  } catch (err) {
    const code = err instanceof ApiException ? err.code : undefined;
    if (code === 404)
      throw serverError(
        'read sandbox',
        'NotFound',
        `sandboxes.sandpit.dev "${name}" not found in namespace "${s.namespace}"`,
      );
    if (code === 403)
      throw serverError(
        'read sandbox',
        'Forbidden',
        `you cannot get sandboxes.sandpit.dev "${name}" in namespace "${s.namespace}"`,
      );
    throw new CliError('read sandbox', `cannot read sandbox ${s.namespace}/${name}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let events: EventLike[] = [];
  try {
    const list = await s.kc.makeApiClient(CoreV1Api).listNamespacedEvent({
      namespace: s.namespace,
      fieldSelector: `involvedObject.name=${name},involvedObject.kind=Sandbox${sbx.metadata.uid ? `,involvedObject.uid=${sbx.metadata.uid}` : ''}`,
    });
    events = (list.items as EventLike[]).sort(
      (a, b) =>
        new Date(a.lastTimestamp ?? a.eventTime ?? 0).getTime() -
        new Date(b.lastTimestamp ?? b.eventTime ?? 0).getTime(),
    );
  } catch {
    /* events are optional: a user may read sandboxes but not events */
  }
  process.stdout.write(formatDescribe(sbx, events));
  return 0;
}
