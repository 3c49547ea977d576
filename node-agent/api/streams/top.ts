import type { WebSocket } from 'ws';
import type { StreamBackend, Usage } from './backend.js';
import { millicores } from '../../cgroups/cpu-rate.js';
import { Channel, frame, type UsageSample } from '../../../protocol/streams.js';
import { finish } from './exec.js';

/** CPU rate from two cumulative samples `elapsedNs` apart. */
export function rate(a: Usage, b: Usage, elapsedNs: number): UsageSample {
  return { cpuMillis: millicores(b.cpuNanos - a.cpuNanos, elapsedNs), memoryBytes: b.memoryBytes };
}

const INTERVAL_MS = 500;

/** Samples the sandbox's and its containers' cgroups twice and sends the rates on channel 1 as JSON. */
export async function serveTop(ws: WebSocket, backend: StreamBackend, uid: string): Promise<void> {
  const t0 = process.hrtime.bigint();
  const a = backend.usage(uid);
  await new Promise((r) => setTimeout(r, INTERVAL_MS));
  const b = backend.usage(uid);
  const ns = Number(process.hrtime.bigint() - t0);
  const containers: Record<string, UsageSample> = {};
  for (const [name, u] of Object.entries(b.containers))
    if (a.containers[name]) containers[name] = rate(a.containers[name], u, ns);
  ws.send(frame(Channel.stdout, JSON.stringify({ sandbox: rate(a.sandbox, b.sandbox, ns), containers })));
  finish(ws, { status: 'Success' });
}
