import { z } from 'zod';

/** A node of an OpenAPI v3 schema as a CRD carries it. */
export type JSONSchema = { [key: string]: unknown };

/**
 * Turns a zod schema into the structural OpenAPI v3 schema that a CRD needs.
 *
 * zod emits JSON Schema for the OpenAPI 3.0 target; Kubernetes accepts only a
 * structural subset of it, so this pass removes what the API server refuses or
 * what would change the meaning on the server:
 * - `additionalProperties: false` (not allowed next to `properties`; unknown
 *   fields are pruned by the server instead, and rejected by kubectl's
 *   field validation),
 * - the value validations inside an int-or-string `anyOf` (only the bare
 *   `{type: integer}` / `{type: string}` pair is structural; the grammar is
 *   checked by the pattern, length bound and CEL rule that `quantity()` puts
 *   beside the anyOf),
 * - zod's safe-integer bounds, which are noise in `kubectl explain`.
 */
export function toStructuralSchema(schema: z.ZodType): JSONSchema {
  const raw = z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'throw' }) as JSONSchema;
  delete raw.$schema;
  return clean(raw);
}

const SAFE_INT = 9007199254740991;

function clean(node: JSONSchema): JSONSchema {
  const out: JSONSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'additionalProperties' && value === false) continue;
    if ((key === 'minimum' && value === -SAFE_INT) || (key === 'maximum' && value === SAFE_INT)) continue;
    if (key === 'properties') {
      out.properties = Object.fromEntries(
        Object.entries(value as Record<string, JSONSchema>).map(([k, v]) => [k, clean(v)]),
      );
    } else if (key === 'items' || (key === 'additionalProperties' && typeof value === 'object')) {
      out[key] = clean(value as JSONSchema);
    } else {
      out[key] = value;
    }
  }
  if (out['x-kubernetes-int-or-string'] === true) {
    out.anyOf = [{ type: 'integer' }, { type: 'string' }];
    delete out.type;
  }
  return out;
}

/**
 * Paths of object properties that lack a description, so a test can insist that
 * `kubectl explain` documents every field.
 */
export function undocumentedFields(node: JSONSchema, path = ''): string[] {
  const missing: string[] = [];
  const props = node.properties as Record<string, JSONSchema> | undefined;
  for (const [name, child] of Object.entries(props ?? {})) {
    const here = `${path}.${name}`;
    // metadata is implicit: the API server forbids describing it.
    if (here !== '.metadata' && (typeof child.description !== 'string' || child.description.length === 0))
      missing.push(here);
    missing.push(...undocumentedFields(child, here));
  }
  if (node.items) missing.push(...undocumentedFields(node.items as JSONSchema, `${path}[]`));
  if (typeof node.additionalProperties === 'object')
    missing.push(...undocumentedFields(node.additionalProperties as JSONSchema, `${path}{}`));
  return missing;
}
