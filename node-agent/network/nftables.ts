import { execFileSync } from 'node:child_process';
import { koffi } from '../sys/libc.js';
import { NetworkError, NetworkReason } from './status.js';

/*
 * The door to nftables. Preferred: libnftables (Debian libnftables1) through
 * koffi, in-process, one netlink transaction per call. Fallback: the `nft`
 * binary reading the same script on stdin. Writes are nft scripts (as
 * Kubernetes' knftables does: readable, and one script is one atomic
 * transaction); reads use the JSON output, which is stable to parse.
 */

export interface Nft {
  /** Applies a script as one transaction. */
  apply(script: string): void;
  /** Runs a list command and returns the parsed JSON `nftables` array. */
  list(command: string): NftObject[];
  readonly backend: 'libnftables' | 'nft';
}

/** One element of `nft -j list ...` output, such as {rule: {...}} or {chain: {...}}. */
export type NftObject = Record<string, Record<string, unknown>>;

const NFT_CTX_OUTPUT_HANDLE = 1 << 3;
const NFT_CTX_OUTPUT_JSON = 1 << 4;

class LibNftables implements Nft {
  readonly backend = 'libnftables' as const;
  readonly #text: unknown;
  readonly #json: unknown;
  readonly #run: (ctx: unknown, buf: string) => number;
  readonly #out: (ctx: unknown) => string;
  readonly #err: (ctx: unknown) => string;

  constructor(lib: ReturnType<typeof koffi.load>) {
    koffi.opaque('nft_ctx');
    const ctxNew = lib.func('nft_ctx *nft_ctx_new(uint32_t flags)');
    const setOutputFlags = lib.func('void nft_ctx_output_set_flags(nft_ctx *ctx, unsigned int flags)');
    const bufferOutput = lib.func('int nft_ctx_buffer_output(nft_ctx *ctx)');
    const bufferError = lib.func('int nft_ctx_buffer_error(nft_ctx *ctx)');
    this.#run = lib.func('int nft_run_cmd_from_buffer(nft_ctx *ctx, const char *buf)');
    this.#out = lib.func('const char *nft_ctx_get_output_buffer(nft_ctx *ctx)');
    this.#err = lib.func('const char *nft_ctx_get_error_buffer(nft_ctx *ctx)');
    const make = (flags: number) => {
      const ctx = ctxNew(0);
      if (!ctx) throw new Error('nft_ctx_new returned NULL');
      setOutputFlags(ctx, flags);
      bufferOutput(ctx);
      bufferError(ctx);
      return ctx;
    };
    // Two contexts: with the JSON flag set, libnftables tries to parse input as JSON first.
    this.#text = make(0);
    this.#json = make(NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE);
  }

  apply(script: string): void {
    const rc = this.#run(this.#text, script);
    const err = this.#err(this.#text);
    this.#out(this.#text);
    if (rc !== 0) throw nftError(err, script);
  }

  list(command: string): NftObject[] {
    const rc = this.#run(this.#json, command);
    const out = this.#out(this.#json);
    const err = this.#err(this.#json);
    if (rc !== 0) throw nftError(err, command);
    return (JSON.parse(out || '{"nftables":[]}') as { nftables: NftObject[] }).nftables;
  }
}

class NftBinary implements Nft {
  readonly backend = 'nft' as const;
  apply(script: string): void {
    try {
      execFileSync('nft', ['-f', '-'], { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
    } catch (err) {
      throw nftError(String((err as { stderr?: Buffer }).stderr ?? err), script);
    }
  }
  list(command: string): NftObject[] {
    try {
      const out = execFileSync('nft', ['-j', '-a', ...command.split(' ')], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }).toString();
      return (JSON.parse(out || '{"nftables":[]}') as { nftables: NftObject[] }).nftables;
    } catch (err) {
      throw nftError(String((err as { stderr?: Buffer }).stderr ?? err), command);
    }
  }
}

/** Marks "no such table/chain" failures, which callers treat as "nothing there". */
export class NftError extends NetworkError {
  readonly notFound: boolean;
  constructor(detail: string, script: string) {
    super(NetworkReason.FirewallSetupFailed, {
      step: 'apply nftables rules',
      message: detail.trim().split('\n').slice(0, 6).join(' | ') || 'nft failed',
      hint: script.length < 300 ? script.trim() : undefined,
    });
    this.notFound = /No such file or directory|does not exist/i.test(detail);
  }
}
const nftError = (detail: string, script: string) => new NftError(detail, script);

/** libnftables when it loads, else the nft binary; `prefer` forces one (tests run both). */
export function openNftables(prefer?: 'libnftables' | 'nft'): Nft {
  if (prefer !== 'nft') {
    try {
      return new LibNftables(koffi.load('libnftables.so.1'));
    } catch (err) {
      if (prefer === 'libnftables') {
        throw new NetworkError(NetworkReason.FirewallSetupFailed, {
          step: 'load libnftables',
          message: String(err),
          hint: 'install the Debian package libnftables1',
        });
      }
    }
  }
  return new NftBinary();
}
