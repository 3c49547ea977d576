import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { SandpitError } from '../../lib/errors.js';
import type { ImageConfig, ImageProvider, PreparedImage, PullOptions, SandboxId } from '../contracts.js';
import { ImageError } from '../images/errors.js';

/**
 * Serves images from unpacked directories: `dir:/path/to/rootfs` (or a bare
 * absolute path) is a one-layer image; an optional `<dir>.config.json` holds
 * its ImageConfig. Nothing is pulled or reference-counted, so release() has
 * nothing to do.
 *
 * `allowedRoots` confines it (a cluster agent: the directory is the sandbox's
 * root, so whoever may create a Sandbox would otherwise read any directory of
 * the node): a directory is served only if its real path (symlinks and `..`
 * resolved) is one of these roots or below one. Without it (standalone mode,
 * where the manifests are the node admin's own) any directory is served.
 */
export class DirectoryImageProvider implements ImageProvider {
  readonly #allowed: string[] | undefined;

  constructor(opts: { allowedRoots?: string[] } = {}) {
    for (const root of opts.allowedRoots ?? [])
      if (!isAbsolute(root))
        throw new SandpitError({
          step: 'configure dir: images',
          message: `--allow-dir-images takes absolute paths, got "${root}"`,
        });
    this.#allowed = opts.allowedRoots;
  }

  async prepare(reference: string, opts: PullOptions): Promise<PreparedImage> {
    const sandbox = `${opts.sandbox.namespace}/${opts.sandbox.name}`;
    const dir = reference.startsWith('dir:') ? reference.slice(4) : reference;
    if (this.#allowed) {
      const real = isAbsolute(dir) ? realpathOrUndefined(dir) : undefined;
      // Roots are resolved now, not at start: one may be created (or be a symlink that moved) later.
      const roots = this.#allowed.map((r) => realpathOrUndefined(r)).filter((r): r is string => !!r);
      if (!real || !isDirectory(real) || !roots.some((root) => within(real, root)))
        throw new ImageError({
          reason: 'InvalidImageName',
          step: 'prepare image',
          sandbox,
          retryable: false,
          message: this.#allowed.length
            ? `${reference} is not a directory under one this node allows for dir: images (${this.#allowed.join(', ')})`
            : `${reference}: this node does not allow dir: images`,
          hint: 'use a registry image; a node admin allows dir: images below given directories with the agent flag --allow-dir-images (chart value agent.allowDirImages)',
        });
      return load(reference, real);
    }
    if (!dir.startsWith('/') || !existsSync(dir))
      throw new SandpitError({
        sandbox,
        step: 'prepare image',
        message: `${reference} is not an unpacked directory`,
        hint: 'standalone mode takes images as dir:/absolute/path',
      });
    return load(reference, dir);
  }

  async release(_sandbox: SandboxId): Promise<void> {}
}

function load(reference: string, dir: string): PreparedImage {
  let config: ImageConfig = {};
  const cfg = `${dir}.config.json`;
  if (existsSync(cfg)) config = JSON.parse(readFileSync(cfg, 'utf8')) as ImageConfig;
  return { reference, imageID: `dir:${dir}`, layers: [dir], config };
}

/** `path` is `root` or below it (both real paths). */
function within(path: string, root: string): boolean {
  return root === '/' || path === root || path.startsWith(`${root}/`);
}

function realpathOrUndefined(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
