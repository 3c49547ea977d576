import type { Logger } from '../../../lib/log.js';
import type { SandboxId } from '../../contracts.js';
import { NETLINK_SOCK_DIAG } from '../netlink/sockdiag.js';
import { RtnlSocket } from '../netlink/socket.js';
import type { ListedRule } from '../rule-index.js';
import { NetworkError, NetworkReason, networkStep } from '../status.js';
import { forgetUdpFlows } from './conntrack.js';
import { PortHolders } from './holders.js';
import { hostListeners, shadowedListeners, socketHolder } from './listeners.js';
import { hostPortConflicts, publishedByRules, type PublishedPort } from './published.js';
import type { PortRule } from './validate.js';

/**
 * The node's published hostPorts: who may take one, and the sockets that keep
 * a taken one from programs of the node. Construct it on the agent's main
 * thread in the node's network namespace (its sock_diag socket lists that
 * namespace's listeners for life).
 */
export class HostPorts {
  /** sock_diag, to see programs of the node listening on a hostPort. */
  readonly #diag = new RtnlSocket(NETLINK_SOCK_DIAG);
  /** Sockets bound to the published hostPorts, so no program of the node can bind them later. */
  readonly #holders = new PortHolders();
  /** On a dual-stack node a port without hostIP is published (and held) on IPv6 too. */
  readonly #dualStack: boolean;

  constructor(dualStack: boolean) {
    this.#dualStack = dualStack;
  }

  /**
   * Takes a sandbox's ports, before anything else is taken from the node for
   * it, so a clash leaves nothing half-installed. Refuses ports another sandbox
   * publishes (HostPortConflict, `published` being the rules of the node) or a
   * program of the node listens on (HostPortInUse): the DNAT would take that
   * program's traffic without a word. Then binds them: a program that raced
   * the check gets HostPortInUse here, one that tries later finds them held.
   */
  claim(id: SandboxId, ports: PortRule[], published: () => ListedRule[], who: string): void {
    this.#refuseTaken(id, ports, published, who);
    this.#holders.hold(id, ports, who, this.#dualStack);
  }

  /**
   * Forgets conntrack entries of UDP flows to the ports, made before their DNAT
   * existed: they would keep bypassing it (blackholed) until they time out.
   */
  forgetStaleFlows(ports: PortRule[], who: string): void {
    networkStep(NetworkReason.FirewallSetupFailed, 'forget stale UDP flows', who, () =>
      forgetUdpFlows(ports.filter((p) => p.protocol === 'UDP').map((p) => p.hostPort)),
    );
  }

  release(id: SandboxId): void {
    this.#holders.release(id);
  }

  /** Lets go of the ports of every sandbox not in `live` (GC). */
  releaseAllBut(live: Set<SandboxId>): void {
    for (const id of this.#holders.holding()) if (!live.has(id)) this.#holders.release(id);
  }

  releaseAll(): void {
    this.#holders.close();
  }

  close(): void {
    this.#holders.close();
    this.#diag.close();
  }

  /**
   * Binds again the hostPorts that the rules say are published: after an agent
   * restart the sandboxes still run and their DNAT still works, but the sockets
   * that kept the ports from programs of the node died with the old agent. A
   * port a program bound in between is reported; its traffic still goes to the
   * sandbox (the DNAT comes first), as it did before the program started.
   */
  holdAgain(rules: ListedRule[], log: Logger): void {
    const bySandbox = new Map<SandboxId, { ports: Omit<PublishedPort, 'owner' | 'ownerName'>[]; name?: string }>();
    for (const p of publishedByRules(rules)) {
      const entry = bySandbox.get(p.owner) ?? { ports: [], name: p.ownerName };
      entry.ports.push({ protocol: p.protocol, hostPort: p.hostPort, ...(p.hostIP ? { hostIP: p.hostIP } : {}) });
      bySandbox.set(p.owner, entry);
    }
    for (const [id, { ports, name }] of bySandbox) {
      try {
        this.#holders.hold(id, ports, name ?? id, this.#dualStack);
      } catch (err) {
        log.warn(
          { err, sandbox: name ?? id, id, step: 'hold published ports again' },
          'a published hostPort was bound by a program of the node while the agent was down; the sandbox keeps its traffic',
        );
      }
    }
  }

  #refuseTaken(id: SandboxId, ports: PortRule[], published: () => ListedRule[], who: string): void {
    if (ports.length === 0) return;
    const conflicts = hostPortConflicts(published(), id, ports);
    if (conflicts.length) {
      const c = conflicts[0]!;
      const holder = c.ownerName ? `sandbox ${c.ownerName} (id ${c.owner})` : `sandbox id ${c.owner}`;
      throw new NetworkError(NetworkReason.HostPortConflict, {
        step: 'publish ports',
        sandbox: who,
        message: `hostPort ${c.port.hostPort}/${c.port.protocol}${c.port.hostIP ? ` on ${c.port.hostIP}` : ''} is already published by ${holder} on this node`,
        hint: 'choose another hostPort, delete the other sandbox, or let the scheduler place this one on another node',
      });
    }
    const listeners = hostListeners(this.#diag, ports);
    for (const p of ports) {
      const l = shadowedListeners(listeners, p, this.#dualStack).filter((x) => !this.#holders.owns(x.inode))[0];
      if (!l) continue;
      const holder = socketHolder(l.inode) ?? 'a process this agent cannot see';
      const at = l.address.includes(':') ? `[${l.address}]:${l.port}` : `${l.address}:${l.port}`;
      throw new NetworkError(NetworkReason.HostPortInUse, {
        step: 'publish ports',
        sandbox: who,
        message: `hostPort ${p.hostPort}/${p.protocol} is in use on the node by ${holder}, listening on ${at}; publishing it would take that program's traffic`,
        hint: 'choose another hostPort, or stop that program, or give the port a hostIP the program does not listen on',
      });
    }
  }
}
