#!/usr/bin/env node
import { parseArgs, USAGE } from './args.js';
import { CliError, UsageError, userMessage } from './errors.js';

/*
 * kubectl-sandpit: a kubectl plugin (kubectl finds it on PATH as
 * `kubectl sandpit`). Exit status: the remote command's for exec, 1 for an
 * error from the cluster, 2 for a usage error.
 */
async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs(argv, process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`error: ${userMessage(err)}\nSee 'kubectl sandpit --help' for usage.\n`);
    return 2;
  }
  const { globals, command } = parsed;
  if (command.name === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  // Loaded only now: client-node takes about a second of CPU to import, which --help and usage errors need not pay.
  const { loadSession } = await import('./connect.js');
  const { execCommand, logsCommand, portForwardCommand, topCommand } = await import('./commands.js');
  const { cpCommand } = await import('./cp.js');
  const { describeCommand } = await import('./describe.js');
  const session = loadSession(globals);
  switch (command.name) {
    case 'exec':
      return execCommand(session, command);
    case 'logs':
      return logsCommand(session, command);
    case 'port-forward':
      return portForwardCommand(session, command);
    case 'cp':
      return cpCommand(session, command);
    case 'top':
      return topCommand(session, command);
    case 'describe':
      return describeCommand(session, command.sandbox);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(
      err instanceof CliError ? `error: ${userMessage(err)}\n` : `error: ${err.stack ?? err.message}\n`,
    );
    process.exit(1);
  },
);
