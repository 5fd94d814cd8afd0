// Type definitions of the npm package `stratacache`.

/** A bounded in-isolate cache: LRU by entry count and bytes, per-entry TTL.
 * Keys and values stay in JS; the eviction and expiry policy is the Rust
 * core's LocalCache, running in wasm. */
export class LocalCache<V = unknown> {
  constructor(options: LocalCacheOptions<V>);
  /** The value, or undefined on a miss (use `has`/`lookup` to tell a stored undefined from a miss). */
  get(key: string): V | undefined;
  has(key: string): boolean;
  lookup(key: string): Lookup<V>;
  /** The value without marking it used. */
  peek(key: string): V | undefined;
  /** `ttlMs`: this entry's TTL (Infinity: never; <= 0: delete). `size`: its weight for maxBytes. */
  set(key: string, value: V, options?: { ttlMs?: number; size?: number }): this;
  delete(key: string): boolean;
  touch(key: string, ttlMs: number): boolean;
  clear(): void;
  purgeExpired(): number;
  readonly size: number;
  /** Keys from most to least recently used (O(n)). */
  keys(): string[];
  stats(): LocalCacheStats;
}

export interface LocalCacheOptions<V = unknown> {
  /** Most entries held. */
  maxEntries: number;
  /** Most total size held (needs `sizeOf` or a `size` on each set). */
  maxBytes?: number;
  /** Default TTL of entries, in ms (default: none). */
  ttlMs?: number;
  sizeOf?: (value: V, key: string) => number;
  /** Milliseconds since the epoch (default Date.now). */
  clock?: () => number;
}

export interface LocalCacheStats {
  hits: number;
  misses: number;
  inserts: number;
  updates: number;
  evictions: number;
  expirations: number;
  rejected: number;
  entries: number;
  bytes: number;
}

export type Lookup<V> = { hit: true; value: V } | { hit: false; value: undefined };

/** Values cached for one request (create one in `fetch`). */
export class RequestCache {
  constructor();
  get(key: string, namespace?: string): unknown;
  lookup(key: string, namespace?: string): Lookup<unknown>;
  has(key: string, namespace?: string): boolean;
  set(key: string, value: unknown, namespace?: string): this;
  delete(key: string, namespace?: string): boolean;
  clear(namespace?: string): void;
  size(namespace?: string): number;
}

export type KeyPart = string | number | bigint | Uint8Array | ArrayBuffer;

/** The core's versioned key builder (format tiercache-key-1), byte for byte as Rust and Python. */
export class Key {
  constructor(namespace: string, version?: number | bigint | string, options?: { maxLen?: number });
  /** Throws a TypeError for a string part holding a lone surrogate (no UTF-8 form), as Python raises ValueError. */
  build(...parts: KeyPart[]): string;
  readonly namespace: string;
  /** Decimal string. */
  readonly version: string;
  readonly maxLen: number;
}

/** Any non-empty string as a valid key of at most maxLen bytes (default 200); a lone surrogate is a TypeError. */
export function safeKey(raw: string, maxLen?: number): string;
/** The remote key the caches use for a plain string key (format stratacache-plain-key-1), as in Python and Rust. */
export function plainKey(raw: string, maxLen?: number): string;
/** Signing keys derived from a secret exactly as Python's signing_keys_from_secret derives them. */
export function signingKeysFromSecret(secret: string | Uint8Array | ArrayBuffer, keyId?: string): { id: string; secret: Uint8Array }[];
export function isValidKey(key: string): boolean;

/** One stored entry handed to an adapter. */
export interface TierEntry {
  key: string;
  value: Uint8Array;
  /** TTL in ms, or null for none. */
  ttlMs: number | null;
}

/** A remote tier. See docs/wasm.md, "Adapter interface". */
/** A value a tier returns for one key. */
export type TierValue = Uint8Array | ArrayBuffer | null | undefined;

export interface TierAdapter {
  name?: string;
  /** The core's preset of limits (default "memcached"). */
  kind?: 'memcached' | 'redis' | 'workers_kv' | 'storage';
  itemLimit?: number;
  minTtlMs?: number;
  maxTtlMs?: number | null;
  storage?: boolean;
  backfill?: boolean;
  replicas?: number;
  leases?: boolean;
  /** Per-call timeout (default: the cache's tierTimeoutMs). */
  timeoutMs?: number;
  /**
   * One value (or null: not found) per key, in order. When some keys could
   * not be answered (the server holding them is down), resolve to
   * `{ values, failed }` with the failed keys: they go on to the next tier,
   * the others are kept. Reject when the whole batch failed.
   */
  getMany(keys: string[]): Promise<TierValue[] | { values: TierValue[]; failed: Iterable<string> }>;
  setMany(entries: TierEntry[]): Promise<void>;
  deleteMany(keys: string[]): Promise<void>;
  /** Store each entry only if its key is absent; one boolean per entry (for leases). */
  add?(entries: TierEntry[]): Promise<boolean[]>;
}

export interface TieredCacheOptions {
  /** Remote tiers, fastest first. */
  tiers?: TierAdapter[];
  /** The local tier of this isolate (default 10,000 entries / 64 MiB / 60 s), or false for none. */
  local?: { maxEntries?: number; maxBytes?: number; ttlMs?: number } | false;
  /** Signing keys: the first signs, all verify; unsigned values are then refused. */
  signingKeys?: Array<{ id: string; secret: string | Uint8Array }> | Record<string, string | Uint8Array>;
  /** TTL of values when a call does not say (default 300,000 ms; null: none). */
  defaultTtlMs?: number | null;
  /** Serve values this long past their TTL while one request refreshes them. */
  staleMs?: number;
  ttlJitter?: number;
  xfetchBeta?: number;
  refreshTimeoutMs?: number;
  /** Compress payloads from this many bytes (default 1024; null: never). */
  compressAt?: number | null;
  maxPayloadLen?: number;
  /** A tier failure fails the read instead of falling through. */
  strict?: boolean;
  lease?: { ttlMs?: number; maxWaitMs?: number; pollIntervalMs?: number };
  cooldown?: { failuresToTrip?: number; cooldownMs?: number };
  /** Timeout of each adapter call (default 5,000 ms). */
  tierTimeoutMs?: number;
  /** Timeout of a loader call, and of waiting for another request's load (default 30,000 ms). */
  loadTimeoutMs?: number;
  clock?: () => number;
  /** Called with tier, decode and background errors (which never fail a read unless strict). */
  onError?: (error: unknown, tier?: string) => void;
  /**
   * A read's back-fill and load-then-store writes go to a bounded queue
   * (default: on, 1,000 pending batches, 64 MiB of values) and the read
   * returns without waiting for them; a write that does not fit is dropped
   * and counted. `false`: the read awaits its writes. Drain with `flush()`.
   */
  backgroundWrites?: boolean | { maxSteps?: number; maxBytes?: number };
}

export interface CallOptions {
  request?: RequestCache;
  /** TTL of values loaded or set by this call (Infinity: never; <= 0: delete). */
  ttlMs?: number;
  /** Skip local and remote tiers and load (edx-django-utils' force_cache_miss). */
  forceMiss?: boolean;
  /** Background work (queued writes, refreshes) is also handed here, so the worker outlives it: pass ctx.waitUntil.bind(ctx). */
  waitUntil?: (promise: Promise<unknown>) => void;
  /** Or the worker's ctx. */
  ctx?: { waitUntil(promise: Promise<unknown>): void };
  /** Called with the promise of a background refresh, when one starts. */
  onRefresh?: (promise: Promise<unknown>) => void;
}

export interface TieredLookup<V = unknown> {
  key?: string;
  hit: boolean;
  value: V | undefined;
  /** "request", "local", "loader", "flight", or the name of the tier that had it. */
  source: string | null;
}

export class TieredCache {
  constructor(options?: TieredCacheOptions);
  get<V = unknown>(key: string, options?: CallOptions): Promise<TieredLookup<V>>;
  getMany<V = unknown>(keys: string[], options?: CallOptions): Promise<Array<TieredLookup<V> & { key: string }>>;
  getOrLoad<V>(key: string, loader: (key: string) => V | Promise<V>, options?: CallOptions): Promise<V>;
  getManyOrLoad<V>(
    keys: string[],
    loader: (missing: string[]) => V[] | Map<string, V> | Promise<V[] | Map<string, V>>,
    options?: CallOptions,
  ): Promise<V[]>;
  setAllTiers(key: string, value: unknown, options?: CallOptions): Promise<void>;
  deleteAllTiers(key: string, options?: CallOptions): Promise<void>;
  stats(): TieredStats;
  clearLocal(): void;
  /** Resolves when every queued write and background refresh has settled (tests, scripts, shutdown). */
  flush(): Promise<void>;
  /** The same as flush(). */
  settled(): Promise<void>;
}

export interface TieredStats {
  reads: Record<string, number>;
  tiers: Array<Record<string, number> & { name: string }>;
  local: Record<string, number> | null;
  flights: Record<string, number>;
  /** Queued writes of reads, in entries (docs/fleet.md); `pending`: batches not settled yet. */
  background: { queued: number; written: number; dropped: number; failed: number; pending: number };
}

export class StratacacheError extends Error {
  kind: 'timeout' | 'tier' | 'loader' | 'decode' | 'tier_failure' | 'answer_error' | string;
  key?: string;
}

/** Workers KV (bulk get of up to 100 keys per call; values as base64 text). */
export function kvTier(namespace: unknown, options?: { name?: string; cacheTtl?: number; timeoutMs?: number }): TierAdapter;
/** The Cache API. */
export function cacheApiTier(cache: unknown, options?: { name?: string; baseUrl?: string; itemLimit?: number; timeoutMs?: number }): TierAdapter;
/** An in-memory tier with a real server's limits; `calls` counts method calls. */
export function memoryTier(options?: {
  name?: string;
  kind?: TierAdapter['kind'];
  itemLimit?: number;
  clock?: () => number;
  timeoutMs?: number;
}): TierAdapter & { items: Map<string, { value: Uint8Array; expiresAt: number }>; calls: Record<'getMany' | 'setMany' | 'deleteMany' | 'add', number> };

export const KV_VALUE_LIMIT: number;
export const KV_ITEM_LIMIT: number;
export const KV_BULK_GET_MAX: number;
export const KV_MIN_EXPIRATION_TTL_S: number;
export const KV_MIN_CACHE_TTL_S: number;
export const CODEC_RAW: 0;
export const CODEC_JSON: 1;
/** [codec tag, payload] of a value, by the shared JSON codec rules (Uint8Array: raw). */
export function serialize(value: unknown, key: string): [number, Uint8Array];
export function deserialize(codec: 'json' | 'raw' | string, payload: Uint8Array): unknown;

