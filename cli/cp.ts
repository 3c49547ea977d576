import { spawn } from 'node:child_process';
import { posix } from 'node:path';
import { Channel, frame, parseFrame, type StreamStatus } from '../protocol/streams.js';
import { isRemote, splitRemote, type Command } from './args.js';
import { openStream, type Session } from './connect.js';
import { CliError } from './errors.js';
import { runExecStream } from './exec.js';

/** kubectl cp's way: tar over exec, in either direction. */
export async function cpCommand(s: Session, c: Extract<Command, { name: 'cp' }>): Promise<number> {
  const download = isRemote(c.from);
  const q = new URLSearchParams();
  if (c.container) q.set('container', c.container);
  if (download) {
    const { sandbox, path } = splitRemote(c.from);
    const dir = posix.dirname(path);
    const base = posix.basename(path);
    for (const a of ['tar', 'cf', '-', '-C', dir, base]) q.append('command', a);
    const ws = await openStream(s, sandbox, 'exec', q);
    // Unpack into a temporary name, then rename: kubectl cp copies to the destination path itself.
    const { mkdtempSync, renameSync, rmSync } = await import('node:fs');
    const tmp = mkdtempSync(posix.join(posix.dirname(c.to) || '.', '.sandpit-cp-'));
    const tar = spawn('tar', ['xf', '-', '-C', tmp], { stdio: ['pipe', 'inherit', 'inherit'] });
    const done = new Promise<number | null>((r) => tar.once('close', r));
    let status: StreamStatus | undefined;
    ws.on('message', (msg: Buffer) => {
      const f = parseFrame(msg);
      if (!f) return;
      if (f.channel === Channel.stdout && !tar.stdin.write(f.data)) {
        ws.pause();
        tar.stdin.once('drain', () => ws.resume());
      } else if (f.channel === Channel.stderr) process.stderr.write(f.data);
      else if (f.channel === Channel.status) status = JSON.parse(f.data.toString('utf8')) as StreamStatus;
    });
    await new Promise<void>((r) => ws.once('close', () => r()));
    tar.stdin.end();
    const code = await done;
    try {
      if (status?.status !== 'Success')
        throw new CliError('copy', `copying ${c.from} failed: ${status?.message ?? 'the stream ended early'}`);
      if (code !== 0) throw new CliError('copy', `unpacking ${c.from} locally failed (tar exit ${code})`);
      renameSync(posix.join(tmp, base), c.to);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    return 0;
  }
  const { sandbox, path } = splitRemote(c.to);
  // Into PATH itself (kubectl cp semantics): pack the local file under the destination's base name.
  const dir = posix.dirname(path);
  const { mkdtempSync, rmSync, symlinkSync } = await import('node:fs');
  const { resolve: resolvePath } = await import('node:path');
  const stage = mkdtempSync('/tmp/sandpit-cp-');
  try {
    symlinkSync(resolvePath(c.from), posix.join(stage, posix.basename(path)));
    for (const a of ['tar', 'xf', '-', '-C', dir]) q.append('command', a);
    q.set('stdin', '1');
    const ws = await openStream(s, sandbox, 'exec', q);
    const tar = spawn('tar', ['chf', '-', '-C', stage, posix.basename(path)], { stdio: ['ignore', 'pipe', 'inherit'] });
    tar.stdout.on('data', (d: Buffer) => {
      ws.send(frame(Channel.stdin, d));
      if (ws.bufferedAmount > 1 << 20) {
        tar.stdout.pause();
        const t = setInterval(() => {
          if (ws.bufferedAmount < 1 << 19) {
            clearInterval(t);
            tar.stdout.resume();
          }
        }, 10);
      }
    });
    tar.stdout.on('end', () => ws.send(Buffer.from([Channel.close, Channel.stdin])));
    const code = await runExecStream(ws, { stdin: false, tty: false });
    if (code !== 0) throw new CliError('copy', `unpacking into ${c.to} failed (tar exit ${code})`);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  return 0;
}
