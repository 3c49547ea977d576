import { pino, type Logger } from 'pino';

/**
 * The one structured logger. Components take a child with their own bindings
 * (`component`, `sandbox`, `step`) so that every line can be filtered by them.
 * SANDPIT_LOG_LEVEL overrides the level; tests default to `warn` to stay quiet.
 */
export function createLogger(component: string, bindings: Record<string, unknown> = {}): Logger {
  const level = process.env.SANDPIT_LOG_LEVEL ?? (process.env.SANDPIT_TEST ? 'warn' : 'info');
  // Pull Secret data (controller → agent) never reaches a log line, whatever object is logged by mistake.
  return pino({
    level,
    base: { component, ...bindings },
    redact: ['pullSecrets', '*.pullSecrets', 'dockerConfigJson', '*.dockerConfigJson'],
  });
}

export type { Logger };
