import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { invalidExamples, validExamples } from '../test/support/examples.js';
import { buildCrd, KINDS } from './crd.js';
import { CRD_DIR, renderCrds, staleCrdFiles } from './generate.js';
import { undocumentedFields, type JSONSchema } from './openapi.js';
import { Sandbox } from './sandbox.js';

describe('unit: crds: generated from the zod schema', () => {
  it('the committed CRD YAML is exactly what the schema generates', async () => {
    assert.deepEqual(await staleCrdFiles(), [], 'run `npm run build && npm run crds:generate` and commit crds/*.yaml');
  });

  it('detects a committed file that no longer matches the schema', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sandpit-crds-'));
    try {
      for (const [name, text] of renderCrds()) await writeFile(join(dir, name), text);
      assert.deepEqual(await staleCrdFiles(dir), []);
      const edited = (await readFile(join(dir, 'sandboxes.yaml'), 'utf8')).replace(
        'Name of the container',
        'Name of a container',
      );
      await writeFile(join(dir, 'sandboxes.yaml'), edited);
      assert.deepEqual(await staleCrdFiles(dir), ['sandboxes.yaml']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  for (const info of KINDS) {
    it(`${info.kind}: every field carries a description for kubectl explain`, () => {
      const crd = buildCrd(info) as { spec: { versions: { schema: { openAPIV3Schema: JSONSchema } }[] } };
      assert.deepEqual(undocumentedFields(crd.spec.versions[0]!.schema.openAPIV3Schema), []);
    });
  }

  it('keeps structural-schema rules: no additionalProperties:false, int-or-string as a bare anyOf', async () => {
    const text = await readFile(join(CRD_DIR, 'sandboxes.yaml'), 'utf8');
    assert.doesNotMatch(text, /additionalProperties: false/);
    assert.match(text, /anyOf:\n\s+- type: integer\n\s+- type: string\n\s+description: CPU/);
  });
});

describe('unit: crds: the same schema validates objects in-process', () => {
  it('accepts every example and fills defaults', async () => {
    for (const ex of await validExamples()) {
      const parsed = Sandbox.safeParse(ex.object);
      assert.ok(parsed.success, `${ex.file}: ${parsed.error?.message}`);
      if (ex.file === 'minimal.yaml') {
        const spec = parsed.data.spec;
        assert.equal(spec.restartPolicy, 'Always');
        assert.deepEqual(spec.network, { mode: 'Bridge', egress: 'Allow' });
        assert.equal(spec.resources.pids, 1024);
        assert.equal(spec.shareProcessNamespace, true);
        assert.equal(spec.containers[0]!.securityContext, undefined);
      }
    }
  });

  it('rejects every invalid example, naming the same field as the API server', async () => {
    const examples = await invalidExamples();
    assert.ok(examples.length >= 10);
    for (const ex of examples) {
      const parsed = Sandbox.safeParse(ex.object);
      assert.equal(parsed.success, false, `${ex.file} was accepted`);
      const paths = parsed.error!.issues.map((i) =>
        i.path
          .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
          .join('')
          .replace(/^\./, ''),
      );
      assert.ok(
        paths.some(
          (p) => ex.expect!.field === p || ex.expect!.field.startsWith(p + '.') || ex.expect!.field.startsWith(p + '['),
        ),
        `${ex.file}: zod named ${paths.join(', ')}, expected ${ex.expect!.field}`,
      );
      // Our own rules (not the API server's generic words) say the same sentence in-process.
      if (!/should |supported values|Duplicate value/.test(ex.expect!.message)) {
        const messages = parsed.error!.issues.map((i) => i.message);
        assert.ok(
          messages.some((m) => m.includes(ex.expect!.message)),
          `${ex.file}: zod said ${messages.join('; ')}`,
        );
      }
    }
  });
});
