import type WebSocket from 'ws';
import { Channel, exitCodeOf, frame, parseFrame, type StreamStatus } from '../protocol/streams.js';
import { CliError, serverError } from './errors.js';

/**
 * Runs the client side of an exec stream: stdin to channel 0 (if wanted),
 * channels 1 and 2 to stdout and stderr, terminal size on channel 4 at the
 * start and on every SIGWINCH, and resolves with the remote exit code. With
 * a TTY the local terminal is in raw mode, so Ctrl-C and the like reach the
 * remote shell as bytes instead of ending this process.
 */
export async function runExecStream(ws: WebSocket, opts: { stdin: boolean; tty: boolean }): Promise<number> {
  const input = process.stdin;
  const raw = opts.tty && opts.stdin && input.isTTY;
  const sendSize = () => {
    if (process.stdout.isTTY && ws.readyState === ws.OPEN)
      ws.send(frame(Channel.resize, JSON.stringify({ Width: process.stdout.columns, Height: process.stdout.rows })));
  };
  if (opts.tty) {
    sendSize();
    process.on('SIGWINCH', sendSize);
  }
  if (raw) input.setRawMode(true);
  if (opts.stdin) {
    input.on('data', (d: Buffer) => {
      if (ws.readyState !== ws.OPEN) return;
      ws.send(frame(Channel.stdin, d));
      if (ws.bufferedAmount > 1 << 20) {
        input.pause();
        const resume = setInterval(() => {
          if (ws.bufferedAmount < 1 << 19 || ws.readyState !== ws.OPEN) {
            clearInterval(resume);
            input.resume();
          }
        }, 10);
      }
    });
    input.on('end', () => {
      if (ws.readyState === ws.OPEN) ws.send(Buffer.from([Channel.close, Channel.stdin]));
    });
    input.resume();
  }
  let status: StreamStatus | undefined;
  ws.on('message', (msg: Buffer) => {
    const f = parseFrame(msg);
    if (!f) return;
    if (f.channel === Channel.stdout) writeOut(process.stdout, f.data, ws);
    else if (f.channel === Channel.stderr) writeOut(process.stderr, f.data, ws);
    else if (f.channel === Channel.status) status = JSON.parse(f.data.toString('utf8')) as StreamStatus;
  });
  await new Promise<void>((resolve) => ws.once('close', () => resolve()));
  if (raw) input.setRawMode(false);
  process.off('SIGWINCH', sendSize);
  input.pause();
  input.destroy();
  if (!status) throw new CliError('exec', 'the connection to the sandbox ended without an exit status');
  const code = exitCodeOf(status);
  if (code === undefined) throw serverError('exec', status.reason ?? 'Failure', status.message ?? 'the exec failed');
  return code;
}

/** Writes to a local stream, pausing the socket while the local side is slow (back-pressure). */
export function writeOut(out: NodeJS.WriteStream, data: Buffer, ws: WebSocket): void {
  if (!out.write(data)) {
    ws.pause();
    out.once('drain', () => ws.resume());
  }
}
