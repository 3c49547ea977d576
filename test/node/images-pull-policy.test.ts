import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OciImageProvider } from '../../node-agent/images/provider.js';
import { LoopbackOnlyNetwork } from '../../node-agent/runtime/none-network.js';
import { SandboxSupervisor } from '../../node-agent/runtime/supervisor.js';
import { nodeEffects } from '../../node-agent/runtime/deps.js';
import { createLogger } from '../../lib/log.js';
import { buildFixtures, push } from '../harness/images/fixtures.js';
import { startRegistry, type TestRegistry } from '../harness/images/registry.js';
import { cleanupRuntime, sandbox, testConfig } from './runtime-env.js';

/*
 * Node tier (root): the default imagePullPolicy, as kubelet applies it, from a
 * real create against a real registry. A spec without a policy re-pulls an
 * untagged or :latest image (Always) and keeps the stored copy of any other
 * tag (IfNotPresent). The registry's tag is moved between two creates; the
 * imageID the container reports says which content the sandbox got.
 */
describe('node: images: the default imagePullPolicy of a real create (root)', function () {
  this.timeout(240_000);
  let registry: TestRegistry;
  let layout: string;
  let work: string;
  let images: OciImageProvider;
  let rt: SandboxSupervisor;
  let config: ReturnType<typeof testConfig>;

  before(async function () {
    this.timeout(600_000);
    config = testConfig();
    work = mkdtempSync(join(tmpdir(), 'sandpit-pull-policy-'));
    layout = buildFixtures();
    registry = await startRegistry({ kind: 'none' });
    images = new OciImageProvider({
      root: join(work, 'store'),
      registry: { plainHttpHosts: [registry.host], retryDelayMs: 20 },
      platform: { os: 'linux', architecture: 'amd64' },
    });
    rt = await SandboxSupervisor.start(config, {
      ...(await nodeEffects(config)),
      images,
      network: new LoopbackOnlyNetwork(),
      log: createLogger('pull-policy-test'),
    });
  });

  after(async () => {
    if (config) await cleanupRuntime(rt, config);
    await images?.close();
    await registry?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** Creates a sandbox of one container on `image` without imagePullPolicy; answers the imageID it got. */
  const imageIdOf = async (name: string, image: string) => {
    const sb = sandbox(name, {
      restartPolicy: 'Never',
      containers: [{ name: 'main', image, command: ['/bin/sh', '-c', 'true'] }],
    });
    assert.equal(sb.spec.containers[0]!.imagePullPolicy, undefined, 'the spec carries no policy');
    const rec = await rt.create(sb);
    return rec.containers[0]!.imageID;
  };

  for (const [what, repo, tag, suffix] of [
    ['an untagged image', 'untagged', 'latest', ''],
    ['a :latest image', 'latest', 'latest', ':latest'],
  ] as const) {
    it(`re-pulls ${what} on the next create (Always)`, async () => {
      await push(layout, registry.host, [{ tag: 'app1', as: repo, to: tag }]);
      const first = await imageIdOf(`${repo}-1`, `${registry.host}/${repo}${suffix}`);
      await push(layout, registry.host, [{ tag: 'app2', as: repo, to: tag }]);
      const second = await imageIdOf(`${repo}-2`, `${registry.host}/${repo}${suffix}`);
      assert.notEqual(second, first, 'the moved tag was pulled again');
    });
  }

  it('keeps the stored copy of a tagged image on the next create (IfNotPresent)', async () => {
    await push(layout, registry.host, [{ tag: 'app1', as: 'tagged', to: 'v1' }]);
    const first = await imageIdOf('tagged-1', `${registry.host}/tagged:v1`);
    await push(layout, registry.host, [{ tag: 'app2', as: 'tagged', to: 'v1' }]);
    const second = await imageIdOf('tagged-2', `${registry.host}/tagged:v1`);
    assert.equal(second, first, 'the stored image was used, not the moved tag');
  });
});
