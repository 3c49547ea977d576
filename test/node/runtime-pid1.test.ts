import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logText, runToCompletion, sandbox, sh, startTestRuntime, type TestRuntime } from './runtime-env.js';

/*
 * Node tier (root, real kernel): the sandbox's PID 1 (sandpit-init), once its
 * namespaces and mounts are made, is as confined as Kubernetes' pause
 * container or more, and a container sees nothing of the node through /proc/1.
 */

/** What a container prints about its PID 1. */
const PROBE = [
  'grep -E "^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):" /proc/1/status',
  'echo "--mountinfo"; cat /proc/1/mountinfo; echo "--end"',
  'ls -A /proc/1/root/ >/dev/null 2>&1 && echo PID1-ROOT-LISTED',
  'readlink /proc/1/fd/0 2>/dev/null && echo PID1-FD-OPENED',
  'cat "/proc/1/root$MARKER" 2>/dev/null && echo NODE-FILE-READ',
  'echo probe-done',
].join('; ');

function assertConfined(out: string, stateRoot: string): void {
  assert.match(out, /probe-done/, out);
  for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'])
    assert.match(out, new RegExp(`^${set}:\\s+0000000000000000$`, 'm'), `${set} of PID 1 is empty:\n${out}`);
  assert.match(out, /^NoNewPrivs:\s+1$/m, out);
  assert.match(out, /^Seccomp:\s+2$/m, 'PID 1 runs under a seccomp filter');
  assert.match(out, /^Uid:\s+65535\s+65535\s+65535\s+65535$/m, out);
  assert.match(out, /^Gid:\s+65535\s+65535\s+65535\s+65535$/m, out);
  assert.match(out, /^Groups:\s*$/m, out);
  const mounts = /--mountinfo\n([\s\S]*?)--end/.exec(out)![1]!.trim().split('\n');
  assert.equal(mounts.length, 1, `PID 1 sees one mount, its own root:\n${mounts.join('\n')}`);
  const fields = mounts[0]!.split(' ');
  assert.equal(fields[4], '/', 'mounted at /');
  assert.match(fields[5]!, /^ro,/, 'read-only');
  assert.equal(fields[fields.indexOf('-') + 1], 'tmpfs');
  assert.ok(
    !mounts.join('\n').includes(stateRoot) && !/cgroup/.test(mounts.join('\n')),
    'no state dir or cgroup mount of the node',
  );
  assert.doesNotMatch(
    out,
    /PID1-ROOT-LISTED|PID1-FD-OPENED|NODE-FILE-READ/,
    `a container root can neither look into PID 1 nor read the node through it:\n${out}`,
  );
}

for (const warm of [2, 0]) {
  describe(`node: sandbox PID 1 confinement, ${warm ? 'warm' : 'cold'} PID 1`, function () {
    this.timeout(60_000);
    let env: TestRuntime;
    let marker: string;
    before(async () => {
      env = await startTestRuntime({ warmSandboxes: warm });
      marker = join(env.config.stateRoot, 'node-marker');
      writeFileSync(marker, 'node secret\n');
    });
    after(async () => {
      await env.cleanup();
    });

    it('has no capabilities, no_new_privs, a seccomp filter, uid 65535 and an empty read-only root of its own', async () => {
      const rec = await runToCompletion(
        env.rt,
        sandbox('pid1', {
          restartPolicy: 'Never',
          containers: [sh('main', PROBE, { env: [{ name: 'MARKER', value: marker }] })],
        }),
      );
      assertConfined(logText(env.rt, rec, 'main'), env.config.stateRoot);
      assert.equal(rec.containers[0]!.state?.terminated?.exitCode, 0);
    });

    it('still starts and restarts containers in the namespaces it made', async () => {
      const rec = await runToCompletion(
        env.rt,
        sandbox('pid1-restart', {
          restartPolicy: 'OnFailure',
          volumes: [{ name: 'v', emptyDir: {} }],
          containers: [
            sh('main', '[ -e /v/second ] && { echo second-run; exit 0; }; touch /v/second; echo first-run; exit 1', {
              volumeMounts: [{ name: 'v', mountPath: '/v' }],
            }),
          ],
        }),
      );
      const out = logText(env.rt, rec, 'main');
      assert.match(out, /second-run/, out);
      assert.equal(rec.containers[0]!.restartCount, 1);
    });
  });
}

describe('node: container PID 1 confinement with shareProcessNamespace false', function () {
  this.timeout(60_000);
  let env: TestRuntime;
  before(async () => {
    env = await startTestRuntime();
  });
  after(async () => {
    await env.cleanup();
  });

  it("confines the container's own PID 1 (sandpit-init pidns) the same way", async () => {
    const marker = join(env.config.stateRoot, 'node-marker');
    writeFileSync(marker, 'node secret\n');
    const rec = await runToCompletion(
      env.rt,
      sandbox('pidns-pid1', {
        restartPolicy: 'Never',
        shareProcessNamespace: false,
        containers: [
          sh('main', `tr "\\0" " " < /proc/1/cmdline; echo; ${PROBE}`, { env: [{ name: 'MARKER', value: marker }] }),
        ],
      }),
    );
    const out = logText(env.rt, rec, 'main');
    assert.match(out, /^sandpit-init pidns /m, out);
    assertConfined(out, env.config.stateRoot);
  });
});
