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

function toBytes(value, tier, key) {
  if (value === null || value === undefined || value instanceof Uint8Array) return value ?? null;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new StratacacheError(`stratacache: tier ${tier} returned ${typeof value} for key ${JSON.stringify(key)}; getMany must give a Uint8Array or null per key`, { kind: 'tier' });
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
    const failed = (tier) => this.#core.tierFailed(tier, this.#clock());
    this.#writes = new Writes(tiers, this.#names, this.#tierTimeoutMs, failed, (e, name) => this.#report(e, name), options.backgroundWrites);
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
    const request = options?.request;
    if (request === undefined || request === null) return undefined;
    if (!(request instanceof RequestCache)) throw new TypeError('stratacache: options.request must be a RequestCache');
    return request[SHARE]();
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
    const at = this.#core.read(keys.length, this.#io.keys(keys), flags, ttlOf(options), this.#clock(), random53(), this.#request(options));
    const out = this.#io.output(at);
    if (out[0] === 0) {
      const r = new Reader(out);
      r.at = 1;
      return readResults(r, keys, slots, this.#sources);
    }
    // Copied: the steps are read across awaits.
    return this.#drive(this.#next(out.slice(), keys), keys, { loader, options, failures: new Map(), background });
  }

  /**
   * The core's output, read at once (the values of a finished read are the
   * next read's after the next call): notify steps done, writes kept, then
   * the step to answer (with the read's id) or the outcome.
   */
  #next(out, keys) {
    const r = new Reader(out);
    const writes = [];
    let step = readStep(r);
    for (; step.kind === 'notify' || step.kind === 'store' || step.kind === 'delete'; step = readStep(r)) {
      if (step.kind === 'notify') this.#notify(step.waits);
      else writes.push(step);
    }
    if (step.kind === 'done') return { writes, outcome: readResults(r, keys, slots, this.#sources) };
    return { writes, step, id: r.u32() };
  }

  async #drive(next, keys, read) {
    const writes = [];
    try {
      for (;;) {
        writes.push(...next.writes);
        if (next.outcome) {
          next.outcome.failures = read.failures;
          await this.#writes.behind(writes, read.options, read.background);
          return next.outcome;
        }
        next = await this.#answer(next.id, next.step, keys, read);
      }
    } catch (error) {
      const cancelled = next.id === undefined ? NONE : this.#core.answer(next.id, CANCEL, NONE, NONE, 0);
      if (cancelled.length) this.#notify(readStep(new Reader(cancelled)).waits);
      await this.#writes.behind(writes, read.options, read.background);
      throw error;
    }
  }

  /** Does what `step` asks; the core's next output, read. */
  async #answer(id, step, keys, { loader, failures }) {
    // Read at once: the values of a finished read are the next read's after the next call.
    const reply = (...answer) => this.#next(this.#core.answer(id, ...answer), keys);
    const now = () => this.#clock();
    switch (step.kind) {
      case 'fetch':
      case 'lease': {
        const tier = this.#tiers[step.tier];
        const name = this.#names[step.tier];
        const call = step.kind === 'fetch' ? 'getMany' : 'add';
        let answer;
        try {
          let got = await withTimeout(tier[call](step.kind === 'fetch' ? step.keys : step.entries), tier.timeoutMs ?? this.#tierTimeoutMs, `${call} on tier ${name}`);
          if (step.kind === 'lease') answer = [LEASED, Uint8Array.from(step.entries, (_, i) => (got?.[i] ? 1 : 0)), NONE, 0];
          else {
            // `{ values, failed }`: keys the tier could not answer (their server is down) go on to the next tier.
            const failed = got && !Array.isArray(got) && Array.isArray(got.values) ? new Set(got.failed ?? NONE) : null;
            if (failed) got = got.values;
            if (!Array.isArray(got) || got.length !== step.keys.length) {
              throw new StratacacheError(`stratacache: tier ${name} getMany returned ${Array.isArray(got) ? got.length : typeof got} values for ${step.keys.length} keys`, { kind: 'tier' });
            }
            const lengths = new Uint32Array(got.length);
            const parts = [];
            let total = 0;
            got.forEach((v, i) => {
              const bytes = failed?.has(step.keys[i]) ? undefined : toBytes(v, name, step.keys[i]);
              lengths[i] = bytes === undefined ? KEY_FAILED : bytes === null ? NOT_FOUND : bytes.length;
              if (bytes) parts.push(bytes), (total += bytes.length);
            });
            answer = [FETCHED, concat(parts, total), lengths, 0];
          }
        } catch (error) {
          this.#report(error, name);
          answer = [FAILED, encoder.encode(message(error)), NONE, now()];
        }
        return reply(...answer);
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
        fileValues(values);
        return reply(DECODED, NONE, failed, 0);
      }
      case 'load':
        return this.#load(reply, this.#userKeys(step.keys, keys), loader, failures);
      case 'sleep':
        await new Promise((resolve) => setTimeout(resolve, step.ms));
        return reply(SLEPT, NONE, NONE, now());
      case 'wait':
        await this.#wait(step.waits);
        return reply(WOKE, NONE, NONE, 0);
      default:
        throw new Error(`stratacache: unknown step ${step.kind}`);
    }
  }

  /** The caller's keys for the remote keys of a load step (the core maps keys with plainKey). */
  #userKeys(remote, keys) {
    const back = new Map(keys.map((k) => [plainKey(k), k]));
    return remote.map((k) => back.get(k) ?? k);
  }

  async #load(reply, keys, loader, failures) {
    const n = keys.length;
    const started = Date.now();
    const lengths = new Uint32Array(2 * n);
    const parts = [];
    let total = 0;
    const fail = (i, error) => {
      const text = encoder.encode(message(error));
      failures.set(keys[i], error);
      lengths.set([text.length, 255], 2 * i);
      parts.push(text), (total += text.length);
    };
    let loaded;
    try {
      if (!loader) throw new StratacacheError('stratacache: no loader', { kind: 'loader' });
      loaded = await withTimeout(loader(keys.slice()), this.#loadTimeoutMs, `the loader for ${n} key(s)`);
      if (loaded instanceof Map) loaded = keys.map((k) => loaded.get(k));
      if (!Array.isArray(loaded) || loaded.length !== n) {
        throw new StratacacheError(`stratacache: the loader returned ${Array.isArray(loaded) ? `${loaded.length} values` : typeof loaded} for ${n} keys; return an array in key order or a Map`, { kind: 'loader' });
      }
    } catch (error) {
      const wrapped = error instanceof StratacacheError ? error : new StratacacheError(`stratacache: the loader failed: ${message(error)}`, { kind: 'loader', cause: error });
      for (let i = 0; i < n; i++) fail(i, wrapped);
      fileValues(new Array(n));
      return reply(LOADED, concat(parts, total), lengths, Date.now() - started);
    }
    const ms = Date.now() - started;
    for (let i = 0; i < n; i++) {
      try {
        const [codec, payload] = serialize(loaded[i], keys[i]);
        lengths.set([payload.length, codec], 2 * i);
        parts.push(payload), (total += payload.length);
      } catch (error) {
        fail(i, error);
      }
    }
    fileValues(loaded);
    return reply(LOADED, concat(parts, total), lengths, ms);
  }

  /** Reloads `key` and writes it to every tier, in the background. */
  #refresh(key, loader, options) {
    const reload = async () => {
      const out = this.#read([key], LOAD | FORCE_MISS | SKIP_REQUEST, loader, { ttlMs: options?.ttlMs }, true);
      if (out instanceof Promise) await out;
    };
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
    let entry = this.#waiters.get(id);
    if (entry === undefined) {
      let resolve;
      const promise = new Promise((r) => (resolve = r));
      this.#waiters.set(id, (entry = { promise, resolve }));
    }
    return entry;
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
