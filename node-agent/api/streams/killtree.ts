import { readdirSync, readFileSync } from 'node:fs';

/*
 * Ends an exec'd command with everything it started. The exec'd process
 * shares its container's cgroup, so the cgroup cannot be killed; instead the
 * process tree is stopped (SIGSTOP, so nothing forks while we look), walked
 * again until no new child appears, then killed. A process that has already
 * left the tree (double-forked daemons, reparented to the sandbox's init)
 * is out of reach, as with kubectl exec.
 */

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/))
        if (c) out.push(Number(c));
    } catch {
      /* the task ended */
    }
  }
  return out;
}

/** The process and all its descendants, parents first. */
export function processTree(root: number): number[] {
  const seen: number[] = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift()!;
    if (seen.includes(pid)) continue;
    seen.push(pid);
    queue.push(...childrenOf(pid));
  }
  return seen;
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILLs `root` and every descendant. Returns the PIDs signalled. */
export function killTree(root: number): number[] {
  let tree: number[] = [];
  for (let round = 0; round < 10; round++) {
    const next = processTree(root).filter((p) => signal(p, 'SIGSTOP') || p === root);
    if (next.length === tree.length) break;
    tree = next;
  }
  for (const p of tree) signal(p, 'SIGKILL');
  return tree;
}
