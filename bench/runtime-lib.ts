import { Sandbox } from '../crds/sandbox.js';

/* What the runtime benchmarks share: their sandbox and their statistics. */

/** The value at percentile `p` of `xs`. */
export const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

export const r2 = (x: number) => Math.round(x * 100) / 100;

/** A one-container sandbox running `command` on the unpacked root `rootfs`, loopback only, 1 s grace. */
export const dirSandbox = (name: string, rootfs: string, command: string[]) =>
  Sandbox.parse({
    apiVersion: 'sandpit.dev/v1alpha1',
    kind: 'Sandbox',
    metadata: { namespace: 'bench', name, uid: `${name}-${process.pid}` },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 1,
      network: { mode: 'None' },
      containers: [{ name: 'main', image: `dir:${rootfs}`, command }],
    },
  });
