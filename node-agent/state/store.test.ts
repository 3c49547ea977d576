import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readJson, writeJsonInPlace } from './store.js';

describe('unit: writeJsonInPlace', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sandpit-store-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates the file, then rewrites a small record in the same inode', () => {
    const file = join(dir, 'sandbox.json');
    writeJsonInPlace(file, { phase: 'Creating', containers: ['a', 'b', 'c'] });
    const ino = statSync(file).ino;
    writeJsonInPlace(file, { phase: 'Running' });
    assert.equal(statSync(file).ino, ino, 'no new inode for a record that fits a page');
    assert.deepEqual(
      readJson(file),
      { phase: 'Running' },
      'a shorter record is read back exactly (the old tail is blanked)',
    );
    assert.match(readFileSync(file, 'utf8'), /^\{"phase":"Running"\} +$/);
    writeJsonInPlace(file, { phase: 'Running', containers: ['a', 'b', 'c', 'd'] });
    assert.deepEqual(readJson(file), { phase: 'Running', containers: ['a', 'b', 'c', 'd'] });
  });

  it('goes through a temp file and a rename when the record is larger than a page', () => {
    const file = join(dir, 'sandbox.json');
    writeJsonInPlace(file, { small: true });
    const ino = statSync(file).ino;
    const big = { blob: 'x'.repeat(5000) };
    writeJsonInPlace(file, big);
    assert.notEqual(statSync(file).ino, ino, 'replaced, not rewritten across pages');
    assert.deepEqual(readJson(file), big);
    writeJsonInPlace(file, { small: true });
    assert.deepEqual(readJson(file), { small: true }, 'and a file larger than a page is replaced again');
  });
});
