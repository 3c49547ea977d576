/*
 * The stream protocol between kubectl-sandpit, the controller and the agent:
 * Kubernetes' channel protocol over WebSocket (v5.channel.k8s.io), so that
 * whoever knows `kubectl exec` knows the wire. Every binary message starts
 * with one channel byte. The controller splices the upgraded connection
 * between plugin and agent byte for byte, so both ends speak exactly this.
 */

export const CHANNEL_PROTOCOL = 'v5.channel.k8s.io';

export const Channel = {
  stdin: 0,
  stdout: 1,
  stderr: 2,
  /** One JSON Status when the stream ends (exit code, or why it failed). */
  status: 3,
  /** JSON {"Width": cols, "Height": rows}. */
  resize: 4,
  /** v5: [255, n] closes channel n's direction (stdin EOF). */
  close: 255,
} as const;

/** Kubernetes' metav1.Status, the part the exec protocol uses. */
export interface StreamStatus {
  status: 'Success' | 'Failure';
  reason?: string;
  message?: string;
  details?: { causes?: { reason: string; message: string }[] };
}

export function frame(channel: number, data: Buffer | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data) : data;
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = channel;
  body.copy(out, 1);
  return out;
}

export function parseFrame(msg: Buffer): { channel: number; data: Buffer } | undefined {
  if (msg.length === 0) return undefined;
  return { channel: msg[0]!, data: msg.subarray(1) };
}

/** The status an exec ends with: Success for exit 0, NonZeroExitCode with the code otherwise (as kubelet sends it). */
export function exitStatus(exitCode: number): StreamStatus {
  if (exitCode === 0) return { status: 'Success' };
  return {
    status: 'Failure',
    reason: 'NonZeroExitCode',
    message: `command terminated with non-zero exit code: ${exitCode}`,
    details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
  };
}

export function failureStatus(reason: string, message: string): StreamStatus {
  return { status: 'Failure', reason, message };
}

/** Exit code carried by a status: 0 on Success, the ExitCode cause on NonZeroExitCode, otherwise undefined (the stream failed). */
export function exitCodeOf(s: StreamStatus): number | undefined {
  if (s.status === 'Success') return 0;
  if (s.reason !== 'NonZeroExitCode') return undefined;
  const code = Number(s.details?.causes?.find((c) => c.reason === 'ExitCode')?.message);
  return Number.isInteger(code) ? code : undefined;
}

export function parseResize(data: Buffer): { cols: number; rows: number } | undefined {
  try {
    const o = JSON.parse(data.toString('utf8')) as { Width?: unknown; Height?: unknown };
    const cols = Number(o.Width);
    const rows = Number(o.Height);
    if (!Number.isInteger(cols) || !Number.isInteger(rows) || cols < 1 || rows < 1 || cols > 0xffff || rows > 0xffff)
      return undefined;
    return { cols, rows };
  } catch {
    return undefined;
  }
}

/** One sample on the usage stream (channel 1, JSON) of `kubectl sandpit top`. */
export interface UsageSample {
  /** Millicores over the sampling interval. */
  cpuMillis: number;
  memoryBytes: number;
}
