import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { setns, CLONE_NEWNET } from '../../../node-agent/sys/net.js';
import { sandboxIdFor, type SandboxRef } from '../../../node-agent/contracts.js';

/*
 * A miniature node for network tests, built from network namespaces the test
 * owns. The "node" is itself a namespace (`sptest-<tag>-node`): the test's main
 * thread setns()es into it, so the provider under test creates its bridge,
 * nftables table, sysctls and iptables-style FORWARD chain there and the
 * machine's real root namespace is never touched (nothing to restore, no clash
 * with a real agent or with other engineers' tests). Sandboxes and "outside
 * hosts" are more namespaces; an outside host is linked to the node by a veth
 * and routes through it, like a machine on the node's LAN.
 *
 * Traffic only ever goes to addresses inside these namespaces.
 */

const sh = (cmd: string, ...args: string[]) =>
  execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

export class NetWorld {
  readonly tag: string;
  /** Third octet block: sandbox subnet 10.199.<k>.0/24, outside LAN 10.199.<k+1>.0/24. */
  readonly k: number;
  readonly subnet: string;
  readonly bridge: string;
  readonly table: string;
  readonly stateDir: string;
  readonly nodeLanIP: string;
  readonly outsideIP: string;
  /** Dual-stack worlds: the sandbox prefix, and the node's and the outside host's IPv6 LAN addresses. */
  readonly subnet6: string;
  readonly nodeLanIP6: string;
  readonly outsideIP6: string;
  readonly #namespaces: string[] = [];
  readonly #children: ChildProcess[] = [];
  #home: number | undefined;

  constructor(name: string) {
    const n = (process.pid + Math.floor(Math.random() * 1000)) % 120;
    this.tag = `${name}${n}`;
    this.k = 2 * n + 2;
    this.subnet = `10.199.${this.k}.0/24`;
    this.bridge = `sptest${n}`;
    this.table = `sptest${n}`;
    this.stateDir = `/run/sptest-${this.tag}-state`;
    this.nodeLanIP = `10.199.${this.k + 1}.1`;
    this.outsideIP = `10.199.${this.k + 1}.2`;
    this.subnet6 = `fd00:199:${this.k.toString(16)}::/64`;
    this.nodeLanIP6 = `fd00:199:${(this.k + 1).toString(16)}::1`;
    this.outsideIP6 = `fd00:199:${(this.k + 1).toString(16)}::2`;
  }

  ns(name: string): string {
    return `sptest-${this.tag}-${name}`;
  }
  path(name: string): string {
    return `/run/netns/${this.ns(name)}`;
  }

  /** Creates the node namespace and moves this thread into it. */
  enter(opts: { brNetfilter: boolean; forwardDrop: false | 'iptables-nft' | 'iptables-legacy' }): void {
    this.addNamespace('node');
    this.#home = openSync('/proc/thread-self/ns/net', 'r');
    const fd = openSync(this.path('node'), 'r');
    try {
      if (setns(fd, CLONE_NEWNET) < 0) throw new Error('setns into the test node namespace failed');
    } finally {
      closeSync(fd);
    }
    sh('ip', 'link', 'set', 'lo', 'up');
    // br_netfilter is built in on this machine kind; elsewhere it is a module (loading it is global and harmless: the sysctl below is per namespace).
    if (!existsSync('/proc/sys/net/bridge')) sh('modprobe', 'br_netfilter');
    writeFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', opts.brNetfilter ? '1' : '0');
    if (opts.forwardDrop === 'iptables-nft') {
      // What iptables-nft leaves behind when Docker (or kube-proxy) runs: filter FORWARD with policy DROP.
      sh('nft', 'add table ip filter');
      sh('nft', 'add chain ip filter FORWARD { type filter hook forward priority filter; policy drop; }');
    } else if (opts.forwardDrop === 'iptables-legacy') {
      // The same on an older host whose Docker uses x_tables (iptables-legacy).
      sh('iptables-legacy', '-w', '-P', 'FORWARD', 'DROP');
    }
    rmSync(this.stateDir, { recursive: true, force: true });
  }

  /** Stops what the test started, returns this thread to its namespace and deletes every namespace of the world. */
  leave(): void {
    for (const c of this.#children) c.kill('SIGKILL');
    if (this.#home !== undefined) {
      setns(this.#home, CLONE_NEWNET);
      closeSync(this.#home);
      this.#home = undefined;
    }
    for (const ns of this.#namespaces.splice(0)) {
      try {
        sh('ip', 'netns', 'del', ns);
      } catch {
        /* already gone */
      }
    }
    rmSync(this.stateDir, { recursive: true, force: true });
  }

  addNamespace(name: string): string {
    const ns = this.ns(name);
    try {
      sh('ip', 'netns', 'del', ns);
    } catch {
      /* not there: fine */
    }
    sh('ip', 'netns', 'add', ns);
    this.#namespaces.push(ns);
    return this.path(name);
  }

  deleteNamespace(name: string): void {
    sh('ip', 'netns', 'del', this.ns(name));
    const i = this.#namespaces.indexOf(this.ns(name));
    if (i >= 0) this.#namespaces.splice(i, 1);
  }

  /** An outside host on the node's LAN, routing everything through the node (call while inside the node). */
  addOutsideHost(): void {
    this.addNamespace('out');
    sh('ip', 'link', 'add', `${this.bridge}o`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.ns('out'));
    sh('ip', 'addr', 'add', `${this.nodeLanIP}/24`, 'dev', `${this.bridge}o`);
    sh('ip', 'link', 'set', `${this.bridge}o`, 'up');
    this.exec('out', 'ip', 'addr', 'add', `${this.outsideIP}/24`, 'dev', 'eth0');
    this.exec('out', 'ip', 'link', 'set', 'eth0', 'up');
    this.exec('out', 'ip', 'link', 'set', 'lo', 'up');
    this.exec('out', 'ip', 'route', 'add', 'default', 'via', this.nodeLanIP);
  }

  /** IPv6 on the outside host's link too (after addOutsideHost), without duplicate address detection. */
  addOutsideHost6(): void {
    sh('ip', '-6', 'addr', 'add', `${this.nodeLanIP6}/64`, 'dev', `${this.bridge}o`, 'nodad');
    this.exec('out', 'ip', '-6', 'addr', 'add', `${this.outsideIP6}/64`, 'dev', 'eth0', 'nodad');
    this.exec('out', 'ip', '-6', 'route', 'add', 'default', 'via', this.nodeLanIP6);
  }

  /** Runs a command inside namespace `name` ('node' is where this thread is). */
  exec(name: string, cmd: string, ...args: string[]): string {
    return name === 'node' ? sh(cmd, ...args) : sh('ip', 'netns', 'exec', this.ns(name), cmd, ...args);
  }

  /**
   * A server in namespace `name` that answers every TCP connection or UDP
   * datagram with the address it came from, so tests see masquerade at work.
   */
  async serveWhoAmI(name: string, port: number, proto: 'tcp' | 'udp' | 'tcp6'): Promise<void> {
    const listen =
      proto === 'tcp'
        ? `TCP-LISTEN:${port},reuseaddr,fork`
        : proto === 'tcp6'
          ? `TCP6-LISTEN:${port},reuseaddr,fork,ipv6only=1`
          : `UDP-RECVFROM:${port},fork`;
    const argv = ['socat', listen, 'SYSTEM:echo $SOCAT_PEERADDR'];
    const child =
      name === 'node'
        ? spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' })
        : spawn('ip', ['netns', 'exec', this.ns(name), ...argv], { stdio: 'ignore' });
    this.#children.push(child);
    for (let i = 0; i < 100; i++) {
      const out = this.exec(name, 'ss', '-Hln', proto === 'udp' ? '-u' : '-t');
      if (new RegExp(`:${port}\\b`).test(out)) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`server on ${name}:${port}/${proto} did not start`);
  }

  /**
   * Connects from namespace `name` and returns what the server answered, or
   * throws when it cannot connect. Asked up to three times, with a longer wait
   * each time: a UDP datagram may be lost while a neighbour entry resolves, and
   * on a busy machine the server's forked reply can outlast the first wait.
   * `attempts: 1` is for checks that expect no answer (cannotReach).
   */
  ask(
    name: string,
    host: string,
    port: number,
    proto: 'tcp' | 'udp',
    timeoutSeconds = 2,
    sourcePort?: number,
    fromAddress?: string,
    attempts = 3,
  ): string {
    const from =
      (sourcePort ? `,sourceport=${sourcePort},reuseaddr` : '') + (fromAddress ? `,bind=${fromAddress}` : '');
    const v6 = host.includes(':');
    const addr = v6 ? `[${host}]` : host;
    const target =
      proto === 'tcp'
        ? `TCP${v6 ? '6' : ''}:${addr}:${port},connect-timeout=${timeoutSeconds}${from}`
        : `UDP${v6 ? '6' : ''}:${addr}:${port}${from}`;
    const input = proto === 'udp' ? 'who\n' : '';
    let last: unknown;
    for (let attempt = 0; attempt < attempts; attempt++) {
      // A busy machine can take more than a second to fork the server's reply: wait longer each time.
      const wait = String(timeoutSeconds * (attempt + 1));
      const args = ['-T', wait, '-t', wait, '-', target];
      const run = name === 'node' ? ['socat', ...args] : ['ip', 'netns', 'exec', this.ns(name), 'socat', ...args];
      try {
        const out = execFileSync(run[0]!, run.slice(1), {
          input,
          stdio: ['pipe', 'pipe', 'pipe'],
          timeout: (Number(wait) + 5) * 1000,
        })
          .toString()
          .trim();
        if (out) return out.split('\n')[0]!;
        last = new Error(`no answer from ${host}:${port}/${proto} asked from ${name}`);
      } catch (err) {
        last = err;
      }
    }
    throw last;
  }

  /** True when asking fails (refused, unreachable, or no answer). */
  cannotReach(name: string, host: string, port: number, proto: 'tcp' | 'udp', fromAddress?: string): boolean {
    try {
      this.ask(name, host, port, proto, 1, undefined, fromAddress, 1);
      return false;
    } catch {
      return true;
    }
  }
}

export const sandboxRef = (name: string): SandboxRef => ({
  id: sandboxIdFor(`sptest/${name}/${process.pid}`),
  namespace: 'sptest',
  name,
  uid: name,
});
