import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { killTree, processTree } from './killtree.js';

const alive = (pid: number) =>
  existsSync(`/proc/${pid}`) && !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));

describe("unit: killing an exec'd command with everything it started", () => {
  it('finds and kills the children and grandchildren, not just the process', async () => {
    // A shell with a background child that has its own child: three levels.
    const root = spawn('sh', ['-c', 'sh -c "sleep 300 & wait" & sleep 301; wait'], { stdio: 'ignore' });
    const exited = new Promise((r) => root.once('exit', r));
    let tree: number[] = [];
    for (let i = 0; i < 100 && tree.length < 4; i++) {
      await new Promise((r) => setTimeout(r, 20));
      tree = processTree(root.pid!);
    }
    assert.ok(tree.length >= 4, `a shell, a sub-shell and two sleeps: ${tree.join(',')}`);
    assert.equal(tree[0], root.pid, 'parents first');
    const killed = killTree(root.pid!);
    assert.deepEqual([...killed].sort(), [...tree].sort());
    await exited;
    for (let i = 0; i < 100 && tree.some(alive); i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(tree.filter(alive), [], 'nothing of the tree is left');
  });
});
