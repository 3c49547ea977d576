import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { buildCrd, KINDS } from './crd.js';

/** Folder of the committed CRD YAML (the source folder, not dist/). */
export const CRD_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'crds');

const HEADER = '# Generated from crds/*.ts by `npm run crds:generate`. Do not edit by hand.\n';

/** The YAML text of every CRD, keyed by file name. */
export function renderCrds(): Map<string, string> {
  const files = new Map<string, string>();
  for (const info of KINDS) {
    files.set(`${info.plural}.yaml`, HEADER + stringify(buildCrd(info), { lineWidth: 0 }));
  }
  return files;
}

/** File names whose committed content differs from what the schema generates. */
export async function staleCrdFiles(dir = CRD_DIR): Promise<string[]> {
  const stale: string[] = [];
  for (const [name, text] of renderCrds()) {
    const committed = await readFile(join(dir, name), 'utf8').catch(() => '');
    if (committed !== text) stale.push(name);
  }
  return stale;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--check')) {
    const stale = await staleCrdFiles();
    if (stale.length > 0) {
      console.error(
        `crds/${stale.join(', crds/')} differ from the zod schema: run \`npm run build && npm run crds:generate\` and commit the result`,
      );
      process.exit(1);
    }
  } else {
    for (const [name, text] of renderCrds()) {
      await writeFile(join(CRD_DIR, name), text);
      console.log(`wrote crds/${name}`);
    }
  }
}
