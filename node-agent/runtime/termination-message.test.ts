import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CriLine } from '../process/cri-log.js';
import { fallbackFromLog, terminationMessage } from './termination-message.js';

const line = (text: string, partial = false): CriLine => ({
  time: '2026-12-01T10:00:00.000000000Z',
  stream: 'stdout',
  partial,
  text,
});

describe('unit: termination messages, as kubelet makes them', () => {
  it('takes the last 80 lines of the output, joining partial records', () => {
    const lines = Array.from({ length: 100 }, (_, i) => line(`line ${i + 1}`));
    const text = fallbackFromLog([...lines, line('half ', true), line('and the rest')]);
    const out = text.trimEnd().split('\n');
    assert.equal(out.length, 80);
    assert.equal(out[0], 'line 22');
    assert.equal(out.at(-1), 'half and the rest');
  });

  it('keeps at most the last 2048 bytes of them', () => {
    const text = fallbackFromLog(
      Array.from({ length: 40 }, (_, i) => line(`${String(i).padStart(2, '0')}${'x'.repeat(98)}`)),
    );
    assert.equal(Buffer.byteLength(text), 2048);
    assert.ok(text.endsWith(`39${'x'.repeat(98)}\n`));
  });

  describe('which text becomes the message', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandpit-termination-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const file = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    const log = () => [line('from the log')];
    for (const [policy, exitCode, written, want] of [
      ['File', 1, 'written', 'written'],
      ['File', 1, '', undefined],
      ['FallbackToLogsOnError', 1, 'written', 'written'],
      ['FallbackToLogsOnError', 1, '', 'from the log\n'],
      ['FallbackToLogsOnError', 0, '', undefined],
    ] as const)
      it(`${policy}, exit ${exitCode}, file ${written ? 'written' : 'empty'}: ${want === undefined ? 'none' : JSON.stringify(want)}`, () => {
        const f = file(`${policy}-${exitCode}-${written.length}`, written);
        assert.equal(terminationMessage({ terminationMessagePolicy: policy }, exitCode, f, log), want);
      });

    it('reads only the first 4096 bytes of the file', () => {
      const f = file('big', 'y'.repeat(10_000));
      assert.equal(terminationMessage({ terminationMessagePolicy: 'File' }, 1, f, log)?.length, 4096);
    });

    it('reads no file as no message (a run from before termination messages)', () => {
      assert.equal(terminationMessage({ terminationMessagePolicy: 'File' }, 1, join(dir, 'missing'), log), undefined);
    });
  });
});
