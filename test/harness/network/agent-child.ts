import { createLogger } from '../../../lib/log.js';
import type { SandboxRef } from '../../../node-agent/contracts.js';
import type { BridgeNetworkOptions } from '../../../node-agent/network/config.js';
import { BridgeNetworkProvider } from '../../../node-agent/network/provider.js';

/*
 * A stand-in agent for the restart test: sets up the sandboxes named in argv[2]
 * (JSON) one after another, printing `ready <id>` after each, then idles until
 * it is killed. The test SIGKILLs it partway, as a crash would.
 */
const { options, sandboxes } = JSON.parse(process.argv[2]!) as {
  options: BridgeNetworkOptions;
  sandboxes: { ref: SandboxRef; netnsPath: string }[];
};
const log = createLogger('test-agent-child');
const provider = new BridgeNetworkProvider(options);
for (const s of sandboxes) {
  provider.setupSync(
    {
      sandbox: s.ref,
      netnsPath: s.netnsPath,
      hostname: s.ref.name,
      network: {
        mode: 'Bridge',
        egress: 'Deny',
        ports: [{ containerPort: 80, hostPort: 20000 + sandboxes.indexOf(s), protocol: 'TCP' }],
      },
    },
    log,
  );
  process.stdout.write(`ready ${s.ref.id}\n`);
}
setInterval(() => undefined, 60_000);
