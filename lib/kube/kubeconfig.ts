import { KubeConfig } from '@kubernetes/client-node';

/** Loads credentials: an explicit kubeconfig, else in-cluster, else the default kubeconfig. */
export function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}
