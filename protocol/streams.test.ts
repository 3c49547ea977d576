import assert from 'node:assert/strict';
import { Channel, exitCodeOf, exitStatus, failureStatus, frame, parseFrame, parseResize } from './streams.js';

describe('unit: stream channel protocol', () => {
  it('frames and parses a message with its channel byte', () => {
    const f = frame(Channel.stderr, 'oops');
    assert.deepEqual([...f], [2, ...Buffer.from('oops')]);
    const p = parseFrame(f)!;
    assert.equal(p.channel, 2);
    assert.equal(p.data.toString(), 'oops');
    assert.equal(parseFrame(Buffer.alloc(0)), undefined);
  });

  it('round-trips exit codes through the status and refuses to invent one for a failed stream', () => {
    assert.equal(exitCodeOf(exitStatus(0)), 0);
    assert.equal(exitCodeOf(exitStatus(42)), 42);
    assert.match(exitStatus(3).message!, /exit code: 3/);
    assert.equal(exitCodeOf(failureStatus('NotFound', 'no such container')), undefined);
  });

  it('accepts only sane terminal sizes', () => {
    assert.deepEqual(parseResize(Buffer.from('{"Width":120,"Height":40}')), { cols: 120, rows: 40 });
    assert.equal(parseResize(Buffer.from('{"Width":0,"Height":40}')), undefined);
    assert.equal(parseResize(Buffer.from('{"Width":1e9,"Height":40}')), undefined);
    assert.equal(parseResize(Buffer.from('not json')), undefined);
  });
});
