import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/** The repository's examples/ folder (tests run from dist/, the YAML stays in the source tree). */
export const EXAMPLES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'examples');

export interface Example {
  file: string;
  path: string;
  text: string;
  object: Record<string, unknown>;
  /** For invalid examples: the field the API server must name and a part of its message. */
  expect?: { field: string; message: string };
}

async function load(dir: string): Promise<Example[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort();
  return Promise.all(
    files.map(async (file) => {
      const path = join(dir, file);
      const text = await readFile(path, 'utf8');
      const line = /^# expect: (.+?) \| (.+)$/m.exec(text);
      return {
        file,
        path,
        text,
        object: parse(text) as Record<string, unknown>,
        ...(line ? { expect: { field: line[1]!, message: line[2]! } } : {}),
      };
    }),
  );
}

/** Sandbox manifests under examples/ that must be accepted. */
export const validExamples = () => load(EXAMPLES_DIR);
/** Manifests under examples/invalid/, each with an `# expect:` line. */
export const invalidExamples = () => load(join(EXAMPLES_DIR, 'invalid'));
