// Tier adapters: Workers KV, the Cache API, and an in-memory tier.
//
// An adapter is any object with (see docs/wasm.md, "Adapter interface"):
//   name, kind ("memcached" | "redis" | "workers_kv" | "storage": the core's
//   preset of limits), optional itemLimit / minTtlMs / maxTtlMs / timeoutMs,
//   getMany(keys)      -> Promise<(Uint8Array | null)[]>  (same order)
//   setMany(entries)   -> Promise<void>   entries: { key, value: Uint8Array, ttlMs: number | null }
//   deleteMany(keys)   -> Promise<void>
//   add?(entries)      -> Promise<boolean[]>  (store only if absent; for leases)

import { base64Encode, base64Decode } from './base64.js';

/** Workers KV's value limit. */
export const KV_VALUE_LIMIT = 25 * 1024 * 1024;
/** The largest envelope stored in one KV value: base64 text of it must fit in KV_VALUE_LIMIT. */
export const KV_ITEM_LIMIT = Math.floor(KV_VALUE_LIMIT / 4) * 3 - 4096;
/** KV bulk get reads at most this many keys per call. */
export const KV_BULK_GET_MAX = 100;
/** KV's shortest expirationTtl, in seconds. */
export const KV_MIN_EXPIRATION_TTL_S = 60;
/** KV's shortest cacheTtl, in seconds. */
export const KV_MIN_CACHE_TTL_S = 30;

/** base64 of the envelope magic 89 54 43: every envelope's text starts with it. */
const ENVELOPE_B64_PREFIX = 'iVRD';

/**
 * Workers KV as a remote tier. Values are stored as base64 text of the
 * envelope, because KV's bulk get (up to 100 keys per call, used for every
 * read) returns text only. A value stored as binary by another writer is
 * read with a single-key arrayBuffer get.
 *
 * @param {KVNamespace} namespace  the binding, e.g. env.CACHE
 * @param {{ name?: string, cacheTtl?: number, timeoutMs?: number }} options
 *   cacheTtl: seconds KV may cache reads at the edge (at least 30).
 */
export function kvTier(namespace, options = {}) {
  if (!namespace || typeof namespace.get !== 'function' || typeof namespace.put !== 'function') {
    throw new TypeError('stratacache: kvTier(namespace) needs a KV namespace binding (env.MY_KV)');
  }
  const getOptions = { type: 'text' };
  if (options.cacheTtl !== undefined) getOptions.cacheTtl = Math.max(KV_MIN_CACHE_TTL_S, Math.ceil(options.cacheTtl));
  const binaryOptions = { ...getOptions, type: 'arrayBuffer' };

  // A bulk get returns at most 25 MB in total. Chunks are each near that
  // size, so they are read one per call; a bulk get refused as too large is
  // split in halves.
  async function getBatch(keys) {
    if (keys.length === 1) return [await namespace.get(keys[0], getOptions)];
    let found;
    try {
      found = await namespace.get(keys, getOptions);
    } catch (error) {
      if (!/exceeds|too large|limit/i.test(String(error?.message))) throw error;
      const half = keys.length >> 1;
      return [...(await getBatch(keys.slice(0, half))), ...(await getBatch(keys.slice(half)))];
    }
    return keys.map((key) => (found instanceof Map ? found.get(key) : found?.[key]) ?? null);
  }

  return {
    name: options.name ?? 'kv',
    kind: 'workers_kv',
    itemLimit: KV_ITEM_LIMIT,
    timeoutMs: options.timeoutMs,
    async getMany(keys) {
      const batches = [];
      const chunked = keys.length > 0 && keys.every((k) => k.startsWith('tiercache.chunk|'));
      const size = chunked ? 1 : KV_BULK_GET_MAX;
      for (let i = 0; i < keys.length; i += size) batches.push(getBatch(keys.slice(i, i + size)));
      const texts = (await Promise.all(batches)).flat();
      return Promise.all(
        texts.map(async (text, i) => {
          if (text === null) return null;
          // Envelopes start with the magic; chunks are slices of one.
          if (text.startsWith(ENVELOPE_B64_PREFIX) || keys[i].startsWith('tiercache.chunk|')) {
            const bytes = base64Decode(text);
            if (bytes !== undefined) return bytes;
          }
          // Not our text form: read the stored bytes as they are.
          const raw = await namespace.get(keys[i], binaryOptions);
          return raw === null ? null : new Uint8Array(raw);
        }),
      );
    },
    async setMany(entries) {
      await Promise.all(
        entries.map((e) => {
          const put = {};
          if (e.ttlMs !== null && e.ttlMs !== undefined) {
            put.expirationTtl = Math.max(KV_MIN_EXPIRATION_TTL_S, Math.ceil(e.ttlMs / 1000));
          }
          return namespace.put(e.key, base64Encode(e.value), put);
        }),
      );
    },
    async deleteMany(keys) {
      await Promise.all(keys.map((k) => namespace.delete(k)));
    },
  };
}

/**
 * The Cache API (caches.default or await caches.open(name)) as a remote
 * tier: one match/put/delete per key (the Cache API has no bulk calls),
 * Cache-Control max-age from the TTL.
 *
 * @param {Cache} cache
 * @param {{ name?: string, baseUrl?: string, itemLimit?: number, timeoutMs?: number }} options
 */
export function cacheApiTier(cache, options = {}) {
  if (!cache || typeof cache.match !== 'function' || typeof cache.put !== 'function') {
    throw new TypeError('stratacache: cacheApiTier(cache) needs a Cache (caches.default, or await caches.open("name"))');
  }
  const base = options.baseUrl ?? 'https://stratacache.internal/';
  const url = (key) => base + encodeURIComponent(key);
  return {
    name: options.name ?? 'cache',
    kind: 'redis',
    itemLimit: options.itemLimit ?? 16 * 1024 * 1024,
    minTtlMs: 1000,
    timeoutMs: options.timeoutMs,
    async getMany(keys) {
      return Promise.all(
        keys.map(async (key) => {
          const response = await cache.match(url(key));
          return response ? new Uint8Array(await response.arrayBuffer()) : null;
        }),
      );
    },
    async setMany(entries) {
      await Promise.all(
        entries.map((e) => {
          const maxAge = e.ttlMs === null || e.ttlMs === undefined ? 365 * 24 * 3600 : Math.max(1, Math.ceil(e.ttlMs / 1000));
          const response = new Response(e.value, {
            headers: { 'Cache-Control': `max-age=${maxAge}`, 'Content-Type': 'application/octet-stream' },
          });
          return cache.put(url(e.key), response);
        }),
      );
    },
    async deleteMany(keys) {
      await Promise.all(keys.map((k) => cache.delete(url(k))));
    },
  };
}

/**
 * An in-memory remote tier (a Map), with the limits of a real server: items
 * over `itemLimit` are refused and TTLs are honoured. For tests, and as a
 * model for writing adapters. `calls` counts each method's calls.
 *
 * @param {{ name?: string, kind?: string, itemLimit?: number, clock?: () => number }} options
 */
export function memoryTier(options = {}) {
  const items = new Map();
  const clock = options.clock ?? Date.now;
  const itemLimit = options.itemLimit ?? 1024 * 1024 - 4096;
  const calls = { getMany: 0, setMany: 0, deleteMany: 0, add: 0 };
  const live = (key) => {
    const item = items.get(key);
    if (item === undefined) return undefined;
    if (item.expiresAt <= clock()) {
      items.delete(key);
      return undefined;
    }
    return item;
  };
  const put = (e) => {
    if (!(e.value instanceof Uint8Array)) throw new TypeError(`memoryTier: value for ${e.key} is not a Uint8Array`);
    if (e.value.length > itemLimit) throw new RangeError(`memoryTier: item ${e.key} is ${e.value.length} bytes, over the limit of ${itemLimit}`);
    const expiresAt = e.ttlMs === null || e.ttlMs === undefined ? Infinity : clock() + e.ttlMs;
    items.set(e.key, { value: e.value.slice(), expiresAt });
  };
  return {
    name: options.name ?? 'memory',
    kind: options.kind ?? 'memcached',
    itemLimit,
    timeoutMs: options.timeoutMs,
    items,
    calls,
    async getMany(keys) {
      calls.getMany++;
      return keys.map((k) => live(k)?.value.slice() ?? null);
    },
    async setMany(entries) {
      calls.setMany++;
      entries.forEach(put);
    },
    async deleteMany(keys) {
      calls.deleteMany++;
      keys.forEach((k) => items.delete(k));
    },
    async add(entries) {
      calls.add++;
      return entries.map((e) => {
        if (live(e.key) !== undefined) return false;
        put(e);
        return true;
      });
    },
  };
}
