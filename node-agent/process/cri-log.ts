/*
 * Reading the CRI log format the agent writes (process/logs.ts):
 * "<RFC 3339 time> <stream> <P|F> <text>", P when the line continues in the
 * next record. Pure, shared by the log streams and the termination message.
 */

export interface CriLine {
  time: string;
  stream: 'stdout' | 'stderr';
  /** P: the line continues in the next record. */
  partial: boolean;
  text: string;
}

export function parseCriLine(line: string): CriLine | undefined {
  const m = /^(\S+) (stdout|stderr) ([PF]) (.*)$/s.exec(line);
  if (!m) return undefined;
  return { time: m[1]!, stream: m[2] as 'stdout' | 'stderr', partial: m[3] === 'P', text: m[4]! };
}

/** A time window [from, to) of RFC 3339 strings compared as instants; open ends are undefined. */
export interface Window {
  from?: number;
  to?: number;
}

export function inWindow(line: CriLine, w: Window): boolean {
  const t = Date.parse(line.time);
  // Entry timestamps have sub-millisecond digits; compare at millisecond precision, inclusive of the start.
  return (w.from === undefined || t >= Math.floor(w.from)) && (w.to === undefined || t < w.to);
}

/** Turns records into the bytes the client sees: partial records joined, optional timestamps. */
export function renderLines(lines: CriLine[], timestamps: boolean): string {
  let out = '';
  let continuing = false;
  for (const l of lines) {
    if (timestamps && !continuing) out += `${l.time} `;
    out += l.text;
    if (!l.partial) out += '\n';
    continuing = l.partial;
  }
  return out;
}

/** The last `n` complete lines (a partial record belongs to the line it continues). */
export function tailLines(lines: CriLine[], n: number): CriLine[] {
  if (n === 0) return [];
  let complete = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i]!.partial) continue;
    complete++;
    if (complete > n) return lines.slice(i + 1);
  }
  return lines;
}
