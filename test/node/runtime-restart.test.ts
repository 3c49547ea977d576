import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CgroupManager } from '../../node-agent/cgroups/manager.js';
import { mountsUnder } from '../../node-agent/runtime/mounts.js';
import type { SandboxRecord } from '../../node-agent/runtime/record.js';
import { readJson } from '../../node-agent/state/store.js';
import { ROOTFS, waitFor } from './runtime-env.js';

/*
 * Node tier: the agent as a separate process (standalone mode), killed with
 * SIGKILL while sandboxes run and in the middle of creating one.
 */

const AGENT = new URL('../../node-agent/standalone.js', import.meta.url).pathname;

function manifest(name: string, containers: { name: string; script: string; tty?: boolean }[]): string {
  return [
    'apiVersion: sandpit.dev/v1alpha1',
    'kind: Sandbox',
    `metadata: {name: ${name}, namespace: default}`,
    'spec:',
    '  restartPolicy: Never',
    '  terminationGracePeriodSeconds: 1',
    '  network: {mode: None}',
    '  containers:',
    ...containers.map(
      (c) =>
        `  - {name: ${c.name}, image: "dir:${ROOTFS}", tty: ${c.tty ?? false}, command: [/bin/sh, -c, ${JSON.stringify(c.script)}]}`,
    ),
    '',
  ].join('\n');
}

/** Running (a zombie left for the host's init to reap counts as gone). */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
};

describe('node: runtime across agent restarts and crashes', function () {
  this.timeout(120_000);
  const parent = `sandpit-test-${process.pid}-agent`;
  let stateRoot: string;
  let manifests: string;
  let agent: ChildProcess | undefined;

  const startAgent = (args: string[], env: Record<string, string> = {}) => {
    const child = spawn(
      process.execPath,
      [AGENT, ...args, '--state-root', stateRoot, '--cgroup-parent', parent, '--poll-ms', '50'],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: { ...process.env, SANDPIT_LOG_LEVEL: 'error', ...env },
      },
    );
    return child;
  };
  const exited = (c: ChildProcess) =>
    new Promise<number | null>((r) =>
      c.exitCode !== null || c.signalCode ? r(c.exitCode) : c.once('exit', (code) => r(code)),
    );
  const records = () =>
    readdirSync(stateRoot)
      .filter((d) => /^[0-9a-f]{12}$/.test(d))
      .map((d) => readJson<SandboxRecord>(join(stateRoot, d, 'sandbox.json')))
      .filter((r): r is SandboxRecord => !!r);

  beforeEach(() => {
    stateRoot = mkdtempSync(join(tmpdir(), `sandpit-test-${process.pid}-agent-`));
    manifests = join(stateRoot, '..', `${stateRoot.split('/').pop()}-manifests`);
    mkdirSync(manifests, { recursive: true });
  });
  afterEach(async () => {
    if (agent && agent.exitCode === null && !agent.signalCode) {
      agent.kill('SIGTERM');
      await exited(agent);
    }
    agent = undefined;
    // Whatever a failed test left: a last agent run cleans it (and proves it can).
    writeFileSync(join(manifests, 'x'), '');
    rmSync(manifests, { recursive: true, force: true });
    mkdirSync(manifests);
    const janitor = startAgent(['serve', '--manifests', manifests]);
    await waitFor(
      'janitor recovery',
      () => records().length === 0 && mountsUnder(stateRoot).length === 0,
      30_000,
    ).catch(() => undefined);
    janitor.kill('SIGTERM');
    await exited(janitor);
    const cg = CgroupManager.detect(parent);
    const left = cg.listSandboxes();
    await cg.removeParent({ step: 'test cleanup' });
    rmSync(stateRoot, { recursive: true, force: true });
    rmSync(manifests, { recursive: true, force: true });
    assert.deepEqual(left, [], 'no sandbox cgroups left');
  });

  it('keeps sandboxes running through an agent SIGKILL and records exits that happened while it was down', async () => {
    writeFileSync(
      join(manifests, 'pair.yaml'),
      manifest('survivor', [
        { name: 'early', script: 'while [ ! -e /dev/shm/stop-early ]; do sleep 0.05; done; exit 7' },
        { name: 'late', script: 'while [ ! -e /dev/shm/stop-late ]; do sleep 0.05; done; exit 9' },
      ]),
    );
    agent = startAgent(['serve', '--manifests', manifests]);
    const rec = await waitFor('sandbox running', () =>
      records().find((r) => r.phase === 'Running' && r.containers.every((c) => c.pid)),
    );
    const pids = [rec.pid1!.pid, ...rec.containers.map((c) => c.pid!)];

    agent.kill('SIGKILL');
    await exited(agent);
    // Deliberate: a moment in which a process tied to the agent's life would die with it.
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(pids.every(alive), 'PID 1 and both shims outlive the agent');

    // One container ends while no agent is running; its shim records the status.
    const shm = join(stateRoot, rec.id, 'shm');
    writeFileSync(join(shm, 'stop-early'), '');
    await waitFor(
      'status file of early',
      () =>
        existsSync(join(stateRoot, rec.id, 'containers/early/exit')) &&
        readJson<number>(join(stateRoot, rec.id, 'containers/early/exit')) === 7,
    );

    agent = startAgent(['serve', '--manifests', manifests]);
    const after = await waitFor('exit recorded after restart', () =>
      records().find((r) => r.containers[0]?.state?.terminated),
    );
    assert.equal(after.containers[0]!.state?.terminated?.exitCode, 7);
    assert.equal(after.containers[1]!.pid, rec.containers[1]!.pid, 'late was re-adopted, not restarted');
    assert.ok(alive(rec.pid1!.pid));

    writeFileSync(join(shm, 'stop-late'), '');
    const done = await waitFor('later exit recorded', () => records().find((r) => r.containers[1]?.state?.terminated));
    assert.equal(done.containers[1]!.state?.terminated?.exitCode, 9);
    assert.equal(done.phase, 'Failed');

    rmSync(join(manifests, 'pair.yaml'));
    await waitFor('sandbox deleted', () => records().length === 0);
    await waitFor('PID 1 gone', () => !alive(rec.pid1!.pid));
    assert.deepEqual(mountsUnder(stateRoot), []);
  });

  it('keeps a tty: true container on its terminal through an agent SIGKILL and logs what it writes afterwards', async () => {
    // The workload prints one line per marker file: before the crash, while no agent runs, and after.
    const script =
      'n=0; while [ ! -e /dev/shm/stop ]; do for m in one two three; do if [ -e /dev/shm/$m ] && [ ! -e /tmp/$m ]; then touch /tmp/$m; echo "line-$m"; fi; done; sleep 0.05; done; echo bye';
    writeFileSync(join(manifests, 'term.yaml'), manifest('term', [{ name: 'term', script, tty: true }]));
    agent = startAgent(['serve', '--manifests', manifests]);
    const rec = await waitFor('sandbox running', () =>
      records().find((r) => r.phase === 'Running' && r.containers[0]?.pid),
    );
    const shm = join(stateRoot, rec.id, 'shm');
    const log = join(stateRoot, rec.id, 'logs', 'term.log');
    const logged = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
    writeFileSync(join(shm, 'one'), '');
    await waitFor('line-one logged', () => logged().includes('line-one'));

    agent.kill('SIGKILL');
    await exited(agent);
    writeFileSync(join(shm, 'two'), ''); // written to the terminal while nobody reads it
    // Deliberate: the workload writes to the terminal while no agent reads it; nothing may die of that.
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(alive(rec.containers[0]!.pid!), 'the shim outlives the agent');
    const workload = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .find((p) => {
        try {
          return (
            readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ')[1] === String(rec.containers[0]!.pid)
          );
        } catch {
          return false;
        }
      });
    assert.ok(workload && alive(Number(workload)), 'the workload was not hung up when the agent died');
    const holdsMaster = (pid: number | string) =>
      readdirSync(`/proc/${pid}/fd`).some((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`).endsWith('/ptmx'));
    assert.ok(holdsMaster(rec.containers[0]!.pid!), 'the shim holds the terminal');
    assert.ok(!holdsMaster(workload!), 'the workload does not get its master end');

    agent = startAgent(['serve', '--manifests', manifests]);
    await waitFor('re-adopted', () =>
      records().find((r) => r.id === rec.id && r.containers[0]?.pid === rec.containers[0]!.pid),
    );
    writeFileSync(join(shm, 'three'), '');
    await waitFor('line-three logged after the restart', () => logged().includes('line-three'), 10_000);
    assert.match(logged(), /line-two/, 'what it wrote while no agent ran is logged too (it waited in the terminal)');
    writeFileSync(join(shm, 'stop'), '');
    const done = await waitFor('exit recorded', () => records().find((r) => r.containers[0]?.state?.terminated));
    assert.equal(done.containers[0]!.state?.terminated?.exitCode, 0, 'it ended normally, not by a hangup');
    rmSync(join(manifests, 'term.yaml'));
    await waitFor('sandbox deleted', () => records().length === 0);
  });

  for (const fault of ['after-record', 'after-mounts', 'after-pid1', 'after-containers']) {
    it(`leaves nothing behind when the agent dies while creating (${fault})`, async () => {
      const file = join(manifests, 'crash.yaml');
      writeFileSync(file, manifest('crashy', [{ name: 'main', script: 'sleep 60' }]));
      const crashing = startAgent(['run', '-f', file], { SANDPIT_FAULT: fault });
      await exited(crashing);
      assert.equal(crashing.signalCode, 'SIGKILL');
      const half = records()[0];
      assert.equal(half?.phase, 'Creating');
      const pid1 = half.pid1?.pid;
      rmSync(file);

      agent = startAgent(['serve', '--manifests', manifests]);
      await waitFor('recovery', () => records().length === 0 && mountsUnder(stateRoot).length === 0);
      await waitFor('cgroups removed', () => CgroupManager.detect(parent).listSandboxes().length === 0);
      if (pid1) await waitFor('PID 1 gone', () => !alive(pid1));
    });
  }
});
