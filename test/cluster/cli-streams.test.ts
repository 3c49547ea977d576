import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sandboxIdFor } from '../../node-agent/contracts.js';
import { buildBusyboxRootfs } from '../fixtures/busybox-rootfs.js';
import { freePort, sharedControlPlane, type ControlPlane } from '../harness/control-plane.js';
import {
  cgroupPids,
  exposeStreams,
  kubectlSandpit,
  pluginDir,
  pluginEnv,
  spawnPlugin,
  type StreamsPath,
} from './cli-support.js';
import {
  agentKubeconfig,
  applyCRDs,
  applyManifests,
  cleanUp,
  controllerLog,
  getSandbox,
  startAgentProcess,
  startController,
  waitFor,
  type AgentProcess,
  type ControllerProcess,
} from './sandpit-processes.js';

/*
 * kubectl sandpit end to end: kubectl finds the plugin on PATH; the plugin
 * goes through the real API server's service proxy to the controller, which
 * checks the caller with TokenReview and SubjectAccessReview and splices the
 * stream to the agent over mTLS; the agent runs real sandboxes as root.
 */
describe('cluster: kubectl sandpit exec, logs, port-forward, cp, top, describe through the API server (root)', function () {
  this.timeout(300_000);
  const ns = 'cli-test';
  const node = 'cli-a';
  const ROOT = new URL('../../..', import.meta.url).pathname;
  const cgroupParent = `sandpit-cli-${process.pid}`;
  const tmux = `sptest-cli-${process.pid}`;
  const rootfs = buildBusyboxRootfs(join(tmpdir(), 'sandpit-test-rootfs'));
  let cp: ControlPlane;
  let controller: ControllerProcess;
  let agent: AgentProcess | undefined;
  let streams: StreamsPath | undefined;
  let dir: string;
  let stateRoot: string;
  let agentLog: string;
  let plugins: string;
  let alice: string;
  let bob: string;
  let streamsPort: number;
  const started: ChildProcess[] = [];
  const sandpit = (kc: string, args: string[], input?: string) =>
    kubectlSandpit(cp, plugins, kc, args, input === undefined ? {} : { input });

  const manifest = (name: string, containers: unknown[], extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      apiVersion: 'sandpit.dev/v1alpha1',
      kind: 'Sandbox',
      metadata: { name, namespace: ns },
      spec: {
        nodeSelector: { 'sandpit.test/cli': 'yes' },
        network: { mode: 'None' },
        terminationGracePeriodSeconds: 1,
        containers,
        ...extra,
      },
    });
  const img = `dir:${rootfs}`;

  async function ready(name: string): Promise<void> {
    await waitFor(
      `${name} Ready`,
      async () =>
        (await getSandbox(cp, ns, name))?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True',
      120_000,
    );
  }

  before(async () => {
    cp = await sharedControlPlane();
    await applyCRDs(cp);
    await applyManifests(cp);
    await cp.kubectl(['apply', '-f', join(ROOT, 'controllers/manifests/rbac-streams.yaml')]);
    await cp.kubectl(['create', 'namespace', ns]).catch(() => undefined);
    dir = mkdtempSync(join(tmpdir(), 'sandpit-cli-'));
    stateRoot = join(dir, 'state');
    agentLog = join(cp.dir, 'agent-cli.log');
    plugins = pluginDir(dir);

    // alice may exec/log/port-forward in the namespace (the ClusterRole that admin/edit aggregate; this
    // control plane has no controller-manager to aggregate it, so it is bound directly); bob may only read.
    alice = await cp.serviceAccountKubeconfig(ns, 'alice');
    bob = await cp.serviceAccountKubeconfig(ns, 'bob');
    await cp.kubectl([
      '-n',
      ns,
      'create',
      'role',
      'sandbox-reader',
      '--verb=get,list',
      '--resource=sandboxes.sandpit.dev,events',
    ]);
    await cp.kubectl([
      '-n',
      ns,
      'create',
      'rolebinding',
      'alice-streams',
      '--clusterrole=sandpit-sandbox-streams',
      `--serviceaccount=${ns}:alice`,
    ]);
    await cp.kubectl([
      '-n',
      ns,
      'create',
      'rolebinding',
      'alice-read',
      '--role=sandbox-reader',
      `--serviceaccount=${ns}:alice`,
    ]);
    await cp.kubectl([
      '-n',
      ns,
      'create',
      'rolebinding',
      'bob-read',
      '--role=sandbox-reader',
      `--serviceaccount=${ns}:bob`,
    ]);

    streamsPort = await freePort();
    controller = await startController(cp, 'cli', [
      '--namespace',
      'sandpit-system',
      '--leader-elect',
      'false',
      '--streams-addr',
      `127.0.0.1:${streamsPort}`,
    ]);
    streams = await exposeStreams(cp, 'sandpit-system', streamsPort, dir);

    const agentKc = await agentKubeconfig(cp, node);
    agent = await startAgentProcess({
      kubeconfig: agentKc,
      node,
      leaseDuration: 6,
      labels: 'sandpit.test/cli=yes',
      allowDirImages: rootfs,
      stateRoot,
      cgroupParent,
      logPath: agentLog,
    });

    await cp.kubectl(['apply', '-f', '-'], {
      input: manifest('box', [
        {
          name: 'main',
          image: img,
          command: ['/bin/sh', '-c', 'i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.3; done'],
        },
        {
          name: 'web',
          image: img,
          command: [
            '/bin/sh',
            '-c',
            'mkdir -p /tmp/www && echo hello-from-sandbox > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /tmp/www',
          ],
        },
      ]),
    });
    // Prints a fresh token each run; the second run stays up, so "current" and "previous" are both well defined.
    await cp.kubectl(['apply', '-f', '-'], {
      input: manifest(
        'crashy',
        [
          {
            name: 'main',
            image: img,
            command: [
              '/bin/sh',
              '-c',
              'echo run-$RANDOM$RANDOM; if [ -e /data/once ]; then exec sleep 3600; fi; touch /data/once; sleep 1; exit 1',
            ],
            volumeMounts: [{ name: 'data', mountPath: '/data' }],
          },
        ],
        { restartPolicy: 'Always', volumes: [{ name: 'data', emptyDir: {} }] },
      ),
    });
    await ready('box');
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      process.stderr.write(`agent log tail:\n${(await readFile(agentLog, 'utf8').catch(() => '')).slice(-4000)}\n`);
      process.stderr.write(`controller log tail:\n${(await controllerLog(controller)).slice(-4000)}\n`);
    }
  });

  after(async () => {
    for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    try {
      execFileSync('tmux', ['-L', tmux, 'kill-server'], { stdio: 'ignore' });
    } catch {
      /* no server left */
    }
    await cp.kubectlResult(['-n', ns, 'delete', 'sandboxes', '--all', '--wait=true', '--timeout=60s']);
    await agent?.stop();
    await controller?.stop();
    await streams?.stop();
    await cleanUp(cp, [ns], [node]);
    await rm(dir, { recursive: true, force: true });
    await rm(`${stateRoot}-images`, { recursive: true, force: true });
    for (const root of readdirSync('/sys/fs/cgroup')) {
      const d = join('/sys/fs/cgroup', root, cgroupParent);
      if (existsSync(d) && statSync(d).isDirectory()) rmdirDeep(d);
    }
    if (existsSync(join('/sys/fs/cgroup', cgroupParent))) rmdirDeep(join('/sys/fs/cgroup', cgroupParent));
  });

  it('exec returns the command exit code and its output, for a user the RBAC allows', async () => {
    const r = await sandpit(alice, ['exec', 'box', '--', 'sh', '-c', 'echo to-out; echo to-err >&2; exit 3']);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, 'to-out\n');
    assert.match(r.stderr, /to-err/);
    const ok = await sandpit(
      alice,
      ['exec', 'box', '-c', 'main', '-i', '--', 'tr', 'a-z', 'A-Z'],
      'piped through stdin\n',
    );
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'PIPED THROUGH STDIN\n');
    // The development path straight to the controller (token in Authorization) is authorised the same way.
    const direct = await sandpit(alice, [
      '--direct',
      `https://127.0.0.1:${streamsPort}`,
      'exec',
      'box',
      '--',
      'sh',
      '-c',
      'exit 4',
    ]);
    assert.equal(direct.code, 4, direct.stderr);
    const refused = await sandpit(bob, ['--direct', `https://127.0.0.1:${streamsPort}`, 'exec', 'box', '--', 'true']);
    assert.match(refused.stderr, /cannot create sandboxes\/exec/);
  });

  it('refuses a user without sandboxes/exec with a clear message, and bad usage with exit 2', async () => {
    const r = await sandpit(bob, ['exec', 'box', '--', 'true']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /User "system:serviceaccount:cli-test:bob" cannot create sandboxes\/exec \(sandpit\.dev\) in namespace "cli-test"/,
    );
    const logs = await sandpit(bob, ['logs', 'box']);
    assert.match(logs.stderr, /cannot get sandboxes\/log/);
    const usage = await sandpit(alice, ['exec', 'box']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /needs a command after --/);
    const missing = await sandpit(alice, ['exec', 'nope', '--', 'true']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /sandbox cli-test\/nope not found/);
  });

  it('exec into a paused sandbox fails at once with SandboxPaused and exit 1, and works again once it is resumed', async () => {
    const phase = async () => (await getSandbox(cp, ns, 'box'))?.status?.phase;
    await cp.kubectl(['-n', ns, 'patch', 'sandbox', 'box', '--type=merge', '-p', '{"spec":{"paused":true}}']);
    try {
      await waitFor('box Paused', async () => (await phase()) === 'Paused', 60_000);
      const r = await sandpit(alice, ['exec', 'box', '--', 'true']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        /Error from server \(SandboxPaused\): sandbox cli-test\/box: exec in main: the sandbox is paused \(set spec.paused=false to exec\)/,
      );
    } finally {
      await cp.kubectl(['-n', ns, 'patch', 'sandbox', 'box', '--type=merge', '-p', '{"spec":{"paused":false}}']);
    }
    await waitFor('box Running', async () => (await phase()) === 'Running', 60_000);
    assert.equal((await sandpit(alice, ['exec', 'box', '--', 'true'])).code, 0);
  });

  it('an interactive TTY session in tmux: raw mode, resize, Ctrl-C to the remote, exit code', async () => {
    const env = pluginEnv(cp, plugins, alice);
    const exitFile = join(dir, 'tty-exit');
    const cmd = `env PATH='${env.PATH}' KUBECONFIG='${alice}' kubectl sandpit exec -it box -- sh; echo $? > '${exitFile}'; sleep 30`;
    execFileSync('tmux', [
      '-L',
      tmux,
      '-f',
      '/dev/null',
      'new-session',
      '-d',
      '-s',
      'cli',
      '-x',
      '100',
      '-y',
      '30',
      cmd,
    ]);
    const pane = () => execFileSync('tmux', ['-L', tmux, 'capture-pane', '-p', '-t', 'cli'], { encoding: 'utf8' });
    const keys = (...k: string[]) => execFileSync('tmux', ['-L', tmux, 'send-keys', '-t', 'cli', ...k]);
    await waitFor('a shell prompt', async () => /[#$] ?$/m.test(pane()), 30_000);
    keys('stty size', 'Enter');
    await waitFor('the initial size 30x100', async () => pane().includes('30 100'), 15_000);
    execFileSync('tmux', ['-L', tmux, 'resize-window', '-t', 'cli', '-x', '120', '-y', '40']);
    // The new size reaches the remote terminal a moment later: ask again until it answers with it.
    await waitFor(
      'the new size 40x120 after a resize',
      async () => {
        if (pane().includes('40 120')) return true;
        keys('stty size', 'Enter');
        return false;
      },
      15_000,
    );
    const id = sandboxIdFor((await getSandbox(cp, ns, 'box'))!.metadata.uid);
    const cmdline = (p: number) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      } catch {
        return '';
      }
    };
    keys('sleep 100', 'Enter');
    await waitFor(
      'the remote sleep to run',
      async () => cgroupPids(cgroupParent, id, 'main').map(cmdline).includes('sleep 100'),
      15_000,
    );
    keys('C-c');
    keys('echo alive-$((40+2))', 'Enter');
    await waitFor('Ctrl-C to stop the remote sleep, not the plugin', async () => pane().includes('alive-42'), 15_000);
    keys('exit 7', 'Enter');
    await waitFor(
      'the exit code of the shell',
      async () => existsSync(exitFile) && readFileSync(exitFile, 'utf8').trim() === '7',
      15_000,
    );
  });

  it('logs: the current run, --tail, -f follows new lines', async () => {
    const r = await sandpit(alice, ['logs', 'box', '--tail=2']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stderr,
      'Defaulted container "main" out of: main, web\n',
      'kubectl says which of several containers it took',
    );
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^tick-\d+$/);
    const f = spawnPlugin(cp, plugins, alice, ['logs', 'box', '-c', 'main', '-f', '--tail=1']);
    started.push(f);
    let out = '';
    f.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const seen = await waitFor(
      'followed lines',
      async () => {
        const ticks = [...out.matchAll(/tick-(\d+)/g)].map((m) => Number(m[1]));
        return ticks.length >= 4 ? ticks : undefined;
      },
      20_000,
    );
    for (let i = 1; i < seen.length; i++)
      assert.equal(seen[i], seen[i - 1]! + 1, `consecutive lines: ${seen.join(',')}`);
    f.kill('SIGINT');
  });

  it('logs and exec without -c honour the kubectl.kubernetes.io/default-container annotation', async () => {
    await cp.kubectl(['-n', ns, 'annotate', 'sandbox', 'box', 'kubectl.kubernetes.io/default-container=web']);
    try {
      const r = await sandpit(alice, ['exec', 'box', '--', 'cat', '/tmp/www/index.html']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'hello-from-sandbox\n');
      assert.equal(r.stderr, '', 'no notice when the annotation chose');
    } finally {
      await cp.kubectl(['-n', ns, 'annotate', 'sandbox', 'box', 'kubectl.kubernetes.io/default-container-']);
    }
  });

  it('logs --previous shows the run before the restart', async () => {
    const s = await waitFor(
      'crashy restarted once and running',
      async () => {
        const o = await getSandbox(cp, ns, 'crashy');
        const cs = (
          o?.status as { containerStatuses?: { restartCount: number; state?: { running?: unknown } }[] } | undefined
        )?.containerStatuses?.[0];
        return cs && cs.restartCount >= 1 && cs.state?.running ? cs : undefined;
      },
      120_000,
    );
    assert.ok(s);
    const cur = await sandpit(alice, ['logs', 'crashy']);
    const prev = await sandpit(alice, ['logs', 'crashy', '--previous']);
    assert.equal(cur.code, 0, cur.stderr);
    assert.equal(prev.code, 0, prev.stderr);
    assert.match(cur.stdout, /^run-\d+\n$/);
    assert.match(prev.stdout, /^run-\d+\n$/);
    assert.notEqual(cur.stdout, prev.stdout);
    const none = await sandpit(alice, ['logs', 'box', '--previous']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /previous terminated container "main" not found/);
  });

  it('port-forward carries an HTTP request to a server inside the sandbox', async () => {
    const pf = spawnPlugin(cp, plugins, alice, ['port-forward', 'box', ':8080']);
    started.push(pf);
    let out = '';
    pf.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    let err = '';
    pf.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const port = await waitFor(
      'Forwarding from',
      async () => /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out)?.[1],
      20_000,
    );
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/index.html`, { headers: { connection: 'close' } });
      assert.equal(res.status, 200, err);
      assert.equal(await res.text(), 'hello-from-sandbox\n');
    }
    pf.kill('SIGINT');
  });

  it('cp copies both ways; top and describe show the sandbox', async () => {
    const local = join(dir, 'payload.txt');
    writeFileSync(local, 'payload-' + 'x'.repeat(100_000));
    const up = await sandpit(alice, ['cp', local, 'box:/tmp/payload.txt']);
    assert.equal(up.code, 0, up.stderr);
    const back = join(dir, 'back.txt');
    const down = await sandpit(alice, ['cp', 'box:/tmp/payload.txt', back]);
    assert.equal(down.code, 0, down.stderr);
    assert.equal(readFileSync(back, 'utf8'), readFileSync(local, 'utf8'));

    const top = await sandpit(alice, ['top', 'box']);
    assert.equal(top.code, 0, top.stderr);
    assert.match(top.stdout, /^NAME\s+CPU\(cores\)\s+MEMORY\(bytes\)\nbox\s+\d+m\s+\d+Mi\n\s+main\s+\d+m/);
    const d = await sandpit(alice, ['describe', 'box']);
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stdout, new RegExp(`Node:\\s+${node}`));
    assert.match(d.stdout, /Conditions:[\s\S]*Ready\s+True/);
    assert.match(d.stdout, /web:\n\s+Image:/);
  });

  it("back-pressure: a reader that stops reading stops the exec'd writer, and no byte is lost", async () => {
    const o = await getSandbox(cp, ns, 'box');
    const id = sandboxIdFor(o!.metadata.uid);
    const total = 100_000_000;
    const ex = spawnPlugin(cp, plugins, alice, ['exec', 'box', '--', 'head', '-c', String(total), '/dev/zero']);
    started.push(ex);
    ex.stdout!.pause(); // nobody reads: the pipe to us fills, the plugin stops reading its socket, TCP pushes back
    let seen = '';
    const writer = await waitFor(
      "the exec'd writer in the container cgroup",
      async () => {
        const procs = cgroupPids(cgroupParent, id, 'main').map((p) => {
          try {
            return { p, cmd: readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ') };
          } catch {
            return { p, cmd: '' };
          }
        });
        seen = procs.map((x) => x.cmd).join(' | ');
        return procs.find((x) => x.cmd.includes(String(total)))?.p;
      },
      30_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; processes in the container cgroup: ${seen}`);
    });
    const written = () => Number(/wchar: (\d+)/.exec(readFileSync(`/proc/${writer}/io`, 'utf8'))?.[1]);
    // Let every buffer on the way fill, then the writer must be stuck well short of the end.
    let before = -1;
    const stalled = await waitFor(
      'the writer to stall',
      async () => {
        const now = written();
        const stuck = now === before;
        before = now;
        return stuck ? now : undefined;
      },
      60_000,
      2000,
    );
    assert.ok(
      stalled < total / 2,
      `the writer stalled after ${stalled} of ${total} bytes (buffers on the path are bounded)`,
    );
    let got = 0;
    ex.stdout!.on('data', (d: Buffer) => (got += d.length));
    ex.stdout!.resume();
    const code = await new Promise<number | null>((r) => ex.once('close', r));
    assert.equal(code, 0);
    assert.equal(got, total);
  });

  it("a dropped connection kills the exec'd command and its children: nothing is left in the sandbox", async () => {
    const o = await getSandbox(cp, ns, 'box');
    const id = sandboxIdFor(o!.metadata.uid);
    const cmdline = (p: number) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      } catch {
        return '';
      }
    };
    const inCgroup = () => cgroupPids(cgroupParent, id, 'main').map(cmdline);
    assert.ok(
      inCgroup().some((c) => c.includes('tick-')),
      'the container cgroup is found and holds its workload',
    );
    const ex = spawnPlugin(cp, plugins, alice, ['exec', 'box', '--', 'sh', '-c', 'sleep 1000 & sleep 1001']);
    started.push(ex);
    // busybox sh execs its last command in place, so the exec'd process becomes `sleep 1001` with `sleep 1000` as its child.
    const exec = (c: string) => /^sleep 100[01]$|sleep 1000 & sleep 1001/.test(c);
    await waitFor(
      "both exec'd sleeps in the container cgroup",
      async () => inCgroup().filter((c) => /^sleep 100[01]$/.test(c)).length === 2 || undefined,
      30_000,
    );
    ex.kill('SIGKILL');
    await waitFor(
      "no exec'd process left in the container cgroup",
      async () => (inCgroup().some(exec) ? undefined : true),
      20_000,
    );
    assert.ok(
      inCgroup().some((c) => c.includes('tick-')),
      'the workload itself still runs',
    );
  });
});

function rmdirDeep(d: string): void {
  for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) rmdirDeep(join(d, e.name));
  try {
    rmdirSync(d);
  } catch {
    /* still busy or already gone */
  }
}
