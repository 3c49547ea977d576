import { API_VERSION } from '../../crds/common.js';

/** REST paths of the objects sandpit reads and writes. */
export const paths = {
  sandboxes: (ns?: string) =>
    ns ? `/apis/${API_VERSION}/namespaces/${ns}/sandboxes` : `/apis/${API_VERSION}/sandboxes`,
  sandbox: (ns: string, name: string) => `/apis/${API_VERSION}/namespaces/${ns}/sandboxes/${name}`,
  sandboxStatus: (ns: string, name: string) => `/apis/${API_VERSION}/namespaces/${ns}/sandboxes/${name}/status`,
  sandboxNodes: () => `/apis/${API_VERSION}/sandboxnodes`,
  sandboxNode: (name: string) => `/apis/${API_VERSION}/sandboxnodes/${name}`,
  sandboxNodeStatus: (name: string) => `/apis/${API_VERSION}/sandboxnodes/${name}/status`,
  leases: (ns: string) => `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`,
  lease: (ns: string, name: string) => `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${name}`,
  secrets: (ns: string) => `/api/v1/namespaces/${ns}/secrets`,
  secret: (ns: string, name: string) => `/api/v1/namespaces/${ns}/secrets/${name}`,
  configMaps: (ns: string) => `/api/v1/namespaces/${ns}/configmaps`,
  configMap: (ns: string, name: string) => `/api/v1/namespaces/${ns}/configmaps/${name}`,
  events: (ns: string) => `/apis/events.k8s.io/v1/namespaces/${ns}/events`,
  csrs: () => `/apis/certificates.k8s.io/v1/certificatesigningrequests`,
  csr: (name: string) => `/apis/certificates.k8s.io/v1/certificatesigningrequests/${name}`,
};

/** Label an agent puts on its node Lease, so the controller watches only those. */
export const NODE_LEASE_LABEL = 'sandpit.dev/node-lease';

/** The metadata every object has, as far as the controller reads it. */
export interface Meta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  deletionTimestamp?: string;
  finalizers?: string[];
  labels?: Record<string, string>;
  creationTimestamp?: string;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: Meta;
}

export interface ObjectList<T> {
  metadata: { resourceVersion: string; continue?: string };
  items: T[];
}

/** Cache and queue key: `namespace/name`, or `name` for cluster-scoped objects. */
export const keyOf = (o: { metadata: { name?: string; namespace?: string } }) =>
  o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : `${o.metadata.name}`;

export function splitKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: '', name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
