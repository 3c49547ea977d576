import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SandpitError } from '../../lib/errors.js';
import type { ImageConfig, ImageProvider, PreparedImage, PullOptions, SandboxId } from '../contracts.js';

/**
 * Serves images from unpacked directories until the OCI puller is wired in:
 * `dir:/path/to/rootfs` (or a bare absolute path) is a one-layer image; an
 * optional `<dir>.config.json` holds its ImageConfig. Nothing is pulled or
 * reference-counted, so release() has nothing to do.
 */
export class DirectoryImageProvider implements ImageProvider {
  async prepare(reference: string, opts: PullOptions): Promise<PreparedImage> {
    const dir = reference.startsWith('dir:') ? reference.slice(4) : reference;
    if (!dir.startsWith('/') || !existsSync(dir))
      throw new SandpitError({ sandbox: `${opts.sandbox.namespace}/${opts.sandbox.name}`, step: 'prepare image', message: `${reference} is not an unpacked directory`, hint: 'standalone mode takes images as dir:/absolute/path' });
    let config: ImageConfig = {};
    const cfg = `${dir}.config.json`;
    if (existsSync(cfg)) config = JSON.parse(readFileSync(cfg, 'utf8')) as ImageConfig;
    return { reference, imageID: `dir:${join(dir)}`, layers: [dir], config };
  }
  async release(_sandbox: SandboxId): Promise<void> {}
}
