import assert from 'node:assert/strict';
import { sandbox, SCALE, sh, startTestRuntime, waitFor, type TestRuntime } from './runtime-env.js';

/* Node tier: status.usage.cpu is a rate in millicores, not CPU time that keeps growing. */

const cpu = (q: string | undefined) => Number(/^(\d+)m$/.exec(q ?? '')?.[1] ?? NaN);

describe('node: runtime usage', function () {
  this.timeout(60_000 * SCALE);
  let env: TestRuntime;
  before(async () => {
    env = await startTestRuntime();
  });
  after(async () => {
    await env.cleanup();
  });

  it('reports a busy container held at 200m as about 200m, sample after sample', async () => {
    const rec = await env.rt.create(
      sandbox('busy', {
        restartPolicy: 'Never',
        containers: [sh('spin', 'while :; do :; done', { resources: { limits: { cpu: '200m' } } })],
      }),
    );
    await waitFor('running', () => env.rt.workloadPid(rec.id, 'spin'));
    const samples: number[] = [];
    for (let i = 0; i < 3; i++) {
      // Deliberate: usage is a rate over the time between samples (at least 2 s apart), so time has to pass.
      await new Promise((r) => setTimeout(r, 2_500));
      samples.push(cpu(env.rt.status(rec.id).usage?.cpu));
    }
    // CPU time summed would pass 500 m after 2.5 s at 200 m and keep growing; a rate stays at the limit.
    for (const m of samples) assert.ok(m > 50 && m <= 300, `a rate near the 200m limit: ${samples.join(', ')}`);
    await env.rt.delete(rec.id);
  });
});
