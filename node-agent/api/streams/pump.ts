import type { Readable, Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import { frame } from '../../../protocol/streams.js';

/*
 * Back-pressure in both directions. Towards the client: bytes handed to the
 * socket but not yet flushed are counted and the source is paused above a
 * high-water mark, so a slow reader slows the process (its pipe fills and
 * its writes block) instead of growing the agent's memory. Towards the
 * process: when its stdin pipe is full the WebSocket stops reading, so TCP
 * pushes back on the sender.
 */

const HIGH_WATER = 1 << 20;

/** Copies `src` to the socket as frames of `channel`; resolves when the source ends or is closed. */
export function pumpToSocket(src: Readable, ws: WebSocket, channel: number, highWater = HIGH_WATER): Promise<void> {
  let inflight = 0;
  return new Promise((resolve) => {
    const done = () => resolve();
    src.on('data', (chunk: Buffer) => {
      if (ws.readyState !== ws.OPEN) return;
      inflight += chunk.length;
      ws.send(frame(channel, chunk), () => {
        inflight -= chunk.length;
        if (inflight <= highWater / 2 && src.isPaused()) src.resume();
      });
      if (inflight > highWater) src.pause();
    });
    src.once('end', done);
    src.once('close', done);
    src.once('error', done);
  });
}

/** Writes client bytes to `dst`, pausing the socket while `dst` is full. */
export function writeWithBackpressure(ws: WebSocket, dst: Writable, data: Buffer): void {
  if (dst.destroyed || dst.writableEnded) return;
  if (!dst.write(data)) {
    ws.pause();
    dst.once('drain', () => ws.resume());
  }
}
