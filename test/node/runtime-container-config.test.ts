import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../lib/log.js';
import { OciImageProvider } from '../../node-agent/images/provider.js';
import { DirectoryImageProvider } from '../../node-agent/runtime/directory-image.js';
import { LoopbackOnlyNetwork } from '../../node-agent/runtime/none-network.js';
import { RoutedImageProvider } from '../../node-agent/runtime/providers.js';
import { SandboxSupervisor } from '../../node-agent/runtime/supervisor.js';
import { nodeEffects } from '../../node-agent/runtime/deps.js';
import { buildFixtures, push } from '../harness/images/fixtures.js';
import { startRegistry, type TestRegistry } from '../harness/images/registry.js';
import {
  cleanupRuntime,
  logText,
  ROOTFS,
  runToCompletion,
  sandbox,
  SCALE,
  sh,
  testConfig,
  waitFor,
} from './runtime-env.js';

/*
 * Node tier: what a container runs, with what environment and in which
 * directory, read from inside the container. The image is a real one, pulled
 * from a registry on 127.0.0.1: busybox with ENTRYPOINT ["/bin/sh", "-c"],
 * a CMD and an Env of its own.
 */

describe('node: runtime: command, args, env and workingDir from a real image (root)', function () {
  this.timeout(180_000 * SCALE);
  const config = testConfig();
  const work = mkdtempSync(join(tmpdir(), 'sandpit-cmdenv-'));
  const outside = `sandpit-h-escape-${process.pid}`;
  let registry: TestRegistry;
  let rt: SandboxSupervisor | undefined;
  let image: string;

  before(async function () {
    this.timeout(600_000);
    const layout = join(work, 'layout');
    execFileSync('skopeo', ['copy', '--quiet', `oci:${buildFixtures()}:busybox`, `oci:${layout}:busybox`]);
    execFileSync('umoci', [
      'config',
      '--image',
      `${layout}:busybox`,
      '--tag',
      'cmdenv',
      '--config.entrypoint',
      '/bin/sh',
      '--config.entrypoint',
      '-c',
      '--config.cmd',
      'echo "cmd IMG=$IMG OVER=$OVER"',
      '--config.env',
      'IMG=from-image',
      '--config.env',
      'OVER=image',
    ]);
    registry = await startRegistry({ kind: 'none' });
    await push(layout, registry.host, [{ tag: 'cmdenv' }]);
    image = `${registry.host}/cmdenv:latest`;
    const log = createLogger('runtime-test');
    const oci = new OciImageProvider({
      root: join(work, 'images'),
      log,
      registry: { plainHttpHosts: [registry.host] },
    });
    rt = await SandboxSupervisor.start(config, {
      ...(await nodeEffects(config)),
      images: new RoutedImageProvider(new DirectoryImageProvider(), oci),
      network: new LoopbackOnlyNetwork(),
      log,
    });
  });

  after(async () => {
    await cleanupRuntime(rt, config);
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('falls back to ENTRYPOINT and CMD, replaces CMD with args and both with command, merges env and expands $(VAR)', async () => {
    const env = [
      { name: 'OVER', value: 'spec' },
      { name: 'SPEC', value: '$(OVER)-x' },
      { name: 'LATER', value: '$(NEXT)' },
      { name: 'NEXT', value: 'n' },
    ];
    const rec = await runToCompletion(
      rt!,
      sandbox('cmdenv', {
        restartPolicy: 'Never',
        containers: [
          { name: 'fallback', image },
          // args keep the ENTRYPOINT (sh -c) and replace the CMD; the single quotes keep sh away from what kubelet left.
          {
            name: 'args',
            image,
            env,
            args: [`echo "args OVER=$OVER SPEC=$SPEC LATER=$LATER" '$(SPEC)|$$(SPEC)|$(NOPE)|$(IMG)'`],
          },
          // command replaces the ENTRYPOINT and the CMD is dropped (echo would print it).
          { name: 'command', image, env, command: ['/bin/echo', 'only', '$(SPEC)', '$$(SPEC)'] },
        ],
      }),
    );
    for (const c of rec.containers)
      assert.equal(c.state?.terminated?.exitCode, 0, `${c.name}: ${logText(rt!, rec, c.name)}`);
    assert.equal(logText(rt!, rec, 'fallback'), 'cmd IMG=from-image OVER=image');
    // The spec's OVER wins over the image's; $(OVER) in SPEC is the spec's; LATER refers to a later name and stays as written;
    // the image's IMG is in the environment but not something kubelet expands.
    assert.equal(logText(rt!, rec, 'args'), 'args OVER=spec SPEC=spec-x LATER=$(NEXT) spec-x|$(SPEC)|$(NOPE)|$(IMG)');
    assert.equal(logText(rt!, rec, 'command'), 'only spec-x $(SPEC)');
    await rt!.delete(rec.id);
  });

  it("makes a missing workingDir (as the container's root, 0755, also on a read-only root) and runs in it; a symlink cannot take it out of the root", async () => {
    // A dir: image with links that point out of the root: absolute, and climbing with "..".
    const root = join(work, 'rootfs');
    execFileSync('cp', ['-a', ROOTFS, root]);
    symlinkSync('/tmp', join(root, 'abs'));
    symlinkSync('../../../../../../../../tmp', join(root, 'up'));
    const img = `dir:${root}`;
    const rec = await runToCompletion(
      rt!,
      sandbox('workdir', {
        restartPolicy: 'Never',
        containers: [
          { ...sh('made', 'pwd; stat -c "%u:%g %a" /made /made/deep/er'), image: img, workingDir: '/made/deep/er' },
          { ...sh('ro', 'pwd'), image: img, workingDir: '/ro/dir', securityContext: { readOnlyRootFilesystem: true } },
          { ...sh('abs', 'pwd -P'), image: img, workingDir: `/abs/${outside}` },
          { ...sh('up', 'pwd -P; ls -d /tmp/*'), image: img, workingDir: `/up/${outside}/x` },
          { ...sh('user', 'pwd; id -u'), image: img, workingDir: '/home/u', securityContext: { runAsUser: 1000 } },
        ],
      }),
    );
    for (const c of rec.containers)
      assert.equal(c.state?.terminated?.exitCode, 0, `${c.name}: ${logText(rt!, rec, c.name)}`);
    assert.equal(logText(rt!, rec, 'made'), '/made/deep/er\n0:0 755\n0:0 755');
    assert.equal(logText(rt!, rec, 'ro'), '/ro/dir');
    assert.equal(logText(rt!, rec, 'abs'), `/tmp/${outside}`);
    assert.match(logText(rt!, rec, 'up'), new RegExp(`^/tmp/${outside}/x\n`));
    assert.equal(logText(rt!, rec, 'user'), '/home/u\n1000');
    assert.equal(existsSync(`/tmp/${outside}`), false, 'nothing was made on the node');
    assert.equal(
      existsSync(join(root, 'made')) || existsSync(join(root, 'tmp', outside)),
      false,
      'nor in the image (the writable layer took it)',
    );
    await rt!.delete(rec.id);
  });

  it('refuses a workingDir that is a file in the image with a message naming it', async () => {
    const rec = await rt!
      .create(
        sandbox('workdir-file', {
          restartPolicy: 'Never',
          containers: [{ ...sh('main', 'true'), workingDir: '/etc/passwd/x' }],
        }),
      )
      .catch((err: Error) => err);
    assert.ok(rec instanceof Error, 'create failed');
    assert.match(rec.message, /workingDir \/etc\/passwd\/x: .*ENOTDIR/);
  });

  it('fails an exec into a paused sandbox at once with SandboxPaused, and execs again once it is thawed', async () => {
    const rec = await rt!.create(
      sandbox('paused-exec', { restartPolicy: 'Never', containers: [sh('main', 'sleep 30')] }),
    );
    await waitFor('running', () => rt!.workloadPid(rec.id, 'main'));
    rt!.pause(rec.id, true);
    await assert.rejects(rt!.exec(rec.id, 'main', ['/bin/true']), (err: Error & { reason?: string }) => {
      assert.equal(err.reason, 'SandboxPaused');
      assert.match(
        err.message,
        /sandbox test\/paused-exec: exec in main: the sandbox is paused \(set spec.paused=false to exec\)/,
      );
      return true;
    });
    rt!.pause(rec.id, false);
    const s = await rt!.exec(rec.id, 'main', ['/bin/true']);
    assert.equal((await s.exited).exitCode, 0);
    await rt!.delete(rec.id);
  });
});
