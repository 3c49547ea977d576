import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sandboxIdFor } from '../node-agent/contracts.js';
import { OciImageProvider } from '../node-agent/images/provider.js';
import { buildFixtures, layersOf, push } from '../test/harness/images/fixtures.js';
import { startRegistry } from '../test/harness/images/registry.js';
import type { BenchResult } from './results-table.js';

/*
 * Pull + unpack of the debootstrap'ed Debian image (~95 MB gzip, ~210 MB
 * unpacked) from a local docker-registry on 127.0.0.1, against skopeo copy +
 * umoci unpack in the same run. Cold: empty stores. Warm: layers already
 * present (ours: a new image record, so manifest + config are fetched again;
 * theirs: skopeo reuses the blobs in its OCI layout, umoci unpacks again).
 * Median of 3 runs each. Page cache is not dropped (same for both).
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RUNS = 3;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function writeResult(r: Omit<BenchResult, 'date' | 'ratio'>): void {
  const result: BenchResult = {
    ...r,
    ratio: r.theirs ? Number((r.ours / r.theirs).toFixed(3)) : null,
    date: new Date().toISOString(),
  };
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', `${r.name}.json`), `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result));
}

async function time(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

const layout = buildFixtures();
const reg = await startRegistry({ kind: 'none' });
const work = mkdtempSync(join(tmpdir(), 'sandpit-bench-images-'));
try {
  await push(layout, reg.host, [{ tag: 'debian' }]);
  const ref = `${reg.host}/debian:latest`;
  const layerBytes = statSync(join(layout, 'blobs/sha256', layersOf(layout, 'debian')[0]!.slice(7))).size;
  const sandbox = { id: sandboxIdFor('bench/images'), namespace: 'bench', name: 'images', uid: 'bench' };
  const oursCold: number[] = [];
  const oursWarm: number[] = [];
  const theirsCold: number[] = [];
  const theirsWarm: number[] = [];

  for (let i = 0; i < RUNS; i++) {
    const root = join(work, `ours-${i}`);
    const p = new OciImageProvider({ root, registry: { plainHttpHosts: [reg.host] } });
    oursCold.push(await time(() => p.prepare(ref, { policy: 'Always', credentials: [], sandbox })));
    await p.close();
    // Warm: a fresh provider (no in-memory state) on the same store, image record dropped, layers kept.
    const q = new OciImageProvider({ root, registry: { plainHttpHosts: [reg.host] } });
    q.store.removeImage(ref);
    oursWarm.push(await time(() => q.prepare(ref, { policy: 'Always', credentials: [], sandbox })));
    await q.close();
    rmSync(root, { recursive: true, force: true });

    const oci = join(work, `theirs-${i}`);
    const copy = ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${oci}:debian`];
    const unpack = (n: string) => ['unpack', '--image', `${oci}:debian`, join(work, `bundle-${i}-${n}`)];
    theirsCold.push(
      await time(() => {
        execFileSync('skopeo', copy, { stdio: 'ignore' });
        execFileSync('umoci', unpack('cold'), { stdio: 'ignore' });
      }),
    );
    theirsWarm.push(
      await time(() => {
        execFileSync('skopeo', copy, { stdio: 'ignore' });
        execFileSync('umoci', unpack('warm'), { stdio: 'ignore' });
      }),
    );
    rmSync(oci, { recursive: true, force: true });
    rmSync(join(work, `bundle-${i}-cold`), { recursive: true, force: true });
    rmSync(join(work, `bundle-${i}-warm`), { recursive: true, force: true });
  }

  const mb = (layerBytes / 1e6).toFixed(0);
  // Other work on the machine moves these numbers a lot; say how busy it was.
  const load = `load average ${loadavg()[0]!.toFixed(1)} at the end`;
  const note = `debootstrap minbase bookworm, one layer of ${mb} MB gzip; median of ${RUNS}; runs ${oursCold.map((x) => x.toFixed(0)).join('/')} vs ${theirsCold.map((x) => x.toFixed(0)).join('/')} ms; ${load}`;
  writeResult({
    name: 'images-pull-cold',
    metric: `pull + unpack, empty store (${mb} MB image, local registry)`,
    unit: 'ms',
    ours: Number(median(oursCold).toFixed(1)),
    peer: 'skopeo copy + umoci unpack',
    theirs: Number(median(theirsCold).toFixed(1)),
    command: 'npm run bench -- images-pull',
    note,
  });
  writeResult({
    name: 'images-pull-warm',
    metric: 'pull + unpack, layers already present (image record dropped)',
    unit: 'ms',
    ours: Number(median(oursWarm).toFixed(1)),
    peer: 'skopeo copy (blobs reused) + umoci unpack',
    theirs: Number(median(theirsWarm).toFixed(1)),
    command: 'npm run bench -- images-pull',
    note: `ours: manifest + config round trips only; runs ${oursWarm.map((x) => x.toFixed(1)).join('/')} ms; ${load}`,
  });
} finally {
  await reg.stop();
  rmSync(work, { recursive: true, force: true });
}
