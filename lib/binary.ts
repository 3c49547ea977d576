import { readFileSync } from 'node:fs';

/*
 * What every sandpit binary does the same way at start-up: say which version
 * it is (in its User-Agent and logs) and turn a bad flag into its usage text
 * and exit status 2, the way command-line tools do.
 */

/** The version in package.json, or "unknown" when the binary runs without it. */
export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string })
      .version;
  } catch {
    return 'unknown';
  }
}

/** Runs the flag parser; on a bad flag prints its message and the usage to stderr and exits 2. */
export function parseFlagsOrExit<T>(parse: () => T, usage: string): T {
  try {
    return parse();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${usage}\n`);
    process.exit(2);
  }
}
