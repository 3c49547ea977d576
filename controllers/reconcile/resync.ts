import type { Sandbox } from '../../crds/sandbox.js';
import type { SandboxNode } from '../../crds/sandboxnode.js';
import type { Logger } from '../../lib/log.js';
import type { AgentClient } from '../agentclient/client.js';
import { keyOf } from '../../lib/kube/resources.js';
import type { Informer } from '../informer/informer.js';
import type { SandboxReconciler } from './sandbox.js';

/**
 * The backstop against missed events: every period, list each Ready agent's
 * sandboxes and compare with the cluster. A sandbox on a node that the
 * cluster no longer has (or has bound elsewhere) is deleted there; a sandbox
 * the cluster binds to a node that lost it is queued to be applied again.
 */
export class AgentResync {
  #timer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(
    readonly agents: AgentClient,
    readonly sandboxes: Informer<Sandbox>,
    readonly nodes: Informer<SandboxNode>,
    readonly reconciler: SandboxReconciler,
    readonly log: Logger,
    readonly enqueue: (key: string) => void,
  ) {}

  start(periodMs: number): void {
    this.#timer = setInterval(() => {
      if (this.#busy) return;
      this.#busy = true;
      void this.resyncAll().finally(() => (this.#busy = false));
    }, periodMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  async resyncAll(): Promise<void> {
    const byUid = new Map<string, Sandbox>();
    for (const s of this.sandboxes.list()) byUid.set(s.metadata.uid ?? '', s);
    await Promise.all(
      this.nodes
        .list()
        .map((n) =>
          this.#resyncNode(n, byUid).catch((err: Error) =>
            this.log.warn({ node: n.metadata.name, err: err.message }, 'Agent resync failed; next period retries'),
          ),
        ),
    );
  }

  async #resyncNode(node: SandboxNode, byUid: Map<string, Sandbox>): Promise<void> {
    const name = node.metadata.name ?? '';
    const endpoint = node.status?.endpoint;
    if (!endpoint || this.reconciler.health(name) !== 'Ready') return;
    const onNode = await this.agents.list(name, endpoint);
    const present = new Set<string>();
    for (const obs of onNode) {
      present.add(obs.ref.uid);
      const sbx = byUid.get(obs.ref.uid);
      const lost = sbx?.status?.phase === 'Failed' && sbx.status.reason === 'NodeLost';
      if (!sbx || lost || (sbx.status?.nodeName && sbx.status.nodeName !== name)) {
        // A NodeLost sandbox was given up by the cluster; a returning node must not keep running it.
        this.log.info(
          { node: name, sandbox: `${obs.ref.namespace}/${obs.ref.name}`, uid: obs.ref.uid, lost },
          'Deleting a sandbox the cluster no longer has',
        );
        await this.agents.remove(name, endpoint, obs.ref.uid);
      } else if (sbx.metadata.deletionTimestamp || obs.generation !== sbx.metadata.generation) {
        this.enqueue(keyOf(sbx));
      }
    }
    for (const sbx of byUid.values()) {
      if (sbx.status?.nodeName !== name || present.has(sbx.metadata.uid ?? '')) continue;
      if (sbx.status.phase === 'Failed' || sbx.status.phase === 'Succeeded' || sbx.metadata.deletionTimestamp) continue;
      this.reconciler.forgetApplied(sbx.metadata.uid ?? '');
      this.enqueue(keyOf(sbx));
    }
  }
}
