import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

/*
 * The spec-coverage guard (unit tier). A Sandbox field exists for a user only
 * when a test sets it the way they would and asserts what it does, at the
 * tier where it has its effect. This walks every leaf of the generated Sandbox
 * schema and fails unless the table below names, for that leaf, a node,
 * cluster or e2e test case (file and `it` title) that mentions the field. A
 * new field therefore cannot land without its end-to-end test, and a renamed
 * or deleted test case cannot silently leave a field uncovered.
 */

const ROOT = new URL('../..', import.meta.url).pathname;

type Coverage =
  | {
      /** Test file, relative to test/. */
      file: string;
      /** A substring of the title of the `it` that sets the field and asserts its effect. */
      it: string;
    }
  /** A field with no effect by design (a Pod's containerPort): its description must say so. */
  | { informational: true };

const iso = 'node/runtime-isolation.test.ts';
const fields = 'node/runtime-spec-fields.test.ts';
const sched = 'cluster/controller-scheduling.test.ts';
const net = 'node/network.test.ts';
const cc = 'node/runtime-container-config.test.ts';

/** Every leaf of Sandbox.spec, by its path below spec ([] is a list item, {} a map value). */
const COVERAGE: Record<string, Coverage> = {
  'containers[].name': { file: iso, it: 'gives each container its own PID namespace' },
  'containers[].image': { file: 'cluster/examples-ready.test.ts', it: 'kubectl apply of each example → Ready' },
  'containers[].imagePullPolicy': {
    file: 'node/images-pull-policy.test.ts',
    it: 'keeps the stored copy of a tagged image on the next create (IfNotPresent)',
  },
  'containers[].command[]': { file: iso, it: 'runs /bin/true and records exit code 0' },
  'containers[].args[]': { file: cc, it: 'replaces CMD with args and both with command' },
  'containers[].env[].name': { file: cc, it: 'merges env and expands $(VAR)' },
  'containers[].env[].value': { file: cc, it: 'merges env and expands $(VAR)' },
  'containers[].workingDir': { file: cc, it: 'makes a missing workingDir' },
  'containers[].ports[].name': { informational: true },
  'containers[].ports[].containerPort': { informational: true },
  'containers[].ports[].protocol': { informational: true },
  'containers[].resources.limits.cpu': { file: fields, it: "writes a container's resources.limits cpu and memory" },
  'containers[].resources.limits.memory': { file: fields, it: "writes a container's resources.limits cpu and memory" },
  'containers[].resources.requests.cpu': { file: sched, it: 'says Scheduled=False with a reason when nothing fits' },
  'containers[].resources.requests.memory': { file: sched, it: 'says Scheduled=False with a reason when nothing fits' },
  'containers[].securityContext.runAsUser': { file: iso, it: 'runs as runAsUser/runAsGroup with supplementary groups' },
  'containers[].securityContext.runAsGroup': {
    file: iso,
    it: 'runs as runAsUser/runAsGroup with supplementary groups',
  },
  'containers[].securityContext.supplementalGroups[]': {
    file: iso,
    it: 'runs as runAsUser/runAsGroup with supplementary groups',
  },
  'containers[].securityContext.runAsNonRoot': {
    file: 'node/runtime-user-deadline-tty.test.ts',
    it: 'runAsNonRoot with a root image user',
  },
  'containers[].securityContext.readOnlyRootFilesystem': { file: iso, it: 'honours readOnlyRootFilesystem' },
  'containers[].securityContext.privileged': { file: fields, it: 'runs a privileged container with every capability' },
  'containers[].securityContext.allowPrivilegeEscalation': {
    file: fields,
    it: 'leaves no_new_privs off for allowPrivilegeEscalation: true',
  },
  'containers[].securityContext.capabilities.add[]': {
    file: 'cluster/pull-secrets.test.ts',
    it: 'lets a cluster agent started with --allow-capability grant that capability',
  },
  'containers[].securityContext.capabilities.drop[]': {
    file: fields,
    it: 'drops the capabilities named in capabilities.drop',
  },
  'containers[].securityContext.seccompProfile.type': {
    file: fields,
    it: 'runs seccompProfile: Unconfined without a filter',
  },
  'containers[].volumeMounts[].name': { file: fields, it: 'shares an emptyDir between two containers' },
  'containers[].volumeMounts[].mountPath': { file: fields, it: 'shares an emptyDir between two containers' },
  'containers[].volumeMounts[].readOnly': { file: fields, it: 'shares an emptyDir between two containers' },
  'containers[].tty': { file: 'node/runtime-user-deadline-tty.test.ts', it: 'gives a tty: true container a terminal' },
  'containers[].terminationMessagePath': {
    file: fields,
    it: 'reports what a container wrote to its terminationMessagePath',
  },
  'containers[].terminationMessagePolicy': {
    file: fields,
    it: 'falls back to the end of the output of a failed run with terminationMessagePolicy FallbackToLogsOnError',
  },
  'volumes[].name': { file: fields, it: 'shares an emptyDir between two containers' },
  'volumes[].emptyDir.medium': { file: fields, it: 'a Memory one on tmpfs' },
  'volumes[].emptyDir.sizeLimit': { file: fields, it: 'bounds one with a sizeLimit' },
  'resources.cpu': { file: fields, it: "writes a container's resources.limits cpu and memory" },
  'resources.memory': { file: 'node/runtime-lifecycle.test.ts', it: 'OOM-kills a memory hog at the memory limit' },
  'resources.pids': { file: 'node/runtime-lifecycle.test.ts', it: 'stops a fork bomb at the pids limit' },
  'network.mode': {
    file: 'node/network-lifecycle.test.ts',
    it: 'mode None brings loopback up and takes nothing from the node',
  },
  'network.egress': {
    file: 'cluster/examples-ready.test.ts',
    it: 'ports-limits-volume.yaml answers HTTP on the published port',
  },
  'network.ports[].name': { file: 'node/network-agent.test.ts', it: 'reports the published ports' },
  'network.ports[].containerPort': { file: net, it: 'a published port answers an outside host' },
  'network.ports[].hostPort': { file: net, it: 'a published port answers an outside host' },
  'network.ports[].protocol': { file: net, it: 'a published port answers an outside host (TCP and UDP)' },
  'network.ports[].hostIP': { file: net, it: 'a port published on one hostIP answers on that address only' },
  'network.dns.nameservers[]': { file: fields, it: 'writes network.dns nameservers, searches and ndots' },
  'network.dns.searches[]': { file: fields, it: 'writes network.dns nameservers, searches and ndots' },
  'network.dns.ndots': { file: fields, it: 'writes network.dns nameservers, searches and ndots' },
  hostname: { file: iso, it: 'gives the sandbox its own PID 1 and hostname' },
  'nodeSelector{}': { file: sched, it: 'binds a sandbox to the node its nodeSelector picks' },
  nodeName: { file: sched, it: 'binds a pinned sandbox once its node registers' },
  'imagePullSecrets[].name': {
    file: 'cluster/pull-secrets.test.ts',
    it: 'pulls from a basic-auth registry with the imagePullSecret',
  },
  restartPolicy: { file: 'node/runtime-lifecycle.test.ts', it: 'restarts with back-off per restartPolicy' },
  activeDeadlineSeconds: {
    file: 'node/runtime-user-deadline-tty.test.ts',
    it: 'stops a sandbox at activeDeadlineSeconds',
  },
  terminationGracePeriodSeconds: {
    file: fields,
    it: 'gives a stopping container terminationGracePeriodSeconds from the spec',
  },
  paused: { file: 'cluster/controller-sandboxes.test.ts', it: 'freezes and thaws with spec.paused' },
  shareProcessNamespace: {
    file: iso,
    it: 'gives each container its own PID namespace and /proc when shareProcessNamespace is false',
  },
  hostUsers: { file: 'node/runtime-userns.test.ts', it: 'runs container root as the first host id of a private block' },
};

interface SchemaNode {
  description?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  additionalProperties?: SchemaNode | boolean;
}

/** Paths of the leaves below a schema node: objects recurse, lists add [], maps add {}. */
function schemaLeaves(node: SchemaNode, path = ''): string[] {
  if (node.properties)
    return Object.entries(node.properties).flatMap(([k, v]) => schemaLeaves(v, path ? `${path}.${k}` : k));
  if (node.items) return schemaLeaves(node.items, `${path}[]`);
  if (node.additionalProperties && typeof node.additionalProperties === 'object')
    return schemaLeaves(node.additionalProperties, `${path}{}`);
  return [path];
}

/** The descriptions on the way down to a leaf (an informational list says so on the list). */
function descriptionOf(node: SchemaNode, leaf: string): string[] {
  const out: string[] = [];
  let cur: SchemaNode | undefined = node;
  for (const part of leaf.split('.')) {
    const name = part.replace(/\[\]|\{\}/g, '');
    cur = cur?.properties?.[name];
    if (cur?.description) out.push(cur.description);
    if (part.endsWith('[]')) cur = cur?.items;
  }
  return out;
}

/** The field's own name as a test would write it: `capabilities.add[]` → `add`. */
const fieldName = (leaf: string) =>
  leaf
    .split('.')
    .pop()!
    .replace(/\[\]|\{\}/g, '');

describe('unit: spec coverage guard', () => {
  const crd = parse(readFileSync(join(ROOT, 'crds/sandboxes.yaml'), 'utf8')) as {
    spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: SchemaNode } } } }[] };
  };
  const crdSpec = crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec;
  const leaves = schemaLeaves(crdSpec);

  it('walks the whole schema (the walk itself finds nested, list and map leaves)', () => {
    assert.ok(leaves.length > 40, `${leaves.length} leaves`);
    for (const l of ['containers[].securityContext.capabilities.add[]', 'nodeSelector{}', 'network.dns.ndots'])
      assert.ok(leaves.includes(l), l);
  });

  it('names a test case for every leaf of Sandbox.spec, and no leaf that is gone', () => {
    const missing = leaves.filter((l) => !(l in COVERAGE));
    const stale = Object.keys(COVERAGE).filter((l) => !leaves.includes(l));
    assert.deepEqual(
      missing,
      [],
      `spec fields with no end-to-end test named in crds/spec-coverage.test.ts: ${missing.join(', ')}`,
    );
    assert.deepEqual(stale, [], `table rows for fields the schema no longer has: ${stale.join(', ')}`);
  });

  it('every named test case exists and mentions its field', () => {
    const wrong: string[] = [];
    for (const [leaf, c] of Object.entries(COVERAGE)) {
      if ('informational' in c) {
        if (!/Informational/.test(JSON.stringify(descriptionOf(crdSpec, leaf))))
          wrong.push(`${leaf}: marked informational, but kubectl explain does not say so`);
        continue;
      }
      const path = join(ROOT, 'test', c.file);
      if (!/^(node|cluster|e2e)\//.test(c.file) || !existsSync(path)) {
        wrong.push(`${leaf}: ${c.file} is not a node, cluster or e2e test file`);
        continue;
      }
      const text = readFileSync(path, 'utf8');
      const titles = [...text.matchAll(/\bit\((['"`])((?:\\.|(?!\1).)*)\1/g)].map((m) => m[2]!.replace(/\\(.)/g, '$1'));
      if (!titles.some((t) => t.includes(c.it))) wrong.push(`${leaf}: no it(...) titled like "${c.it}" in ${c.file}`);
      if (!text.includes(fieldName(leaf))) wrong.push(`${leaf}: ${c.file} never mentions ${fieldName(leaf)}`);
    }
    assert.deepEqual(wrong, []);
  });
});
