import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GenericContainer, type StartedTestContainer } from 'testcontainers';
import { parse, stringify } from 'yaml';
import { ControlPlane } from '../../harness/control-plane.js';
import {
  agentKubeconfig,
  applyCRDs,
  applyManifests,
  controllerLog,
  sleep,
  startController,
  waitFor,
  type ControllerProcess,
} from '../../cluster/sandpit-processes.js';
import { DockerEngine } from './engine.js';
import { APP_DIR, nodeImage, NODE_ROOTFS } from './image.js';

/*
 * A multi-node sandpit cluster on the harness's Docker engine:
 *
 * - The control plane (etcd + kube-apiserver, test/harness/control-plane.ts)
 *   and the controller replicas run on the host as processes, like the
 *   cluster tier. kube-apiserver listens on 127.0.0.1 only; the node
 *   containers reach it through a socat relay bound to the Docker network's
 *   gateway address (the bridge this run created), with tls-server-name
 *   "localhost" in their kubeconfig (the serving certificate's SAN).
 *   Controllers dial the agents at the containers' addresses over that bridge.
 * - Each node is a privileged container (started by testcontainers) on one
 *   user-defined network with a fixed address, its own cgroup namespace
 *   (--cgroupns=private; the host is cgroup v1 hybrid, the node sees v1
 *   hierarchies rooted at its container cgroup), its own network namespace
 *   (bridge sandpit0, subnet 10.88.<i>.0/24), and its agent state on a bind
 *   mount from the engine's directory (overlay upper dirs cannot live on the
 *   container's own overlay root). PID 1 is catatonit; the agent runs beside
 *   it through `docker exec`, so it can be stopped and upgraded while the
 *   sandboxes keep running.
 * - Routes: every node gets a route to every other node's sandbox subnet via
 *   that node's container address (the harness adds them; the agent does not
 *   manage inter-node routes).
 */

export interface NodeHandle {
  name: string;
  index: number;
  ip: string;
  subnet: string;
  container: StartedTestContainer;
  containerName: string;
  stateDir: string;
  etcDir: string;
  /** App dir of the agent build now running (APP_DIR, or an upgrade). */
  appDir: string;
}

export interface ClusterOptions {
  id: string;
  nodes: number;
  controllers: number;
  /** Seconds after a node's lease expires until its sandboxes are NodeLost. */
  nodeLostGrace?: number;
  agentLeaseSeconds?: number;
}

/** A Docker network address plan: 172.29.<n>.0/24, n from the run id. */
function networkPlan(id: string): { subnet: string; gateway: string; nodeIp: (i: number) => string } {
  let n = 0;
  for (const c of id) n = (n * 31 + c.charCodeAt(0)) % 250;
  const p = `172.29.${n + 1}`;
  return { subnet: `${p}.0/24`, gateway: `${p}.1`, nodeIp: (i) => `${p}.${10 + i}` };
}

/** The node container: --cgroupns=private and a fixed address, which testcontainers has no builder method for. */
class NodeContainer extends GenericContainer {
  constructor(
    image: string,
    readonly network: string,
    readonly ip: string,
  ) {
    super(image);
  }
  protected override async beforeContainerCreated(): Promise<void> {
    (this.hostConfig as Record<string, unknown>).CgroupnsMode = 'private';
    this.hostConfig.NetworkMode = this.network;
    (this.createOpts as Record<string, unknown>).NetworkingConfig = {
      EndpointsConfig: { [this.network]: { IPAMConfig: { IPv4Address: this.ip } } },
    };
  }
}

export class E2ECluster {
  readonly nodes = new Map<string, NodeHandle>();
  controllers: ControllerProcess[] = [];
  readonly network: string;
  readonly plan: ReturnType<typeof networkPlan>;
  image = '';
  cp!: ControlPlane;
  #relay: ChildProcess | undefined;
  #relayExited: Promise<void> | undefined;

  private constructor(
    readonly engine: DockerEngine,
    readonly opts: Required<ClusterOptions>,
  ) {
    this.network = engine.name;
    this.plan = networkPlan(opts.id);
  }

  static async start(o: ClusterOptions): Promise<E2ECluster> {
    const opts = { nodeLostGrace: 10, agentLeaseSeconds: 6, ...o };
    const engine = await DockerEngine.start({ id: opts.id });
    const c = new E2ECluster(engine, opts);
    try {
      await c.#boot();
    } catch (err) {
      process.stderr.write(
        `e2e cluster failed to start: ${(err as Error).message}\n${await c.diagnostics().catch(() => '')}\n`,
      );
      await c.stop();
      throw err;
    }
    return c;
  }

  async #boot(): Promise<void> {
    // testcontainers reads these once, when it first connects.
    process.env.DOCKER_HOST = this.engine.host;
    process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
    // This machine has /.dockerenv, so testcontainers would look for a "bridge" network's gateway (there is none: --bridge=none).
    process.env.TESTCONTAINERS_HOST_OVERRIDE = 'localhost';
    const t0 = Date.now();
    const [image] = await Promise.all([
      nodeImage(this.engine),
      this.engine.docker([
        'network',
        'create',
        '--driver',
        'bridge',
        '--subnet',
        this.plan.subnet,
        '--gateway',
        this.plan.gateway,
        '-o',
        `com.docker.network.bridge.name=${this.network}`,
        '-o',
        'com.docker.network.bridge.enable_ip_masquerade=false',
        this.network,
      ]),
    ]);
    this.image = image;
    const tImage = Date.now();
    this.cp = await ControlPlane.start({ dir: join(this.engine.dir, 'control-plane') });
    await applyCRDs(this.cp);
    await applyManifests(this.cp);
    this.#startRelay();
    for (let i = 1; i <= this.opts.controllers; i++) await this.restartController(`e2e-c${i}`);
    await Promise.all(Array.from({ length: this.opts.nodes }, (_, k) => this.addNode(k + 1)));
    for (const n of this.nodes.values()) await this.addRoutes(n);
    await Promise.all([...this.nodes.values()].map((n) => this.waitNodeReady(n.name)));
    process.stderr.write(
      `e2e cluster up in ${((Date.now() - t0) / 1000).toFixed(1)} s (engine and node image ${((tImage - t0) / 1000).toFixed(1)} s)\n`,
    );
  }

  #startRelay(): void {
    const port = this.cp.apiserverPort;
    const log = join(this.engine.dir, 'relay.log');
    writeFileSync(log, '');
    this.#relay = spawn(
      'setpriv',
      [
        '--pdeathsig',
        'KILL',
        '--',
        'socat',
        `TCP-LISTEN:${port},bind=${this.plan.gateway},reuseaddr,fork`,
        `TCP:127.0.0.1:${port}`,
      ],
      { stdio: 'ignore' },
    );
    this.#relayExited = new Promise((r) => this.#relay!.once('exit', () => r()));
    this.#relay.once('error', () => undefined);
  }

  nodeName(i: number): string {
    return `e2e-n${i}`;
  }

  node(name: string): NodeHandle {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  /** Starts node container i (1-based) and its agent. */
  async addNode(i: number, image = this.image): Promise<NodeHandle> {
    const name = this.nodeName(i);
    const dir = join(this.engine.dir, 'nodes', name);
    const stateDir = join(dir, 'state');
    const etcDir = join(dir, 'etc');
    mkdirSync(stateDir, { recursive: true });
    mkdirSync(etcDir, { recursive: true });
    const kc = parse(readFileSync(await agentKubeconfig(this.cp, name), 'utf8')) as {
      clusters: { cluster: Record<string, string> }[];
    };
    kc.clusters[0]!.cluster.server = `https://${this.plan.gateway}:${this.cp.apiserverPort}`;
    kc.clusters[0]!.cluster['tls-server-name'] = 'localhost';
    writeFileSync(join(etcDir, 'kubeconfig'), stringify(kc), { mode: 0o600 });
    const ip = this.plan.nodeIp(i);
    const containerName = `${this.engine.name}-${name}`;
    const container = await new NodeContainer(image, this.network, ip)
      .withName(containerName)
      .withHostname(name)
      .withPrivilegedMode()
      .withBindMounts([
        { source: stateDir, target: '/var/lib/sandpit', mode: 'rw' },
        { source: etcDir, target: '/etc/sandpit', mode: 'ro' },
      ])
      .withStartupTimeout(60_000)
      .start();
    const node: NodeHandle = {
      name,
      index: i,
      ip,
      subnet: `10.88.${i}.0/24`,
      container,
      containerName,
      stateDir,
      etcDir,
      appDir: APP_DIR,
    };
    this.nodes.set(name, node);
    await this.startAgent(node);
    return node;
  }

  /** Starts the agent in the node container (from `appDir`), recording its PID in /run/sptest-agent.pid. */
  async startAgent(node: NodeHandle, appDir = node.appDir): Promise<void> {
    node.appDir = appDir;
    const args = [
      `${appDir}/dist/node-agent/main.js`,
      '--kubeconfig',
      '/etc/sandpit/kubeconfig',
      '--node-name',
      node.name,
      '--advertise-address',
      node.ip,
      '--listen',
      '0.0.0.0:10260',
      '--health-addr',
      '127.0.0.1:10261',
      '--lease-duration',
      String(this.opts.agentLeaseSeconds),
      '--node-labels',
      `sandpit.test/e2e=yes,sandpit.test/node=${node.name}`,
      '--allow-dir-images',
      NODE_ROOTFS,
    ];
    const env = {
      SANDPIT_STATE_DIR: '/var/lib/sandpit',
      SANDPIT_CGROUP_PARENT: 'sandpit',
      SANDPIT_RUN_DIR: '/run/sandpit',
      SANDPIT_BRIDGE: 'sandpit0',
      SANDPIT_SUBNET: node.subnet,
      SANDPIT_LOG_LEVEL: 'info',
    };
    const envArgs = Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    await this.engine.docker([
      'exec',
      '-d',
      ...envArgs,
      node.containerName,
      'sh',
      '-c',
      `echo $$ > /run/sptest-agent.pid; exec node ${args.join(' ')} >>/var/lib/sandpit/agent.log 2>&1`,
    ]);
    await waitFor(
      `agent pid on ${node.name}`,
      async () => (await this.exec(node.name, ['cat', '/run/sptest-agent.pid'])).trim() || undefined,
      20_000,
    );
  }

  /** Stops the agent in a node container (sandboxes keep running). */
  async stopAgent(name: string, signal: 'TERM' | 'KILL' = 'TERM'): Promise<void> {
    const pid = (await this.exec(name, ['cat', '/run/sptest-agent.pid'])).trim();
    await this.exec(name, [
      'sh',
      '-c',
      `kill -${signal} ${pid} 2>/dev/null; for i in $(seq 1 150); do kill -0 ${pid} 2>/dev/null || exit 0; sleep 0.1; done; kill -KILL ${pid}; rm -f /run/sptest-agent.pid`,
    ]);
  }

  async exec(name: string, cmd: string[]): Promise<string> {
    return this.engine.docker(['exec', this.node(name).containerName, ...cmd]);
  }

  async execResult(name: string, cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return this.engine.dockerResult(['exec', this.node(name).containerName, ...cmd]);
  }

  /** Routes from `node` to every other node's sandbox subnet, via that node's address. */
  async addRoutes(node: NodeHandle): Promise<void> {
    for (const other of this.nodes.values()) {
      if (other.name === node.name) continue;
      await this.exec(node.name, ['ip', 'route', 'replace', other.subnet, 'via', other.ip]);
    }
  }

  async waitNodeReady(name: string, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.cp.kubectlResult([
        'get',
        'sandboxnode',
        name,
        '-o',
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
      ]);
      if (r.stdout.trim() === 'True') return;
      const alive = await this.execResult(name, ['sh', '-c', 'kill -0 $(cat /run/sptest-agent.pid)']);
      if (alive.code !== 0) throw new Error(`the agent on ${name} exited: ${(await this.agentLog(name)).slice(-1500)}`);
      if (Date.now() > deadline)
        throw new Error(`SandboxNode ${name} not Ready after ${timeoutMs} ms: ${r.stdout} ${r.stderr}`);
      await sleep(500);
    }
  }

  /** Cuts a node off the Docker network (its agent can reach neither the API server nor other nodes). */
  async disconnect(name: string): Promise<void> {
    await this.engine.docker(['network', 'disconnect', this.network, this.node(name).containerName]);
  }

  /** Reconnects a node with its old address; the routes that went with its interface are added again. */
  async reconnect(name: string): Promise<void> {
    const n = this.node(name);
    await this.engine.docker(['network', 'connect', '--ip', n.ip, this.network, n.containerName]);
    await this.exec(name, ['ip', 'route', 'replace', 'default', 'via', this.plan.gateway]);
    await this.addRoutes(n);
  }

  /** Kills a node container outright (a node crash: every process on it dies at once). */
  async killNode(name: string): Promise<void> {
    await this.engine.docker(['kill', this.node(name).containerName]);
  }

  /** The controller replica holding the leader Lease, if any. */
  async leader(): Promise<string | undefined> {
    const r = await this.cp.kubectlResult([
      '-n',
      'sandpit-system',
      'get',
      'lease',
      'sandpit-controller',
      '-o',
      'jsonpath={.spec.holderIdentity}',
    ]);
    return r.code === 0 ? r.stdout.trim() || undefined : undefined;
  }

  async restartController(identity: string): Promise<void> {
    const i = this.controllers.findIndex((c) => c.identity === identity);
    if (i >= 0) await this.controllers[i]!.stop('SIGKILL');
    const common = [
      '--namespace',
      'sandpit-system',
      '--resync-period',
      '5',
      '--node-lost-grace',
      String(this.opts.nodeLostGrace),
      '--lease-duration',
      '8',
      '--renew-deadline',
      '5',
      '--retry-period',
      '1',
    ];
    const p = await startController(this.cp, identity, common);
    if (i >= 0) this.controllers[i] = p;
    else this.controllers.push(p);
  }

  async agentLog(name: string): Promise<string> {
    try {
      return readFileSync(join(this.node(name).stateDir, 'agent.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** Tails of every log, for a failing test. */
  async diagnostics(): Promise<string> {
    const parts: string[] = [];
    for (const c of this.controllers)
      parts.push(`--- controller ${c.identity}\n${(await controllerLog(c)).slice(-3000)}`);
    for (const n of this.nodes.values())
      parts.push(`--- agent ${n.name}\n${(await this.agentLog(n.name)).slice(-3000)}`);
    return parts.join('\n');
  }

  /** The sandbox root for `dir:` images inside node containers. */
  get rootfs(): string {
    return NODE_ROOTFS;
  }

  async stop(): Promise<void> {
    for (const c of this.controllers) await c.stop().catch(() => undefined);
    this.controllers = [];
    await this.cp?.stop().catch(() => undefined);
    if (this.#relay && this.#relay.exitCode === null && this.#relay.signalCode === null) {
      this.#relay.kill('SIGTERM');
      await Promise.race([this.#relayExited, sleep(5000)]);
    }
    // Containers go with the engine (their sandboxes die with their PID namespaces; the
    // engine removes their cgroup subtree, mounts and network).
    await this.engine.stop();
  }
}

/** What the runtime on a node holds: sandbox records read from its state dir (a bind mount), with PID 1. */
export interface RuntimeEntry {
  id: string;
  uid: string;
  name: string;
  phase: string;
  pid1?: number;
}

export function runtimeEntries(node: NodeHandle): RuntimeEntry[] {
  const root = join(node.stateDir, 'sandboxes');
  const out: RuntimeEntry[] = [];
  let ids: string[];
  try {
    ids = readdirSync(root);
  } catch {
    return out;
  }
  for (const id of ids) {
    try {
      const rec = JSON.parse(readFileSync(join(root, id, 'sandbox.json'), 'utf8')) as {
        ref: { uid: string; name: string };
        phase: string;
        pid1?: { pid: number };
      };
      out.push({ id, uid: rec.ref.uid, name: rec.ref.name, phase: rec.phase, pid1: rec.pid1?.pid });
    } catch {
      /* being written or removed */
    }
  }
  return out;
}

/**
 * Everything a node holds for sandboxes, as counts and lists comparable with a
 * baseline taken before any sandbox ran there: state records, network
 * namespaces (distinct ones in use by processes), veths, cgroups, mounts,
 * address leases, nft table contents, processes.
 */
export const LEAK_PROBE = String.raw`
echo "records=$(ls /var/lib/sandpit/sandboxes 2>/dev/null | tr '\n' ' ')"
echo "netns=$(for p in /proc/[0-9]*; do readlink $p/ns/net 2>/dev/null; done | sort -u | wc -l)"
echo "veths=$(ip -o link show type veth | awk -F': ' '{print $2}' | grep '^spv' | tr '\n' ' ')"
echo "cgroups=$(find /sys/fs/cgroup -mindepth 2 -type d 2>/dev/null | grep -v '^/sys/fs/cgroup/[^/]*/sandpit$' | sort | tr '\n' ' ')"
echo "mounts=$(wc -l < /proc/self/mountinfo)"
echo "leases=$(cat /run/sandpit/network/leases.json 2>/dev/null | tr -d '\n ')"
echo "nft=$(nft list table inet sandpit 2>/dev/null | grep -c -E 'spv|elements|10\.88\.[0-9]+\.[0-9]+[^/]')"
echo "procs=$(ps -e -o comm= | grep -v -x -e ps -e sh -e grep -e sort -e wc -e tr | sort | tr '\n' ' ')"
`;

export async function leakProbe(c: E2ECluster, name: string): Promise<Record<string, string>> {
  const text = await c.exec(name, ['sh', '-c', LEAK_PROBE]);
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1).trim();
  }
  // Leases: only how many addresses are handed out matters.
  try {
    const t = JSON.parse(out.leases || '{}') as { leases?: Record<string, unknown> };
    out.leases = String(Object.keys(t.leases ?? {}).length);
  } catch {
    /* keep the raw text: a difference shows it */
  }
  return out;
}
