/*
 * Pure decisions about tar entry names, tested without root. The applier
 * refuses rather than "cleans" anything that points outside the layer, so a
 * hostile archive fails loudly instead of silently landing somewhere else.
 */

export const MAX_PATH_BYTES = 4096;
export const MAX_NAME_BYTES = 255;

export type EntryName =
  | { kind: 'root' }
  | { kind: 'path'; parts: string[] }
  | { kind: 'whiteout'; parts: string[] }
  | { kind: 'opaque'; parts: string[] }
  | { kind: 'reserved' };

/** Splits an archive path into components, or returns why it is refused. */
export function splitEntryPath(raw: string, maxDepth = 256): string[] | { refused: string } {
  if (raw.includes('\0')) return { refused: 'NUL in path' };
  if (Buffer.byteLength(raw) > MAX_PATH_BYTES) return { refused: `path longer than ${MAX_PATH_BYTES} bytes` };
  if (raw.startsWith('/')) return { refused: 'absolute path' };
  const parts: string[] = [];
  for (const p of raw.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') return { refused: 'path traversal (..)' };
    if (Buffer.byteLength(p) > MAX_NAME_BYTES) return { refused: `path component longer than ${MAX_NAME_BYTES} bytes` };
    parts.push(p);
  }
  if (parts.length > maxDepth) return { refused: `path deeper than ${maxDepth}` };
  return parts;
}

/** Classifies an entry: ordinary path, whiteout (.wh.NAME), opaque marker (.wh..wh..opq) or root. */
export function classifyEntry(raw: string, maxDepth = 256): EntryName | { refused: string } {
  const parts = splitEntryPath(raw, maxDepth);
  if (!Array.isArray(parts)) return parts;
  if (parts.length === 0) return { kind: 'root' };
  const base = parts[parts.length - 1]!;
  if (!base.startsWith('.wh.')) return { kind: 'path', parts };
  const dir = parts.slice(0, -1);
  if (base === '.wh..wh..opq') return { kind: 'opaque', parts: dir };
  if (base.startsWith('.wh..wh.')) return { kind: 'reserved' };
  const name = base.slice(4);
  // ".wh." alone, ".wh.." and ".wh..." would whiteout the parent or beyond.
  if (name === '' || name === '.' || name === '..')
    return { refused: 'whiteout names no file or reaches outside its directory' };
  return { kind: 'whiteout', parts: [...dir, name] };
}

/**
 * Hardlink targets are archive paths too. A leading "/" is archive-relative
 * (GNU tar writes it that way); ".." is refused.
 */
export function splitLinkTarget(raw: string): string[] | { refused: string } {
  return splitEntryPath(raw.replace(/^\/+/, ''));
}

/** xattrs a layer may set: file capabilities, user.* and ACLs. trusted.* and overlay/selinux labels never. */
export function xattrAllowed(name: string, type: 'file' | 'dir' | 'other'): boolean {
  if (name === 'security.capability') return type === 'file';
  if (name.startsWith('user.')) return (type === 'file' || type === 'dir') && !name.startsWith('user.overlay.');
  if (name === 'system.posix_acl_access' || name === 'system.posix_acl_default') return type !== 'other';
  return false;
}
