import { parseArgs } from 'node:util';
import { DEFAULT_TIMINGS } from './leaderelection/lease.js';
import { defaultIdentity, type ManagerConfig } from './manager.js';

export const USAGE = `sandpit-controller: schedules Sandboxes onto nodes and drives the sandpit agents.

Flags (each also settable by the environment variable in brackets):
  --kubeconfig PATH            kubeconfig; default in-cluster, then $KUBECONFIG, then ~/.kube/config [KUBECONFIG]
  --namespace NS               namespace of the leader Lease, the CA Secret and node Leases (default sandpit-system) [SANDPIT_NAMESPACE]
  --leader-elect BOOL          run leader election (default true) [SANDPIT_LEADER_ELECT]
  --identity ID                leader election identity (default hostname_pid) [POD_NAME]
  --lease-duration SECONDS     15 [SANDPIT_LEASE_DURATION]
  --renew-deadline SECONDS     10 [SANDPIT_RENEW_DEADLINE]
  --retry-period SECONDS       2 [SANDPIT_RETRY_PERIOD]
  --workers N                  concurrent reconciles (default 4) [SANDPIT_WORKERS]
  --node-lost-grace SECONDS    after a node's lease expires, how long until its sandboxes fail with NodeLost (default 300) [SANDPIT_NODE_LOST_GRACE]
  --resync-period SECONDS      how often every agent's sandboxes are compared with the cluster (default 30) [SANDPIT_RESYNC_PERIOD]
  --relist-period SECONDS      full relist of every informer (default 300) [SANDPIT_RELIST_PERIOD]
  --health-addr HOST:PORT      /healthz, /readyz, /metrics (default 0.0.0.0:8081) [SANDPIT_HEALTH_ADDR]
  --tls-ca-file PATH           provided certificates: CA that signed the agents' serving certificates [SANDPIT_TLS_CA_FILE]
  --tls-cert-file PATH         provided certificates: the controller's client certificate (CN sandpit-controller) [SANDPIT_TLS_CERT_FILE]
  --tls-key-file PATH          provided certificates: its key [SANDPIT_TLS_KEY_FILE]
                               without these, a CA is kept in Secret <namespace>/sandpit-ca (created if absent)
  --agent-service-account NS:NAME  the agents' ServiceAccount, the only requester whose CSRs are signed (default <namespace>:sandpit-agent) [SANDPIT_AGENT_SERVICE_ACCOUNT]
  --cert-days N                validity of issued certificates (default 90) [SANDPIT_CERT_DAYS]
  --streams-addr HOST:PORT     serve kubectl-sandpit streams (exec, logs, port-forward, top) here; default off [SANDPIT_STREAMS_ADDR]
  --help`;

export function parseControllerArgs(argv: string[], env: NodeJS.ProcessEnv): ManagerConfig & { kubeconfig?: string } {
  const { values } = parseArgs({
    args: argv,
    options: {
      kubeconfig: { type: 'string' },
      namespace: { type: 'string' },
      'leader-elect': { type: 'string' },
      identity: { type: 'string' },
      'lease-duration': { type: 'string' },
      'renew-deadline': { type: 'string' },
      'retry-period': { type: 'string' },
      workers: { type: 'string' },
      'node-lost-grace': { type: 'string' },
      'resync-period': { type: 'string' },
      'relist-period': { type: 'string' },
      'health-addr': { type: 'string' },
      'tls-ca-file': { type: 'string' },
      'tls-cert-file': { type: 'string' },
      'tls-key-file': { type: 'string' },
      'agent-service-account': { type: 'string' },
      'cert-days': { type: 'string' },
      'streams-addr': { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  const num = (flag: string, v: string | undefined, def: number) => {
    if (v === undefined || v === '') return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${flag} must be a non-negative number, got "${v}"`);
    return n;
  };
  const namespace = values.namespace ?? env.SANDPIT_NAMESPACE ?? 'sandpit-system';
  const [healthHost, healthPort] = (values['health-addr'] ?? env.SANDPIT_HEALTH_ADDR ?? '0.0.0.0:8081').split(
    /:(?=[^:]*$)/,
  );
  const ca = values['tls-ca-file'] ?? env.SANDPIT_TLS_CA_FILE;
  const cert = values['tls-cert-file'] ?? env.SANDPIT_TLS_CERT_FILE;
  const key = values['tls-key-file'] ?? env.SANDPIT_TLS_KEY_FILE;
  if ((ca || cert || key) && !(ca && cert && key))
    throw new Error('--tls-ca-file, --tls-cert-file and --tls-key-file go together: give all three or none');
  const [saNs, saName] = (
    values['agent-service-account'] ??
    env.SANDPIT_AGENT_SERVICE_ACCOUNT ??
    `${namespace}:sandpit-agent`
  ).split(':');
  const lease = {
    leaseDurationMs:
      num(
        'lease-duration',
        values['lease-duration'] ?? env.SANDPIT_LEASE_DURATION,
        DEFAULT_TIMINGS.leaseDurationMs / 1000,
      ) * 1000,
    renewDeadlineMs:
      num(
        'renew-deadline',
        values['renew-deadline'] ?? env.SANDPIT_RENEW_DEADLINE,
        DEFAULT_TIMINGS.renewDeadlineMs / 1000,
      ) * 1000,
    retryPeriodMs:
      num('retry-period', values['retry-period'] ?? env.SANDPIT_RETRY_PERIOD, DEFAULT_TIMINGS.retryPeriodMs / 1000) *
      1000,
  };
  if (lease.renewDeadlineMs >= lease.leaseDurationMs)
    throw new Error('--renew-deadline must be shorter than --lease-duration');
  const streamsAddr = values['streams-addr'] ?? env.SANDPIT_STREAMS_ADDR ?? '';
  const [streamsHost, streamsPort] = streamsAddr.split(/:(?=[^:]*$)/);
  if (streamsAddr && (!streamsHost || streamsPort === undefined))
    throw new Error(`--streams-addr must be HOST:PORT, got "${streamsAddr}"`);
  return {
    ...(streamsAddr ? { streams: { host: streamsHost!, port: num('streams-addr', streamsPort, 8443) } } : {}),
    kubeconfig: values.kubeconfig ?? env.KUBECONFIG,
    namespace,
    identity: values.identity ?? env.POD_NAME ?? defaultIdentity(),
    leaderElection: (values['leader-elect'] ?? env.SANDPIT_LEADER_ELECT ?? 'true') !== 'false',
    lease,
    workers: Math.max(1, num('workers', values.workers ?? env.SANDPIT_WORKERS, 4)),
    nodeLostGraceMs: num('node-lost-grace', values['node-lost-grace'] ?? env.SANDPIT_NODE_LOST_GRACE, 300) * 1000,
    resyncMs: Math.max(1000, num('resync-period', values['resync-period'] ?? env.SANDPIT_RESYNC_PERIOD, 30) * 1000),
    relistMs: Math.max(5000, num('relist-period', values['relist-period'] ?? env.SANDPIT_RELIST_PERIOD, 300) * 1000),
    healthHost: healthHost || '0.0.0.0',
    healthPort: num('health-addr', healthPort, 8081),
    ...(ca && cert && key ? { tlsFiles: { ca, cert, key } } : {}),
    agentServiceAccount: `system:serviceaccount:${saNs}:${saName}`,
    certDays: Math.max(1, num('cert-days', values['cert-days'] ?? env.SANDPIT_CERT_DAYS, 90)),
  };
}
