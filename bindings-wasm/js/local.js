// LocalCache: a bounded in-isolate cache whose policy is the core's.
//
// Keys and values stay here, in a Map<string, slot> and arrays indexed by
// slot. The wasm side (LocalSlots, over the core's SlotPolicy) makes every
// policy decision: which entry is evicted (LRU, by count and by bytes), when
// an entry expires, when an expired entry is reclaimed, and which slot a new
// entry gets. Only integers cross the boundary, and a get does not cross it
// at all: the slot is appended to a read buffer that is applied in one call
// when it is full or before the next write (as Caffeine and moka do), so
// the core's recency order is exact whenever it evicts. Sets of new keys
// do not cross it either while nothing else happens: the core publishes a
// plan (the slots the next new entries get, evicting the entries there),
// JS files keys under those slots at once and reports them in one batch
// with the next call. Results come back
// through a header in wasm memory read with views of the whole memory
// (rebuilt when memory grows), so a call allocates nothing.

import { LocalSlots } from './stratacache_core.js';
import { wasmMemory } from './runtime.js';

const READ_BUFFER = 256;
// A read of a key that is not stored: the core counts it as a miss.
const NO_SLOT = 0xffffffff;
// Offsets in the LocalSlots header (see bindings-wasm/src/local.rs, `Out`).
const OUT_EXPIRY = 0;
const OUT_REMOVED_PTR = 8;
const OUT_REMOVED_LEN = 12;
const OUT_STATS = 16;
const OUT_READS = 88;
const OUT_PLAN = OUT_READS + 4 * READ_BUFFER;

function describe(value) {
  if (value === null) return 'null';
  if (typeof value === 'string') return `a string`;
  if (typeof value === 'object') return `an object (${Object.prototype.toString.call(value).slice(8, -1)})`;
  return `${typeof value} ${String(value)}`;
}

export function checkKey(key) {
  if (typeof key !== 'string') {
    throw new TypeError(`stratacache: keys must be strings, got ${describe(key)}; build keys with Key#build() or String(...)`);
  }
}

function checkTtl(ttlMs) {
  if (ttlMs === undefined) return NaN;
  if (typeof ttlMs !== 'number' || Number.isNaN(ttlMs)) {
    throw new TypeError(`stratacache: ttlMs must be a number of milliseconds (Infinity: never expire; 0 or less: delete), got ${describe(ttlMs)}`);
  }
  return ttlMs;
}

export class LocalCache {
  #policy;
  #map = new Map();
  #keys = [];
  #values = [];
  #expiry = new Float64Array(64);
  #reads = new Uint32Array(READ_BUFFER);
  #n = 0;
  // The current plan: slots OUT_PLAN[#made..#planned] are the next new
  // entries'; #made of them are filed here, not yet reported to the core.
  #made = 0;
  #planned = 0;
  #memory;
  #u32;
  #f64;
  #out;
  #timed;
  #clock;
  #lastNow;
  #sizeOf;

  /**
   * @param {{ maxEntries: number, maxBytes?: number, ttlMs?: number,
   *   sizeOf?: (value: unknown, key: string) => number, clock?: () => number }} options
   */
  constructor(options = {}) {
    const { maxEntries, maxBytes, ttlMs, sizeOf, clock } = options;
    if (typeof maxEntries !== 'number') {
      throw new TypeError('stratacache: LocalCache needs maxEntries (a whole number of entries, e.g. { maxEntries: 10000 })');
    }
    if (maxBytes !== undefined && typeof maxBytes !== 'number') throw new TypeError('stratacache: maxBytes must be a number of bytes');
    if (maxBytes !== undefined && sizeOf === undefined) {
      throw new TypeError('stratacache: maxBytes needs sizeOf(value, key) (or a `size` on each set) to weigh values');
    }
    if (sizeOf !== undefined && typeof sizeOf !== 'function') throw new TypeError('stratacache: sizeOf must be a function');
    if (clock !== undefined && typeof clock !== 'function') throw new TypeError('stratacache: clock must be a function returning milliseconds');
    if (!(maxBytes === undefined || maxBytes >= 1)) throw new RangeError('stratacache: maxBytes must be the most bytes the cache may hold (at least 1); leave it out for no byte bound');
    const ttl = ttlMs === undefined || ttlMs === null ? NaN : checkTtl(ttlMs);
    if (ttl <= 0) throw new RangeError('stratacache: ttlMs must be a positive TTL in milliseconds; leave it out for entries that do not expire');
    this.#policy = new LocalSlots(maxEntries, maxBytes ?? Infinity, ttl);
    this.#out = this.#policy.outPtr();
    this.#memory = wasmMemory();
    this.#views();
    this.#clock = clock ?? Date.now;
    this.#sizeOf = sizeOf;
    this.#timed = Number.isFinite(ttl);
    this.#lastNow = this.#clock();
  }

  /** Views of the whole wasm memory; a growth of memory detaches them. */
  #views() {
    const buffer = this.#memory.buffer;
    this.#u32 = new Uint32Array(buffer);
    this.#f64 = new Float64Array(buffer);
  }

  /** The u32 view, valid after whatever the last wasm call allocated. */
  #u32view() {
    if (this.#u32.length === 0) this.#views();
    return this.#u32;
  }

  /**
   * Drops the keys and values of the slots the last call removed; returns
   * the u32 view.
   */
  #release() {
    const u32 = this.#u32view();
    const out = this.#out >>> 2;
    const n = u32[out + (OUT_REMOVED_LEN >>> 2)];
    if (n !== 0) {
      const at = u32[out + (OUT_REMOVED_PTR >>> 2)] >>> 2;
      for (let i = 0; i < n; i++) {
        const slot = u32[at + i];
        this.#map.delete(this.#keys[slot]);
        this.#keys[slot] = undefined;
        this.#values[slot] = undefined;
      }
    }
    return u32;
  }

  /** The expiry the core gave the entry of the last set or touch. */
  #outExpiry() {
    if (this.#f64.length === 0) this.#views();
    return this.#f64[(this.#out + OUT_EXPIRY) >>> 3];
  }

  /**
   * The time for a write: planned sets and pending reads are reported
   * first, at their own time, and the plan ends.
   */
  #now() {
    this.#sync();
    if (this.#timed) this.#lastNow = this.#clock();
    return this.#lastNow;
  }

  /** Reports planned sets and buffered reads; ends the plan. */
  #sync() {
    if (this.#n !== 0 || this.#made !== 0) this.#flush();
    this.#planned = 0;
  }

  #flush() {
    const n = this.#n;
    const made = this.#made;
    this.#n = 0;
    this.#made = 0;
    this.#planned = 0;
    if (n !== 0) {
      const reads = n === READ_BUFFER ? this.#reads : this.#reads.subarray(0, n);
      this.#u32view().set(reads, (this.#out + OUT_READS) >>> 2);
    }
    if (this.#policy.applyReads(made, n, this.#lastNow) !== 0) this.#release();
  }

  /** Reports the planned sets made and asks for a new plan; its length. */
  #replan() {
    const made = this.#made;
    this.#made = 0;
    this.#planned = this.#policy.planInserts(made, this.#lastNow);
    return this.#planned;
  }

  /** The value of `key`, or undefined (use `has` to tell a stored undefined from a miss). */
  get(key) {
    const slot = this.#map.get(key);
    // The hot path, kept small so that V8 inlines it into the caller: a
    // hit where nothing expires only records the slot.
    if (slot !== undefined && !this.#timed) {
      const n = this.#n;
      this.#reads[n] = slot;
      if (n === READ_BUFFER - 1) {
        this.#n = READ_BUFFER;
        this.#flush();
      } else {
        this.#n = n + 1;
      }
      return this.#values[slot];
    }
    return this.#otherGet(slot);
  }

  /** `get` of a key not found (`slot` undefined) or in a cache where entries expire. */
  #otherGet(slot) {
    if (slot === undefined) {
      this.#miss();
      return undefined;
    }
    return this.#timedRead(slot) ? this.#values[slot] : undefined;
  }

  /** Records a miss: the core counts it when the buffer is applied. */
  #miss() {
    this.#reads[this.#n++] = NO_SLOT;
    if (this.#n === READ_BUFFER) this.#flush();
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
      this.#miss();
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
    if (typeof key !== 'string') checkKey(key);
    // A new key with no options in a cache where nothing expires takes the
    // next planned slot (unless reads are pending: they may reorder it).
    if (options === undefined && this.#sizeOf === undefined && !this.#timed && this.#n === 0) {
      const held = this.#map.get(key);
      if (held === undefined && (this.#made < this.#planned || this.#replan() !== 0)) {
        const slot = this.#u32view()[((this.#out + OUT_PLAN) >>> 2) + this.#made++];
        const evicted = this.#keys[slot];
        if (evicted !== undefined) this.#map.delete(evicted);
        this.#map.set(key, slot);
        this.#keys[slot] = key;
        this.#values[slot] = value;
        return this;
      }
    }
    let ttl = NaN;
    let weight = 0;
    if (options !== undefined || this.#sizeOf !== undefined) {
      let size;
      if (options !== undefined) {
        ttl = checkTtl(options.ttlMs);
        size = options.size;
        if (Number.isFinite(ttl) && !this.#timed) this.#becomeTimed();
      }
      weight = size !== undefined ? size : this.#sizeOf !== undefined ? this.#sizeOf(value, key) : 0;
      if (typeof weight !== 'number' || !(weight >= 0)) {
        throw new TypeError(`stratacache: the size of the value for ${JSON.stringify(key.slice(0, 80))} must be a number >= 0, got ${describe(weight)}`);
      }
    }
    const now = this.#now();
    const held = this.#map.get(key);
    // The core picks the slot: the one held, a free one, or (in a full
    // cache) the one it just evicted; it reports every slot that left.
    const slot = this.#policy.set(held === undefined ? -1 : held, weight, ttl, now);
    this.#release();
    if (slot < 0) return this;
    if (this.#keys[slot] !== key) {
      this.#map.set(key, slot);
      this.#keys[slot] = key;
    }
    this.#values[slot] = value;
    if (this.#timed) {
      if (slot >= this.#expiry.length) this.#growExpiry(slot);
      this.#expiry[slot] = this.#outExpiry();
    }
    return this;
  }

  #growExpiry(slot) {
    let length = this.#expiry.length * 2;
    while (length <= slot) length *= 2;
    const grown = new Float64Array(length).fill(Infinity);
    grown.set(this.#expiry);
    this.#expiry = grown;
  }

  /**
   * The first entry with a TTL: from now on reads check expiry. Expiry
   * times are kept only while some entry may expire; every entry stored
   * before never expires.
   */
  #becomeTimed() {
    this.#sync();
    if (this.#keys.length > this.#expiry.length) this.#growExpiry(this.#keys.length);
    this.#expiry.fill(Infinity);
    this.#timed = true;
  }

  /** Removes `key`; true if it was stored. */
  delete(key) {
    const slot = this.#map.get(key);
    if (slot === undefined) return false;
    this.#sync();
    this.#policy.delete(slot);
    this.#map.delete(key);
    this.#keys[slot] = undefined;
    this.#values[slot] = undefined;
    return true;
  }

  /** Gives a live entry a new TTL; false if it is missing or expired. */
  touch(key, ttlMs) {
    const ttl = checkTtl(ttlMs);
    const slot = this.#map.get(key);
    if (slot === undefined) return false;
    if (Number.isFinite(ttl) && !this.#timed) this.#becomeTimed();
    const live = this.#policy.touch(slot, ttl, this.#now());
    // The slot is among the removed if a zero TTL deleted it or it had expired.
    this.#release();
    if (this.#keys[slot] === key) {
      if (slot >= this.#expiry.length) this.#growExpiry(slot);
      this.#expiry[slot] = this.#outExpiry();
    }
    return live;
  }

  /** Removes every entry. */
  clear() {
    // Planned sets are reported (they count), buffered reads dropped.
    this.#n = 0;
    this.#sync();
    this.#policy.clear();
    this.#map.clear();
    this.#keys = [];
    this.#values = [];
  }

  /** Reclaims every expired entry now; returns how many. */
  purgeExpired() {
    const now = this.#now();
    const n = this.#policy.purgeExpired(now);
    if (n !== 0) this.#release();
    return n;
  }

  /** Entries held (expired ones not yet reclaimed included). */
  get size() {
    return this.#map.size;
  }

  /** Keys from most to least recently used (applies buffered reads; O(n)). */
  keys() {
    this.#sync();
    return Array.from(this.#policy.slotsByRecency(), (slot) => this.#keys[slot]);
  }

  /** Counters (buffered reads are applied first). */
  stats() {
    this.#sync();
    this.#policy.writeStats();
    if (this.#f64.length === 0) this.#views();
    const at = (this.#out + OUT_STATS) >>> 3;
    const [hits, misses, inserts, updates, evictions, expirations, rejected, entries, bytes] = this.#f64.subarray(at, at + 9);
    return { hits, misses, inserts, updates, evictions, expirations, rejected, entries, bytes };
  }
}
