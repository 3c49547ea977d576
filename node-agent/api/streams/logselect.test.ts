import assert from 'node:assert/strict';
import { inWindow, parseCriLine, renderLines, tailLines, type CriLine } from '../../process/cri-log.js';
import { parseLogQuery, runWindow } from './logselect.js';

const line = (time: string, text: string, partial = false): CriLine => ({ time, stream: 'stdout', partial, text });

describe('unit: log selection (CRI files spanning restarts)', () => {
  it('parses CRI records and rejects anything else', () => {
    assert.deepEqual(parseCriLine('2026-01-01T00:00:00.000000001Z stderr P half a line'), {
      time: '2026-01-01T00:00:00.000000001Z',
      stream: 'stderr',
      partial: true,
      text: 'half a line',
    });
    assert.equal(parseCriLine('garbage'), undefined);
  });

  it('picks the current run, the previous run, or refuses --previous before any restart', () => {
    const status = {
      name: 'main',
      image: 'x',
      ready: true,
      restartCount: 1,
      state: { running: { startedAt: '2026-01-01T00:00:10.000Z' } },
      lastState: {
        terminated: { exitCode: 1, startedAt: '2026-01-01T00:00:01.000Z', finishedAt: '2026-01-01T00:00:05.000Z' },
      },
    };
    // Stamped when the agent read them: the second run's first line a little before its recorded start,
    // the first run's last line a little after its recorded end.
    const lines = [
      line('2026-01-01T00:00:01.500000000Z', 'first run'),
      line('2026-01-01T00:00:05.100000000Z', 'first run, read late'),
      line('2026-01-01T00:00:09.990000000Z', 'second run, read early'),
      line('2026-01-01T00:00:10.000200000Z', 'second run'),
    ];
    assert.deepEqual(
      lines.filter((l) => inWindow(l, runWindow(status, false, undefined))).map((l) => l.text),
      ['second run, read early', 'second run'],
    );
    assert.deepEqual(
      lines.filter((l) => inWindow(l, runWindow(status, true, undefined))).map((l) => l.text),
      ['first run', 'first run, read late'],
    );
    const never = {
      name: 'main',
      image: 'x',
      ready: true,
      restartCount: 0,
      state: { running: { startedAt: '2026-01-01T00:00:10.000Z' } },
    };
    assert.equal(
      lines.filter((l) => inWindow(l, runWindow(never, false, undefined))).length,
      4,
      'before any restart the whole file is the current run',
    );
    assert.throws(
      () => runWindow({ ...status, lastState: undefined }, true, undefined),
      /previous terminated container "main" not found/,
    );
  });

  it('narrows by --since', () => {
    const now = Date.parse('2026-01-01T00:01:00Z');
    const w = runWindow(
      {
        name: 'm',
        image: 'x',
        ready: true,
        restartCount: 0,
        state: { running: { startedAt: '2026-01-01T00:00:00Z' } },
      },
      false,
      30,
      now,
    );
    assert.equal(inWindow(line('2026-01-01T00:00:20.000Z', 'old'), w), false);
    assert.equal(inWindow(line('2026-01-01T00:00:40.000Z', 'new'), w), true);
  });

  it('tails whole lines and joins partial records', () => {
    const ls = [line('t1', 'a'), line('t2', 'b1', true), line('t3', 'b2'), line('t4', 'c')];
    assert.equal(renderLines(tailLines(ls, 2), false), 'b1b2\nc\n');
    assert.equal(renderLines(tailLines(ls, 0), false), '');
    assert.equal(renderLines(tailLines(ls, 10), true), 't1 a\nt2 b1b2\nt4 c\n');
  });

  it('refuses a malformed tail', () => {
    assert.throws(() => parseLogQuery('main', new URLSearchParams('tailLines=-1')), /non-negative integer/);
    assert.deepEqual(parseLogQuery('main', new URLSearchParams('follow=1&tailLines=5')), {
      container: 'main',
      follow: true,
      previous: false,
      timestamps: false,
      tail: 5,
    });
  });
});
