import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bytes, milliCpu } from '../crds/quantity.js';
import type { AgentConfig } from './agent.js';
import { DEFAULT_THRESHOLDS, parseThresholds } from './registration/pressure.js';
import { DEFAULT_SUBNET } from './network/config.js';
import { parseAllowedCapabilities } from './security/capabilities.js';

export const AGENT_USAGE = `sandpit-agent: runs the sandboxes bound to this node and reports them.

Flags (each also settable by the environment variable in brackets):
  --kubeconfig PATH          default in-cluster, then $KUBECONFIG [KUBECONFIG]
  --node-name NAME           this node (default hostname) [NODE_NAME]
  --namespace NS             namespace of the node Lease and the CA bundle (default sandpit-system) [SANDPIT_NAMESPACE]
  --listen HOST:PORT         agent API, mutual TLS (default 0.0.0.0:10260) [SANDPIT_AGENT_LISTEN]
  --advertise-address IP     address the controller dials (default the node IP or 127.0.0.1) [SANDPIT_ADVERTISE_ADDRESS, HOST_IP]
  --health-addr HOST:PORT    /healthz, /readyz, /metrics (default 0.0.0.0:10261) [SANDPIT_HEALTH_ADDR]
  --lease-duration SECONDS   node heartbeat lease (default 40, renewed every quarter) [SANDPIT_NODE_LEASE_DURATION]
  --max-sandboxes N          sandboxes this node takes (default 110) [SANDPIT_MAX_SANDBOXES]
  --reserved-cpu Q           CPU kept for the node, e.g. 250m (default 100m) [SANDPIT_RESERVED_CPU]
  --reserved-memory Q        memory kept for the node, e.g. 256Mi (default 256Mi) [SANDPIT_RESERVED_MEMORY]
  --node-labels k=v,...      labels of the SandboxNode, matched by spec.nodeSelector [SANDPIT_NODE_LABELS]
  --pressure-thresholds LIST MemoryPressure/DiskPressure/PIDPressure turn True below these, in kubelet's
                             --eviction-hard syntax, merged over the defaults (signal<0 turns one off):
                             ${DEFAULT_THRESHOLDS.replaceAll(',', ', ')}
                             [SANDPIT_PRESSURE_THRESHOLDS]
  --pressure-transition-period SECONDS  a pressure condition stays True this long after the pressure
                             ends (default 300) [SANDPIT_PRESSURE_TRANSITION_PERIOD]
  --tls-client-ca-file PATH  provided certificates: CA of the controller's client certificate [SANDPIT_TLS_CLIENT_CA_FILE]
  --tls-cert-file PATH       provided certificates: the agent's serving certificate (DNS SAN = node name) [SANDPIT_TLS_CERT_FILE]
  --tls-key-file PATH        provided certificates: its key [SANDPIT_TLS_KEY_FILE]
                             without these, the agent requests one through a CSR signed by sandpit-controller
  --allow-capability CAP     a capability beyond the container default that Sandboxes may add (repeatable,
                             or comma-separated; e.g. SYS_TIME) [SANDPIT_ALLOW_CAPABILITIES]
  --registry-ca-file PATH    PEM CA certificates trusted, besides the system's, for HTTPS registries and their
                             token endpoints [SANDPIT_REGISTRY_CA_FILE]
  --allow-dir-images DIRS    comma-separated absolute directories whose subdirectories (or themselves) may be
                             a sandbox's root as image dir:PATH, checked after resolving symlinks and "..";
                             default none: a cluster agent refuses dir: images (InvalidImageName)
                             [SANDPIT_ALLOW_DIR_IMAGES]
  --help`;

/** What the agent's flags decide for its runtime (node-agent/runtime/compose.ts createRuntime). */
export interface RuntimeFlags {
  allowedCapabilities: string[];
  registryCAFile?: string;
  /** --allow-dir-images: directories at or below which a dir: image may be; none refuses every one. */
  allowDirImages: string[];
}

export function parseAgentArgs(
  argv: string[],
  env: NodeJS.ProcessEnv,
  version: string,
): AgentConfig & { kubeconfig?: string; runtime: RuntimeFlags } {
  const { values } = parseArgs({
    args: argv,
    options: {
      kubeconfig: { type: 'string' },
      'node-name': { type: 'string' },
      namespace: { type: 'string' },
      listen: { type: 'string' },
      'advertise-address': { type: 'string' },
      'health-addr': { type: 'string' },
      'lease-duration': { type: 'string' },
      'max-sandboxes': { type: 'string' },
      'reserved-cpu': { type: 'string' },
      'reserved-memory': { type: 'string' },
      'node-labels': { type: 'string' },
      'pressure-thresholds': { type: 'string' },
      'pressure-transition-period': { type: 'string' },
      'tls-client-ca-file': { type: 'string' },
      'tls-cert-file': { type: 'string' },
      'tls-key-file': { type: 'string' },
      // Node policy and image pulls of the runtime.
      'allow-capability': { type: 'string', multiple: true },
      'registry-ca-file': { type: 'string' },
      'allow-dir-images': { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(AGENT_USAGE + '\n');
    process.exit(0);
  }
  const hostPort = (v: string, flag: string) => {
    const m = /^(.*):(\d+)$/.exec(v);
    if (!m) throw new Error(`--${flag} must be HOST:PORT, got "${v}"`);
    return { host: m[1] || '0.0.0.0', port: Number(m[2]) };
  };
  const listen = hostPort(values.listen ?? env.SANDPIT_AGENT_LISTEN ?? '0.0.0.0:10260', 'listen');
  const health = hostPort(values['health-addr'] ?? env.SANDPIT_HEALTH_ADDR ?? '0.0.0.0:10261', 'health-addr');
  const labels: Record<string, string> = {};
  for (const pair of (values['node-labels'] ?? env.SANDPIT_NODE_LABELS ?? '').split(',').filter(Boolean)) {
    const [k, v = ''] = pair.split('=');
    if (!k) throw new Error(`--node-labels entries are key=value, got "${pair}"`);
    labels[k.trim()] = v.trim();
  }
  const ca = values['tls-client-ca-file'] ?? env.SANDPIT_TLS_CLIENT_CA_FILE;
  const cert = values['tls-cert-file'] ?? env.SANDPIT_TLS_CERT_FILE;
  const key = values['tls-key-file'] ?? env.SANDPIT_TLS_KEY_FILE;
  if ((ca || cert || key) && !(ca && cert && key))
    throw new Error('--tls-client-ca-file, --tls-cert-file and --tls-key-file go together');
  const namespace = values.namespace ?? env.SANDPIT_NAMESPACE ?? 'sandpit-system';
  const transition = Number(values['pressure-transition-period'] ?? env.SANDPIT_PRESSURE_TRANSITION_PERIOD ?? 300);
  if (!Number.isFinite(transition) || transition < 0)
    throw new Error(
      `--pressure-transition-period must be a number of seconds, got "${values['pressure-transition-period'] ?? env.SANDPIT_PRESSURE_TRANSITION_PERIOD}"`,
    );
  const allowDirImages = (values['allow-dir-images'] ?? env.SANDPIT_ALLOW_DIR_IMAGES ?? '')
    .split(',')
    .map((d) => d.trim())
    .filter(Boolean);
  for (const d of allowDirImages)
    if (!d.startsWith('/')) throw new Error(`--allow-dir-images takes absolute directories, got "${d}"`);
  // The same directories the runtime uses (node-agent/runtime/compose.ts createRuntime): nodefs and imagefs.
  const stateBase = env.SANDPIT_STATE_DIR ?? '/var/lib/sandpit';
  const registryCAFile = values['registry-ca-file'] ?? env.SANDPIT_REGISTRY_CA_FILE;
  const runtime: RuntimeFlags = {
    allowedCapabilities: parseAllowedCapabilities(
      values['allow-capability'] ?? (env.SANDPIT_ALLOW_CAPABILITIES ? [env.SANDPIT_ALLOW_CAPABILITIES] : []),
    ),
    ...(registryCAFile ? { registryCAFile } : {}),
    allowDirImages,
  };
  return {
    runtime,
    kubeconfig: values.kubeconfig ?? env.KUBECONFIG,
    node: values['node-name'] ?? env.NODE_NAME ?? hostname(),
    namespace,
    listenHost: listen.host,
    listenPort: listen.port,
    advertiseAddress: values['advertise-address'] ?? env.SANDPIT_ADVERTISE_ADDRESS ?? env.HOST_IP ?? '127.0.0.1',
    // The subnet the runtime's bridge takes (runtime/env.ts networkOptionsFromEnv), for status.sandboxCIDR.
    sandboxCIDR: env.SANDPIT_SUBNET ?? DEFAULT_SUBNET,
    healthHost: health.host,
    healthPort: health.port,
    leaseDurationSeconds: Number(values['lease-duration'] ?? env.SANDPIT_NODE_LEASE_DURATION ?? 40),
    maxSandboxes: Number(values['max-sandboxes'] ?? env.SANDPIT_MAX_SANDBOXES ?? 110),
    reserved: {
      milliCpu: milliCpu(values['reserved-cpu'] ?? env.SANDPIT_RESERVED_CPU ?? '100m'),
      memory: bytes(values['reserved-memory'] ?? env.SANDPIT_RESERVED_MEMORY ?? '256Mi'),
    },
    labels,
    pressure: {
      thresholds: parseThresholds(
        values['pressure-thresholds'] ?? env.SANDPIT_PRESSURE_THRESHOLDS ?? '',
        parseThresholds(DEFAULT_THRESHOLDS),
      ),
      transitionMs: transition * 1000,
      paths: {
        nodefs: env.SANDPIT_STATE_ROOT ?? join(stateBase, 'sandboxes'),
        imagefs: env.SANDPIT_IMAGE_ROOT ?? join(stateBase, 'images'),
      },
    },
    certificates:
      ca && cert && key ? { kind: 'files', clientCA: ca, cert, key } : { kind: 'csr', namespace, timeoutMs: 120_000 },
    version,
    statusIntervalMs: 10_000,
  };
}
