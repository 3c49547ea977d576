import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

/** A named check; it returns undefined when healthy, else why not. */
export type Check = () => string | undefined;

/**
 * /healthz (liveness: the process is not wedged), /readyz (readiness: caches
 * synced and the API server recently answered) and /metrics on one plain HTTP
 * port. Probes and scrapes come from the kubelet and Prometheus inside the
 * cluster; put the port behind a NetworkPolicy rather than TLS.
 */
export class HealthServer {
  readonly #live = new Map<string, Check>();
  readonly #ready = new Map<string, Check>();
  #server: Server | undefined;

  constructor(readonly registry: Registry) {}

  addLiveness(name: string, check: Check): void {
    this.#live.set(name, check);
  }

  addReadiness(name: string, check: Check): void {
    this.#ready.set(name, check);
  }

  async listen(host: string, port: number): Promise<number> {
    this.#server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/metrics') {
        this.registry
          .metrics()
          .then((text) => {
            res.writeHead(200, { 'content-type': this.registry.contentType });
            res.end(text);
          })
          .catch((err: Error) => {
            res.writeHead(500).end(err.message);
          });
        return;
      }
      const checks =
        path === '/healthz' || path === '/livez'
          ? this.#live
          : path === '/readyz'
            ? new Map([...this.#live, ...this.#ready])
            : undefined;
      if (!checks) return void res.writeHead(404).end('not found\n');
      const failed: string[] = [];
      const lines: string[] = [];
      for (const [name, check] of checks) {
        const why = check();
        lines.push(why ? `[-]${name} failed: ${why}` : `[+]${name} ok`);
        if (why) failed.push(name);
      }
      res.writeHead(failed.length ? 500 : 200, { 'content-type': 'text/plain' });
      res.end(
        lines.join('\n') + (failed.length ? `\n${path.slice(1)} check failed\n` : `\n${path.slice(1)} check passed\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      this.#server!.once('error', reject);
      this.#server!.listen(port, host, () => resolve());
    });
    const addr = this.#server.address();
    return typeof addr === 'object' && addr ? addr.port : port;
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => (this.#server ? this.#server.close(() => r()) : r()));
  }
}
