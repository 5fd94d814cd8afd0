// TieredCache: drives the core's sans-I/O read machine with `await`.
//
// Every decision (which tier to ask, back-fill, chunking, envelopes,
// signatures, expiry, refresh, single flight, cool-down of failing tiers,
// the order of writes) is the core's. One call into wasm starts a read and
// runs it as far as it goes without I/O (a read answered by the request and
// local tiers ends there); each answer to a step is one more call. This file
// does the I/O asked for: tier calls with timeouts, the loader, (de)serializing
// payloads, waking waiting reads (the core's wait ids mapped to promises);
// writes.js does the writes, off the read's path in a bounded queue.

import { Tiered } from './stratacache_core.js';
import { serialize, deserialize } from './codec.js';
import { RequestCache, SHARE } from './request.js';
import { Reader, WasmIo, readStep, readResults } from './wire.js';
import { Writes } from './writes.js';
import { plainKey } from './key.js';
import { wasmMemory, slots, fileValues } from './runtime.js';
import { StratacacheError, message, withTimeout, checkTier, coreConfig, ttlOf, checkKeys, checkOne, concat } from './config.js';

export { StratacacheError };

const LOAD = 1;
const FORCE_MISS = 2;
const SKIP_REQUEST = 4;
// Answer kinds of the wasm `answer` (src/tiered.rs).
const FAILED = 0, FETCHED = 1, DECODED = 2, LOADED = 3, LEASED = 4, SLEPT = 5, WOKE = 6, CANCEL = 7;
const NOT_FOUND = 0xffffffff;
const KEY_FAILED = 0xfffffffe;
const NONE = [];
const encoder = new TextEncoder();
const random53 = () => Math.floor(Math.random() * 2 ** 53);
const camelCase = (name) => name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());

/** A tier's getMany result for `keys` as the core's answer: the values one after another, a length (or NOT_FOUND, KEY_FAILED) per key. */
function fetched(got, keys, name) {
  // `{ values, failed }`: keys the tier could not answer (their server is down) go on to the next tier.
  const failed = got && !Array.isArray(got) && Array.isArray(got.values) ? new Set(got.failed ?? NONE) : null;
  if (failed) got = got.values;
  if (!Array.isArray(got) || got.length !== keys.length) {
    throw new StratacacheError(`stratacache: tier ${name} getMany returned ${Array.isArray(got) ? got.length : typeof got} values for ${keys.length} keys`, { kind: 'tier' });
  }
  const lengths = new Uint32Array(got.length);
  const parts = [];
  for (let i = 0; i < got.length; i++) {
    const g = got[i];
    // A view of any ArrayBuffer or view (`buffer` is undefined for an ArrayBuffer itself).
    const v = g instanceof ArrayBuffer || ArrayBuffer.isView(g) ? new Uint8Array(g.buffer ?? g, g.byteOffset, g.byteLength) : g;
    if (failed?.has(keys[i])) lengths[i] = KEY_FAILED;
    else if (v === null || v === undefined) lengths[i] = NOT_FOUND;
    else if (v instanceof Uint8Array) {
      lengths[i] = v.length;
      parts.push(v);
    } else throw new StratacacheError(`stratacache: tier ${name} returned ${typeof v} for key ${JSON.stringify(keys[i])}; getMany must give a Uint8Array or null per key`, { kind: 'tier' });
  }
  return [FETCHED, concat(parts), lengths, 0];
}

export class TieredCache {
  #core;
  #tiers;
  #names;
  #sources;
  #clock;
  #tierTimeoutMs;
  #loadTimeoutMs;
  #onError;
  #hasLocal;
  #statNames;
  #waiters = new Map();
  #writes;
  #io;

  /** @param {object} options  see docs/wasm.md and index.d.ts (TieredCacheOptions) */
  constructor(options = {}) {
    const tiers = options.tiers ?? [];
    if (!Array.isArray(tiers)) throw new TypeError('stratacache: tiers must be an array of adapters');
    this.#names = tiers.map(checkTier);
    this.#core = new Tiered(...coreConfig(tiers, this.#names, options));
    this.#io = new WasmIo(this.#core, wasmMemory());
    this.#sources = [undefined, 'request', 'local', 'loader', 'flight'];
    this.#names.forEach((name, i) => (this.#sources[16 + i] = name));
    this.#hasLocal = !(options.local === false || options.local === null);
    this.#tiers = tiers;
    this.#clock = options.clock ?? Date.now;
    this.#tierTimeoutMs = options.tierTimeoutMs ?? 5_000;
    this.#loadTimeoutMs = options.loadTimeoutMs ?? 30_000;
    this.#onError = options.onError;
    const wrote = (tier, ok) => this.#core.tierWrote(tier, ok, this.#clock());
    this.#writes = new Writes(tiers, this.#names, this.#tierTimeoutMs, wrote, (e, name) => this.#report(e, name), options.backgroundWrites);
  }

  /** `{ hit, value, source }` for `key`: request, local and remote tiers, no loader. */
  async get(key, options) {
    checkOne(key);
    let out = this.#read([key], 0, undefined, options);
    if (out instanceof Promise) out = await out;
    const { hit, value, source } = out.results[0];
    return { hit, value, source };
  }

  /** One `{ key, hit, value, source }` per key, in order; each remote tier is asked once for all. */
  async getMany(keys, options) {
    checkKeys(keys);
    const out = this.#read(keys, 0, undefined, options);
    return (out instanceof Promise ? await out : out).results;
  }

  /** The value of `key`, loading it with `loader(key)` if no tier has it (once per isolate). */
  async getOrLoad(key, loader, options) {
    checkOne(key);
    if (typeof loader !== 'function') throw new TypeError('stratacache: getOrLoad(key, loader) needs a loader function');
    return (await this.#loadMany([key], async (keys) => [await loader(keys[0])], options))[0];
  }

  /** The values of `keys`, in order; keys no tier has are loaded in one batch with `loader(missingKeys)` (an array in key order or a Map). */
  async getManyOrLoad(keys, loader, options) {
    checkKeys(keys);
    if (typeof loader !== 'function') throw new TypeError('stratacache: getManyOrLoad(keys, loader) needs a loader function');
    return this.#loadMany(keys, loader, options);
  }

  /** Writes `value` to every tier (request and local now, remote tiers awaited). `ttlMs` <= 0 deletes. */
  async setAllTiers(key, value, options) {
    checkOne(key);
    const [codec, payload] = serialize(value, key);
    fileValues([value]);
    await this.#writes.now(this.#core.setAllTiers(key, codec, payload, ttlOf(options), this.#clock(), random53(), this.#request(options)));
  }

  /** Removes `key` from every tier. */
  async deleteAllTiers(key, options) {
    checkOne(key);
    // A TTL of 0 deletes: the core's delete steps.
    fileValues([undefined]);
    await this.#writes.now(this.#core.setAllTiers(key, 0, NONE, 0, this.#clock(), 0, this.#request(options)));
  }

  /** Counters: `{ reads, tiers, local, flights, background }`. */
  stats() {
    const values = this.#core.stats();
    this.#statNames ??= this.#core.statNames().split('|').map((names) => names.split(',').map(camelCase));
    const [reads, tier, local, flights] = this.#statNames;
    let at = 0;
    const take = (names) => Object.fromEntries(names.map((name) => [name, values[at++]]));
    const stats = { reads: take(reads), tiers: this.#names.map((name) => ({ name, ...take(tier) })) };
    stats.local = this.#hasLocal ? take(local) : null;
    stats.flights = take(flights);
    stats.background = { ...this.#writes.counts, pending: this.#writes.pending };
    return stats;
  }

  /** Empties this isolate's local tier. */
  clearLocal() {
    this.#core.clearLocal();
    fileValues(NONE);
  }

  /** Resolves when every queued write and background refresh has settled. */
  flush() {
    return this.#writes.flush();
  }

  /** The same as flush() (its older name). */
  settled() {
    return this.flush();
  }

  // ---- the driver ----------------------------------------------------------

  #request(options) {
    const request = options?.request ?? undefined;
    if (request !== undefined && !(request instanceof RequestCache)) throw new TypeError('stratacache: options.request must be a RequestCache');
    return request?.[SHARE]();
  }

  async #loadMany(keys, loader, options) {
    let out = this.#read(keys, options?.forceMiss ? LOAD | FORCE_MISS : LOAD, loader, options);
    if (out instanceof Promise) out = await out;
    for (const i of out.refresh ?? NONE) this.#refresh(keys[i], loader, options);
    for (const [i, error] of out.errors ?? NONE) {
      const { key, hit } = out.results[i];
      if (!hit) throw out.failures?.get(key) ?? new StratacacheError(`stratacache: loading ${JSON.stringify(key)} failed: ${error}`, { kind: 'loader', key });
    }
    return out.results.map((r) => r.value);
  }

  /** Starts a read: its outcome, or a promise of it when the read needs I/O. */
  #read(keys, flags, loader, options, background) {
    const out = this.#io.output(this.#core.read(keys.length, this.#io.keys(keys), flags, ttlOf(options), this.#clock(), random53(), this.#request(options)));
    // Over in one call (a done step, then the results), or copied: the steps are read across awaits.
    if (out[0] === 0) return readResults(new Reader(out.subarray(1)), keys, slots, this.#sources);
    return this.#drive(out.slice(), keys, { loader, options, failures: new Map(), background });
  }

  /**
   * Answers the core's steps until the read is done; notify steps are done at once, writes after the read.
   * Each output is read at once: the values of a finished read are the next read's after the next call.
   */
  async #drive(out, keys, read) {
    const writes = [];
    let id;
    try {
      for (;;) {
        const r = new Reader(out);
        let step = readStep(r);
        for (; step.kind === 'notify' || step.kind === 'store' || step.kind === 'delete'; step = readStep(r)) {
          if (step.kind === 'notify') this.#notify(step.waits);
          else writes.push(step);
        }
        if (step.kind === 'done') return Object.assign(readResults(r, keys, slots, this.#sources), { failures: read.failures });
        id = r.u32();
        const [kind, bytes, numbers, ms, values] = await this.#answer(step, keys, read);
        // Filed just before the call that takes them: another read may call into wasm while this one awaits.
        if (values) fileValues(values);
        out = this.#core.answer(id, kind, bytes, numbers, ms);
      }
    } catch (error) {
      const cancelled = id === undefined ? NONE : this.#core.answer(id, CANCEL, NONE, NONE, 0);
      if (cancelled.length) this.#notify(readStep(new Reader(cancelled)).waits);
      throw error;
    } finally {
      await this.#writes.behind(writes, read.options, read.background);
    }
  }

  /** Does what `step` asks; the core's answer: [kind, bytes, numbers, ms, the JS values it files]. */
  async #answer(step, keys, { loader, failures }) {
    switch (step.kind) {
      case 'fetch':
      case 'lease': {
        const [tier, name, lease] = [this.#tiers[step.tier], this.#names[step.tier], step.kind === 'lease'];
        try {
          const call = lease ? tier.add(step.entries) : tier.getMany(step.keys);
          const got = await withTimeout(call, tier.timeoutMs ?? this.#tierTimeoutMs, `${lease ? 'add' : 'getMany'} on tier ${name}`);
          return lease ? [LEASED, Uint8Array.from(step.entries, (_, i) => (got?.[i] ? 1 : 0)), NONE, 0] : fetched(got, step.keys, name);
        } catch (error) {
          this.#report(error, name);
          return [FAILED, encoder.encode(message(error)), NONE, this.#clock()];
        }
      }
      case 'decode': {
        const failed = new Uint32Array(step.items.length);
        const values = step.items.map((item, i) => {
          try {
            return deserialize(item.codec, item.payload);
          } catch (error) {
            this.#report(new StratacacheError(`stratacache: the value of ${JSON.stringify(item.key)} could not be decoded: ${message(error)}`, { kind: 'decode', cause: error }));
            failed[i] = 1;
          }
        });
        return [DECODED, NONE, failed, 0, values];
      }
      case 'load': {
        // The caller's keys for the load step's remote keys (the core maps keys with plainKey).
        const back = new Map(keys.map((k) => [plainKey(k), k]));
        return this.#load(step.keys.map((k) => back.get(k) ?? k), loader, failures);
      }
      case 'sleep':
        await new Promise((resolve) => setTimeout(resolve, step.ms));
        return [SLEPT, NONE, NONE, this.#clock()];
      default: // 'wait': readStep refuses unknown kinds
        await this.#wait(step.waits);
        return [WOKE, NONE, NONE, 0];
    }
  }

  /** Calls the loader: per key its payload and codec, or its error's message and 255. */
  async #load(keys, loader, failures) {
    const n = keys.length;
    const started = Date.now();
    const [lengths, parts] = [new Uint32Array(2 * n), []];
    let loaded, error;
    try {
      if (!loader) throw new StratacacheError('stratacache: no loader', { kind: 'loader' });
      loaded = await withTimeout(loader(keys.slice()), this.#loadTimeoutMs, `the loader for ${n} key(s)`);
      if (loaded instanceof Map) loaded = keys.map((k) => loaded.get(k));
      if (!Array.isArray(loaded) || loaded.length !== n) {
        throw new StratacacheError(`stratacache: the loader returned ${Array.isArray(loaded) ? `${loaded.length} values` : typeof loaded} for ${n} keys; return an array in key order or a Map`, { kind: 'loader' });
      }
    } catch (e) {
      error = e instanceof StratacacheError ? e : new StratacacheError(`stratacache: the loader failed: ${message(e)}`, { kind: 'loader', cause: e });
      loaded = new Array(n);
    }
    const ms = Date.now() - started;
    for (let i = 0; i < n; i++) {
      let [codec, payload] = [255];
      try {
        if (error) throw error;
        [codec, payload] = serialize(loaded[i], keys[i]);
      } catch (e) {
        failures.set(keys[i], e);
        payload = encoder.encode(message(e));
      }
      lengths.set([payload.length, codec], 2 * i);
      parts.push(payload);
    }
    return [LOADED, concat(parts), lengths, ms, loaded];
  }

  /** Reloads `key` and writes it to every tier, in the background. */
  #refresh(key, loader, options) {
    const reload = async () => void (await this.#read([key], LOAD | FORCE_MISS | SKIP_REQUEST, loader, { ttlMs: options?.ttlMs }, true));
    const promise = this.#writes.track(reload().catch((error) => this.#report(error)), options);
    options?.onRefresh?.(promise);
  }

  #report(error, tier) {
    try {
      this.#onError?.(error, tier);
    } catch {
      // An error handler that throws must not break a read.
    }
  }

  #waiter(id) {
    if (!this.#waiters.has(id)) {
      let resolve;
      const promise = new Promise((r) => (resolve = r));
      this.#waiters.set(id, { promise, resolve });
    }
    return this.#waiters.get(id);
  }

  #notify(ids) {
    for (const id of ids) this.#waiter(id).resolve();
  }

  async #wait(ids) {
    try {
      await withTimeout(Promise.all(ids.map((id) => this.#waiter(id).promise)), this.#loadTimeoutMs, 'waiting for another request to load');
    } catch {
      // The leader never reported: the core lets this read load itself.
    } finally {
      for (const id of ids) this.#waiters.delete(id);
    }
  }
}
