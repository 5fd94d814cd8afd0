// LocalCache: a bounded in-isolate cache whose policy is the core's.
//
// Keys and values stay here, in a Map<string, slot> and arrays indexed by
// slot. The wasm side (LocalSlots) holds one core LocalCache entry per slot
// and makes every policy decision: which entry is evicted (LRU, by count and
// by bytes), when an entry expires, when an expired entry is reclaimed. Only
// integers cross the boundary, and a get does not cross it at all: the slot
// is appended to a read buffer that is applied in one call when it is full
// or before the next write (as Caffeine and moka do), so the core's recency
// order is exact whenever it evicts.

import { LocalSlots } from './tiercache_core.js';
import { wasmMemory } from './runtime.js';

const READ_BUFFER = 256;
const OUT_SLOTS = 256;

function describe(value) {
  if (value === null) return 'null';
  if (typeof value === 'string') return `a string`;
  if (typeof value === 'object') return `an object (${Object.prototype.toString.call(value).slice(8, -1)})`;
  return `${typeof value} ${String(value)}`;
}

export function checkKey(key) {
  if (typeof key !== 'string') {
    throw new TypeError(`tiercache: keys must be strings, got ${describe(key)}; build keys with Key#build() or String(...)`);
  }
}

function checkTtl(ttlMs) {
  if (ttlMs === undefined) return NaN;
  if (typeof ttlMs !== 'number' || Number.isNaN(ttlMs)) {
    throw new TypeError(`tiercache: ttlMs must be a number of milliseconds (Infinity: never expire; 0 or less: delete), got ${describe(ttlMs)}`);
  }
  return ttlMs;
}

export class LocalCache {
  #policy;
  #map = new Map();
  #keys = [];
  #values = [];
  #expiry = new Float64Array(64);
  #free = [];
  #slots = 0;
  #reads = new Uint32Array(READ_BUFFER);
  #n = 0;
  #out = null;
  #outPtr;
  #timed;
  #clock;
  #lastNow;
  #sizeOf;
  #misses = 0;

  /**
   * @param {{ maxEntries: number, maxBytes?: number, ttlMs?: number,
   *   sizeOf?: (value: unknown, key: string) => number, clock?: () => number }} options
   */
  constructor(options = {}) {
    const { maxEntries, maxBytes, ttlMs, sizeOf, clock } = options;
    if (typeof maxEntries !== 'number') {
      throw new TypeError('tiercache: LocalCache needs maxEntries (a whole number of entries, e.g. { maxEntries: 10000 })');
    }
    if (maxBytes !== undefined && typeof maxBytes !== 'number') throw new TypeError('tiercache: maxBytes must be a number of bytes');
    if (maxBytes !== undefined && sizeOf === undefined) {
      throw new TypeError('tiercache: maxBytes needs sizeOf(value, key) (or a `size` on each set) to weigh values');
    }
    if (sizeOf !== undefined && typeof sizeOf !== 'function') throw new TypeError('tiercache: sizeOf must be a function');
    if (clock !== undefined && typeof clock !== 'function') throw new TypeError('tiercache: clock must be a function returning milliseconds');
    const ttl = ttlMs === undefined || ttlMs === null ? NaN : checkTtl(ttlMs);
    this.#policy = new LocalSlots(maxEntries, maxBytes ?? Infinity, ttl);
    this.#outPtr = this.#policy.outPtr();
    this.#clock = clock ?? Date.now;
    this.#sizeOf = sizeOf;
    this.#timed = Number.isFinite(ttl);
    this.#lastNow = this.#clock();
  }

  /** The output buffer the policy writes removed slots to (in wasm memory). */
  #view() {
    let out = this.#out;
    if (out === null || out.length === 0) {
      out = this.#out = new Float64Array(wasmMemory().buffer, this.#outPtr, OUT_SLOTS + 1);
    }
    return out;
  }

  /** The time for a write: pending reads are applied first, at their own time. */
  #now() {
    if (this.#n) this.#flush();
    if (this.#timed) this.#lastNow = this.#clock();
    return this.#lastNow;
  }

  /** Frees the `n` slots the policy reported, and any it reports after. */
  #release(n) {
    for (;;) {
      const out = this.#view();
      for (let i = 1; i <= n; i++) {
        const slot = out[i];
        this.#map.delete(this.#keys[slot]);
        this.#keys[slot] = undefined;
        this.#values[slot] = undefined;
        this.#free.push(slot);
      }
      if (n < OUT_SLOTS) return;
      n = this.#policy.drain();
    }
  }

  #flush() {
    const n = this.#n;
    this.#n = 0;
    const removed = this.#policy.applyReads(this.#reads.subarray(0, n), this.#lastNow);
    if (removed) this.#release(removed);
  }

  #newSlot() {
    if (this.#free.length) return this.#free.pop();
    const slot = this.#slots++;
    if (slot >= this.#expiry.length) {
      const grown = new Float64Array(this.#expiry.length * 2);
      grown.set(this.#expiry);
      this.#expiry = grown;
    }
    return slot;
  }

  /** The value of `key`, or undefined (use `has` to tell a stored undefined from a miss). */
  get(key) {
    const slot = this.#map.get(key);
    if (slot === undefined) {
      this.#misses++;
      return undefined;
    }
    if (this.#timed) return this.#timedRead(slot) ? this.#values[slot] : undefined;
    this.#reads[this.#n++] = slot;
    if (this.#n === READ_BUFFER) this.#flush();
    return this.#values[slot];
  }

  /**
   * Records a read of `slot` in a cache where entries expire; true if the
   * entry is live. Buffered reads all happened at the same millisecond
   * (`#lastNow`), so the core applies each at the time it happened: an
   * expired entry counts as a miss (and is reclaimed), a live one as a hit.
   */
  #timedRead(slot) {
    const now = this.#clock();
    if (now !== this.#lastNow) {
      if (this.#n) this.#flush();
      this.#lastNow = now;
    }
    this.#reads[this.#n++] = slot;
    if (this.#n === READ_BUFFER) this.#flush();
    return this.#expiry[slot] > now;
  }

  /** True if `key` holds a live value (no recency change, no counting). */
  has(key) {
    const slot = this.#map.get(key);
    return slot !== undefined && !(this.#timed && this.#expiry[slot] <= this.#clock());
  }

  /** `{ hit: true, value }` or `{ hit: false }`, counted and marked used like `get`. */
  lookup(key) {
    const slot = this.#map.get(key);
    if (slot === undefined) {
      this.#misses++;
      return { hit: false, value: undefined };
    }
    if (this.#timed ? this.#timedRead(slot) : this.#untimedRead(slot)) return { hit: true, value: this.#values[slot] };
    return { hit: false, value: undefined };
  }

  #untimedRead(slot) {
    this.#reads[this.#n++] = slot;
    if (this.#n === READ_BUFFER) this.#flush();
    return true;
  }

  /** The value of `key` without marking it used. */
  peek(key) {
    return this.has(key) ? this.#values[this.#map.get(key)] : undefined;
  }

  /**
   * Stores `value` under `key`. `ttlMs`: this entry's TTL (Infinity: never;
   * 0 or less: delete); `size`: its weight for maxBytes. Returns this.
   */
  set(key, value, options) {
    checkKey(key);
    let ttl = NaN;
    let size;
    if (options !== undefined) {
      ttl = checkTtl(options.ttlMs);
      size = options.size;
      if (Number.isFinite(ttl) && !this.#timed) {
        if (this.#n) this.#flush();
        this.#timed = true;
      }
    }
    const weight = size !== undefined ? size : this.#sizeOf !== undefined ? this.#sizeOf(value, key) : 0;
    if (typeof weight !== 'number' || !(weight >= 0)) {
      throw new TypeError(`tiercache: the size of the value for ${JSON.stringify(key.slice(0, 80))} must be a number >= 0, got ${describe(weight)}`);
    }
    const now = this.#now();
    let slot = this.#map.get(key);
    const fresh = slot === undefined;
    if (fresh) slot = this.#newSlot();
    const r = this.#policy.set(slot, weight, ttl, now);
    if (r < 0) {
      if (!fresh) this.#map.delete(key);
      this.#keys[slot] = undefined;
      this.#values[slot] = undefined;
      this.#free.push(slot);
      if (r < -1) this.#release(-1 - r);
      return this;
    }
    this.#expiry[slot] = this.#view()[0];
    if (r) this.#release(r);
    if (fresh) {
      this.#map.set(key, slot);
      this.#keys[slot] = key;
    }
    this.#values[slot] = value;
    return this;
  }

  /** Removes `key`; true if it was stored. */
  delete(key) {
    const slot = this.#map.get(key);
    if (slot === undefined) return false;
    if (this.#n) this.#flush();
    this.#policy.delete(slot);
    this.#map.delete(key);
    this.#keys[slot] = undefined;
    this.#values[slot] = undefined;
    this.#free.push(slot);
    return true;
  }

  /** Gives a live entry a new TTL; false if it is missing or expired. */
  touch(key, ttlMs) {
    const ttl = checkTtl(ttlMs);
    const slot = this.#map.get(key);
    if (slot === undefined) return false;
    if (Number.isFinite(ttl) && !this.#timed) {
      if (this.#n) this.#flush();
      this.#timed = true;
    }
    const removed = this.#policy.touch(slot, ttl, this.#now());
    const live = this.#policy.touched;
    const at = this.#view()[0];
    if (at === -Infinity) {
      // Deleted by a zero TTL, or it had expired: the slot is free.
      this.#map.delete(key);
      this.#keys[slot] = undefined;
      this.#values[slot] = undefined;
      this.#free.push(slot);
    } else {
      this.#expiry[slot] = at;
    }
    if (removed) this.#release(removed);
    return live;
  }

  /** Removes every entry. */
  clear() {
    this.#n = 0;
    this.#policy.clear();
    this.#map.clear();
    this.#keys = [];
    this.#values = [];
    this.#free = [];
    this.#slots = 0;
  }

  /** Reclaims every expired entry now; returns how many. */
  purgeExpired() {
    const now = this.#now();
    const before = this.#map.size;
    const n = this.#policy.purgeExpired(now);
    if (n) this.#release(n);
    return before - this.#map.size;
  }

  /** Entries held (expired ones not yet reclaimed included). */
  get size() {
    return this.#map.size;
  }

  /** Keys from most to least recently used (applies buffered reads; O(n)). */
  keys() {
    if (this.#n) this.#flush();
    return Array.from(this.#policy.slotsByRecency(), (slot) => this.#keys[slot]);
  }

  /** Counters (buffered reads are applied first). */
  stats() {
    if (this.#n) this.#flush();
    const [hits, misses, inserts, updates, evictions, expirations, rejected, entries, bytes] = this.#policy.stats();
    return { hits, misses: misses + this.#misses, inserts, updates, evictions, expirations, rejected, entries, bytes };
  }
}
