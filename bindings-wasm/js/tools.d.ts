// Types of `stratacache/tools`: the envelope and chunk formats, for tools and
// tests (a wasm module of its own; `import "stratacache"` does not load it).

/** The core's envelope format (tiercache-envelope-1), for tools and tests.
 *  `import { EnvelopeCodec } from "stratacache/tools"`. */
export class EnvelopeCodec {
  constructor(keys: Array<{ id: string; secret: Uint8Array }> | null, requireSignature: boolean, compressAt: number, maxPayloadLen: number);
  /** `key`: the cache key the signature is bound to (default: the empty key). */
  encode(header: EnvelopeHeader, payload: Uint8Array, key?: string): Uint8Array;
  decode(bytes: Uint8Array, key?: string): { header: EnvelopeHeader; payload: Uint8Array; compressed: boolean; keyId: string | null; verified: boolean };
  split(mainKey: string, envelope: Uint8Array, itemLimit: number): { chunked: boolean; writes: Array<{ key: string; value: Uint8Array }> };
  readManifest(mainKey: string, bytes: Uint8Array): { header: EnvelopeHeader; manifest: Record<string, string | number>; chunkKeys: string[] };
  reassemble(mainKey: string, manifest: Uint8Array, chunks: Array<Uint8Array | null>): Uint8Array;
  free(): void;
}

export interface EnvelopeHeader {
  codec: 'raw' | 'json' | 'pickle' | 'postcard';
  manifest?: boolean;
  created_at_ms: string | number;
  soft_expiry_ms?: string | number | null;
  hard_expiry_ms?: string | number | null;
  recompute_cost_ms?: string | number;
}
