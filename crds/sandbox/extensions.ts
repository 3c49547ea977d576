/** The Kubernetes OpenAPI extensions that the Sandbox schema's `.meta()` calls put on fields. */

/** A list merged by server-side apply item by item, keyed by `keys` (which the API server also keeps unique). */
export const listMap = (keys: string[]) => ({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': keys });

/** CEL rules the API server checks on the field (x-kubernetes-validations), dry runs included. */
export const rules = (...list: { rule: string; message: string; reason?: string; fieldPath?: string }[]) => ({
  'x-kubernetes-validations': list,
});
