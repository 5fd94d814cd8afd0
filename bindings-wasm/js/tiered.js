// TieredCache: drives the core's sans-I/O read machine with `await`.
//
// Every decision (which tier to ask, back-fill, chunking, envelopes,
// signatures, expiry, XFetch and stale-while-revalidate refresh, single
// flight, cool-down of failing tiers) is the core's. This file does the I/O
// the core asks for: tier calls with timeouts, the loader, (de)serializing
// payloads, and waking waiting reads (the core's Wait/Notify ids, mapped to
// promises, give single-flight across concurrent requests of one isolate).

import { Tiered } from './stratacache_core.js';
import { serialize, deserialize } from './codec.js';
import { RequestCache, SHARE } from './request.js';
import { decodeStep, decodeSteps, decodeResults } from './wire.js';
import { checkWellFormed, plainKey } from './key.js';

const READ_LOAD = 1;
const READ_FORCE_MISS = 2;
const READ_SKIP_REQUEST = 4;

// Tier kinds by the code the wasm side takes.
const TIER_KINDS = ['memcached', 'redis', 'workers_kv', 'storage'];
// Result sources by code (16 + i: remote tier i).
const SOURCES = [null, 'request', 'local', 'loader', 'flight'];

/** An error of a tier, a loader or a strict read. `kind`: timeout, tier, loader, tier_failure. */
export class StratacacheError extends Error {
  constructor(message, { kind, cause, key } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'StratacacheError';
    this.kind = kind;
    if (key !== undefined) this.key = key;
  }
}

/** `skipped_cooling_down` -> `skippedCoolingDown` (the core names its counters once). */
function camelCase(name) {
  return name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

function random53() {
  return Math.floor(Math.random() * 2 ** 53);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `promise`, or a StratacacheError of kind "timeout" after `ms`. */
function withTimeout(promise, ms, what) {
  if (!(ms > 0) || ms === Infinity) return Promise.resolve(promise);
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new StratacacheError(`stratacache: ${what} timed out after ${ms} ms`, { kind: 'timeout' })), ms);
  });
  return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer));
}

/** The core refused an answer (the wrong step, or the wrong number of values). */
function answered(accepted) {
  if (!accepted) throw new StratacacheError('stratacache: the core refused an answer to the wrong step or with the wrong number of values (a driver bug)', { kind: 'answer_error' });
}

function message(error) {
  return error instanceof Error ? error.message : String(error);
}

function toBytes(value, tierName, key) {
  if (value === null || value === undefined) return null;
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new StratacacheError(
    `stratacache: tier ${tierName} returned ${typeof value} for key ${JSON.stringify(key)}; getMany must give a Uint8Array or null per key`,
    { kind: 'tier' },
  );
}

function normalizeTier(tier, index) {
  if (tier === null || typeof tier !== 'object') {
    throw new TypeError(`stratacache: tier ${index} is ${tier}; give an adapter such as kvTier(env.CACHE) or memoryTier()`);
  }
  for (const method of ['getMany', 'setMany', 'deleteMany']) {
    if (typeof tier[method] !== 'function') {
      throw new TypeError(`stratacache: tier ${index} (${tier.name ?? 'unnamed'}) has no ${method}() method; see the adapter interface in docs/wasm.md`);
    }
  }
  const kind = tier.kind ?? 'memcached';
  if (!TIER_KINDS.includes(kind)) {
    throw new TypeError(`stratacache: tier ${index} has kind ${JSON.stringify(kind)}; use memcached, redis, workers_kv or storage`);
  }
  const name = tier.name ?? `tier${index}`;
  const config = { name, kind };
  for (const field of ['itemLimit', 'minTtlMs', 'maxTtlMs', 'storage', 'backfill', 'replicas', 'leases']) {
    if (tier[field] !== undefined) config[field] = tier[field];
  }
  if (config.leases && typeof tier.add !== 'function') {
    throw new TypeError(`stratacache: tier ${name} has leases on but no add() method`);
  }
  return config;
}

function normalizeSigningKeys(keys) {
  if (keys === undefined || keys === null) return undefined;
  const list = Array.isArray(keys) ? keys : Object.entries(keys).map(([id, secret]) => ({ id, secret }));
  const encoder = new TextEncoder();
  return list.map((entry, i) => {
    const { id, secret } = Array.isArray(entry) ? { id: entry[0], secret: entry[1] } : entry;
    if (typeof id !== 'string') throw new TypeError(`stratacache: signing key ${i} needs a string id, such as "2025a"`);
    let bytes = secret;
    if (typeof secret === 'string') bytes = encoder.encode(secret);
    else if (secret instanceof ArrayBuffer) bytes = new Uint8Array(secret);
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`stratacache: signing key ${JSON.stringify(id)} needs a secret (string or Uint8Array)`);
    return { id, secret: bytes };
  });
}

/** A config number for the wasm side: NaN when not given (the core's default). */
function num(value) {
  if (value === undefined) return NaN;
  if (value === null) return Infinity;
  if (typeof value === 'boolean') return value ? 1 : 0;
  return Number(value);
}

/** The arguments of the wasm `Tiered` constructor (see src/tiered.rs). */
function coreConfig(tiers, options) {
  const names = tiers.map((t) => t.name);
  const tierNumbers = new Float64Array(tiers.length * 8);
  tiers.forEach((t, i) => {
    tierNumbers.set([TIER_KINDS.indexOf(t.kind), num(t.itemLimit), num(t.maxTtlMs), num(t.minTtlMs), num(t.storage), num(t.backfill), num(t.replicas), num(t.leases)], i * 8);
  });
  const local = options.local === false || options.local === null ? [] : [num(options.local?.maxEntries), num(options.local?.maxBytes), num(options.local?.ttlMs)];
  const keys = normalizeSigningKeys(options.signingKeys) ?? [];
  // The secrets one after another; the wasm side cuts them by length.
  const secrets = new Uint8Array(keys.reduce((n, k) => n + k.secret.length, 0));
  let at = 0;
  for (const { secret } of keys) {
    secrets.set(secret, at);
    at += secret.length;
  }
  const lease = options.lease !== null && typeof options.lease === 'object' ? options.lease : undefined;
  const cooldown = options.cooldown ?? {};
  const numbers = [
    options.compressAt,
    options.defaultTtlMs,
    options.staleMs,
    options.ttlJitter,
    options.xfetchBeta,
    options.refreshTimeoutMs,
    options.strict,
    options.maxPayloadLen,
    lease !== undefined,
    lease?.ttlMs,
    lease?.maxWaitMs,
    lease?.pollIntervalMs,
    cooldown.failuresToTrip,
    cooldown.cooldownMs,
  ].map(num);
  // Copies: the bytes of joined() are a view of a buffer the next call reuses.
  const [nameBytes, nameLengths] = joined(names);
  const tierNames = [nameBytes.slice(), nameLengths];
  return [...tierNames, tierNumbers, Float64Array.from(local), ...joined(keys.map((k) => k.id)), secrets, Uint32Array.from(keys, (k) => k.secret.length), Float64Array.from(numbers)];
}

function ttlOf(options) {
  const ttl = options?.ttlMs;
  if (ttl === undefined || ttl === null) return NaN;
  if (typeof ttl !== 'number' || Number.isNaN(ttl)) throw new TypeError(`stratacache: ttlMs must be a number of milliseconds, got ${ttl}`);
  return ttl;
}

function checkKeys(keys) {
  if (!Array.isArray(keys)) throw new TypeError(`stratacache: keys must be an array of strings, got ${keys === null ? 'null' : typeof keys}`);
  for (const key of keys) checkOne(key);
}

function checkOne(key) {
  if (typeof key !== 'string') {
    const shown = key === null ? 'null' : typeof key === 'object' ? 'an object' : `${typeof key} ${String(key)}`;
    throw new TypeError(`stratacache: keys must be strings, got ${shown}; build keys with Key#build(), or pass any string`);
  }
  // Any string is a key (the core maps it with plainKey), but a lone
  // surrogate has no UTF-8 form and would merge with U+FFFD.
  checkWellFormed(key, 'the key');
}

const encoder = new TextEncoder();
let scratch = new Uint8Array(4096);

/**
 * `[the strings' UTF-8 bytes one after another, their lengths]`: how
 * strings cross to the wasm side (one copy of bytes instead of two calls per
 * string; a 100-key read 25% faster). TextEncoder encodes a lone surrogate
 * as U+FFFD, as the wasm glue would. The bytes are a view of a shared
 * buffer: valid until the next call.
 */
function joined(strings) {
  const all = strings.join('');
  if (scratch.length < all.length * 3) scratch = new Uint8Array(all.length * 3);
  const { written } = encoder.encodeInto(all, scratch);
  const lengths = new Uint32Array(strings.length);
  const ascii = written === all.length;
  for (let i = 0; i < strings.length; i++) lengths[i] = ascii ? strings[i].length : encoder.encode(strings[i]).length;
  return [scratch.subarray(0, written), lengths];
}

/** The host's keys for the remote keys a load step names (the core maps keys with plainKey). */
function userKeysOf(remoteKeys, userKeys) {
  const back = new Map(userKeys.map((k) => [plainKey(k), k]));
  return remoteKeys.map((k) => back.get(k) ?? k);
}

/** Errors thrown by the wasm side are already TypeErrors with a full message. */
function keyError(error) {
  return error;
}

export class TieredCache {
  #core;
  #tiers;
  #clock;
  #tierTimeoutMs;
  #loadTimeoutMs;
  #onError;
  #waiters = new Map();
  #background = new Set();
  /** Writes of reads handed to waitUntil (off the request path): docs/fleet.md. */
  #handedOff = { queued: 0, written: 0, failed: 0 };
  #names;
  #hasLocal;
  #statNames;

  /**
   * @param {object} options  see docs/wasm.md and index.d.ts (TieredCacheOptions)
   */
  constructor(options = {}) {
    const tiers = options.tiers ?? [];
    if (!Array.isArray(tiers)) throw new TypeError('stratacache: tiers must be an array of adapters');
    const config = tiers.map(normalizeTier);
    this.#core = new Tiered(...coreConfig(config, options));
    this.#names = config.map((t) => t.name);
    this.#hasLocal = !(options.local === false || options.local === null);
    this.#tiers = tiers;
    this.#clock = options.clock ?? Date.now;
    this.#tierTimeoutMs = options.tierTimeoutMs ?? 5_000;
    this.#loadTimeoutMs = options.loadTimeoutMs ?? 30_000;
    this.#onError = options.onError;
  }

  /** `{ hit, value, source }` for `key`: request, local and remote tiers, no loader. */
  async get(key, options) {
    checkOne(key);
    const [result] = (await this.#read([key], 0, undefined, options)).results;
    return { hit: result.hit, value: result.value, source: result.source };
  }

  /** One `{ key, hit, value, source }` per key, in order; each remote tier is asked once for all. */
  async getMany(keys, options) {
    checkKeys(keys);
    return (await this.#read(keys, 0, undefined, options)).results;
  }

  /**
   * The value of `key`, loading it with `loader(key)` if no tier has it
   * (once per isolate, however many requests ask at the same time).
   */
  async getOrLoad(key, loader, options) {
    checkOne(key);
    if (typeof loader !== 'function') throw new TypeError('stratacache: getOrLoad(key, loader) needs a loader function');
    const load = async (keys) => [await loader(keys[0])];
    const { results, errors, failures } = await this.#read([key], this.#loadFlags(options), load, options);
    if (errors?.has(0) && !results[0].hit) throw failures.get(key) ?? new StratacacheError(`stratacache: loading ${JSON.stringify(key)} failed: ${errors.get(0)}`, { kind: 'loader', key });
    return results[0].value;
  }

  /**
   * The values of `keys`, in order; keys no tier has are loaded in one
   * batch with `loader(missingKeys)`, which returns their values in order
   * (an array) or a Map from key to value.
   */
  async getManyOrLoad(keys, loader, options) {
    checkKeys(keys);
    if (typeof loader !== 'function') throw new TypeError('stratacache: getManyOrLoad(keys, loader) needs a loader function');
    const { results, errors, failures } = await this.#read(keys, this.#loadFlags(options), loader, options);
    for (const [i, error] of errors ?? []) {
      const { key, hit } = results[i];
      if (!hit) throw failures.get(key) ?? new StratacacheError(`stratacache: loading ${JSON.stringify(key)} failed: ${error}`, { kind: 'loader', key });
    }
    return results.map((r) => r.value);
  }

  /** Writes `value` to every tier (request and local now, remote tiers awaited). `ttlMs` <= 0 deletes. */
  async setAllTiers(key, value, options) {
    checkOne(key);
    const [codec, payload] = serialize(value, key);
    const request = this.#request(options);
    let steps;
    try {
      steps = decodeSteps(this.#core.setAllTiers(key, value, codec, payload, ttlOf(options), this.#clock(), random53(), request));
    } catch (error) {
      throw keyError(error);
    }
    await this.#runWrites(steps);
  }

  /** Removes `key` from every tier. */
  async deleteAllTiers(key, options) {
    checkOne(key);
    let steps;
    try {
      steps = decodeSteps(this.#core.deleteAllTiers(key, this.#clock(), this.#request(options)));
    } catch (error) {
      throw keyError(error);
    }
    await this.#runWrites(steps);
  }

  /** Counters: `{ reads, tiers, local, flights }`. */
  stats() {
    const values = this.#core.stats();
    if (this.#statNames === undefined) {
      const [reads, tier, local, flights] = this.#core.statNames().split('|').map((names) => names.split(',').map(camelCase));
      this.#statNames = { reads, tier, local, flights };
    }
    const { reads, tier, local, flights } = this.#statNames;
    let at = 0;
    const take = (names) => Object.fromEntries(names.map((name) => [name, values[at++]]));
    const stats = { reads: take(reads) };
    stats.tiers = this.#names.map((name) => ({ name, ...take(tier) }));
    stats.local = this.#hasLocal ? take(local) : null;
    stats.flights = take(flights);
    stats.background = { ...this.#handedOff };
    return stats;
  }

  /** Empties this isolate's local tier. */
  clearLocal() {
    this.#core.clearLocal();
  }

  /** Resolves when every background write and refresh started without a waitUntil has settled. */
  async settled() {
    while (this.#background.size) await Promise.allSettled([...this.#background]);
  }

  // ---- internals ---------------------------------------------------------

  #loadFlags(options) {
    let flags = READ_LOAD;
    if (options?.forceMiss) flags |= READ_FORCE_MISS;
    return flags;
  }

  #request(options) {
    const request = options?.request;
    if (request === undefined || request === null) return undefined;
    if (!(request instanceof RequestCache)) throw new TypeError('stratacache: options.request must be a RequestCache');
    return request[SHARE]();
  }

  /** Hands background work to waitUntil (ctx.waitUntil in a worker), or tracks it for settled(). */
  #spawn(promise, options) {
    const waitUntil = options?.waitUntil ?? (options?.ctx ? (p) => options.ctx.waitUntil(p) : undefined);
    const guarded = promise.catch((error) => this.#report(error));
    if (waitUntil) {
      waitUntil(guarded);
    } else {
      this.#background.add(guarded);
      guarded.finally(() => this.#background.delete(guarded));
    }
    return guarded;
  }

  #report(error, tier) {
    if (this.#onError) {
      try {
        this.#onError(error, tier);
      } catch {
        // An error handler that throws must not break a read.
      }
    }
  }

  async #read(keys, flags, loader, options) {
    const ttl = ttlOf(options);
    const request = this.#request(options);
    let read;
    try {
      read = this.#start(keys, flags, ttl, request);
    } catch (error) {
      throw keyError(error);
    }
    const failures = new Map();
    const outcome = await this.#drive(read, keys, loader, options, failures);
    if (loader) for (const i of outcome.refresh ?? []) this.#refresh(keys[i], loader, options);
    outcome.failures = failures;
    return outcome;
  }

  /** Reloads `key` and writes it to every tier, in the background. */
  #refresh(key, loader, options) {
    const reload = async () => {
      const read = this.#start([key], READ_LOAD | READ_FORCE_MISS | READ_SKIP_REQUEST, ttlOf(options), undefined);
      await this.#drive(read, [key], loader, { ...options, waitUntil: undefined, ctx: undefined }, new Map());
    };
    const promise = this.#spawn(reload(), options);
    options?.onRefresh?.(promise);
  }

  /** A read of `keys` in the core. */
  #start(keys, flags, ttl, request) {
    const [all, lengths] = joined(keys);
    return this.#core.read(all, lengths, flags, ttl, this.#clock(), random53(), request);
  }

  async #drive(read, keys, loader, options, failures) {
    const writes = [];
    try {
      for (;;) {
        const step = decodeStep(read.next());
        switch (step.kind) {
          case 'fetch':
            await this.#fetch(read, step);
            break;
          case 'decode':
            this.#decode(read, step);
            break;
          case 'lease':
            await this.#lease(read, step);
            break;
          case 'sleep':
            await sleep(step.ms);
            answered(read.slept(this.#clock()));
            break;
          case 'load':
            await this.#load(read, { ...step, keys: userKeysOf(step.keys, keys) }, loader, failures);
            break;
          case 'notify':
            this.#notify(step.waits);
            break;
          case 'wait':
            await this.#wait(step.waits);
            answered(read.woke());
            break;
          case 'store':
          case 'delete':
            writes.push(this.#write(step));
            break;
          case 'done': {
            const outcome = read.finish();
            const results = decodeResults(outcome, keys, read.values(), (code) => (code >= 16 ? this.#names[code - 16] : SOURCES[code]));
            await this.#settleWrites(writes, options);
            return results;
          }
          default:
            throw new Error(`stratacache: unknown step ${step.kind}`);
        }
      }
    } catch (error) {
      this.#notify(read.cancel());
      await this.#settleWrites(writes, options);
      throw error;
    } finally {
      read.free();
    }
  }

  async #settleWrites(writes, options) {
    if (writes.length === 0) return;
    const all = Promise.all(writes);
    if (options?.waitUntil || options?.ctx) {
      // Off the request path: the response goes out, the host keeps the
      // isolate alive for the writes (ctx.waitUntil), they are counted.
      const counts = this.#handedOff;
      counts.queued += writes.length;
      this.#spawn(
        all.then((done) => {
          for (const ok of done) ok ? counts.written++ : counts.failed++;
        }),
        options,
      );
    } else await all;
  }

  async #fetch(read, step) {
    const adapter = this.#tiers[step.tier];
    const name = adapter.name ?? `tier${step.tier}`;
    let values;
    let failed;
    try {
      let got = await withTimeout(adapter.getMany(step.keys), adapter.timeoutMs ?? this.#tierTimeoutMs, `getMany on tier ${name}`);
      // `{ values, failed }`: some keys could not be answered (their server
      // is down); they go on to the next tier, the others are kept.
      if (got && !Array.isArray(got) && Array.isArray(got.values)) {
        failed = new Set(got.failed ?? []);
        got = got.values;
      }
      if (!Array.isArray(got) || got.length !== step.keys.length) {
        throw new StratacacheError(`stratacache: tier ${name} getMany returned ${Array.isArray(got) ? got.length : typeof got} values for ${step.keys.length} keys`, { kind: 'tier' });
      }
      values = got.map((v, i) => (failed?.has(step.keys[i]) ? undefined : toBytes(v, name, step.keys[i])));
    } catch (error) {
      this.#report(error, name);
      read.failed(step.tier, message(error), this.#clock());
      return;
    }
    values.forEach((value, i) => {
      if (failed?.has(step.keys[i])) read.fetchFailed();
      else read.fetchedValue(value ?? undefined);
    });
    answered(read.fetched(step.tier));
  }

  #decode(read, step) {
    for (const item of step.items) {
      let value;
      try {
        value = deserialize(item.codec, item.payload);
      } catch (error) {
        this.#report(new StratacacheError(`stratacache: the value of ${JSON.stringify(item.key)} could not be decoded: ${message(error)}`, { kind: 'decode', cause: error }));
        read.decodeFailed();
        continue;
      }
      read.decodedValue(value);
    }
    answered(read.decoded());
  }

  async #lease(read, step) {
    const adapter = this.#tiers[step.tier];
    try {
      const taken = await withTimeout(adapter.add(step.entries), adapter.timeoutMs ?? this.#tierTimeoutMs, `add on tier ${adapter.name}`);
      answered(read.leased(Uint8Array.from(step.entries, (_, i) => (taken?.[i] ? 1 : 0))));
    } catch (error) {
      this.#report(error, adapter.name);
      read.failed(step.tier, message(error), this.#clock());
    }
  }

  async #load(read, step, loader, failures) {
    const keys = step.keys;
    const n = keys.length;
    const started = Date.now();
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
      for (const key of keys) {
        read.loadFailed(message(wrapped));
        failures.set(key, wrapped);
      }
      answered(read.loaded(Date.now() - started));
      return;
    }
    const ms = Date.now() - started;
    for (let i = 0; i < n; i++) {
      let codec;
      let payload;
      try {
        [codec, payload] = serialize(loaded[i], keys[i]);
      } catch (error) {
        read.loadFailed(message(error));
        failures.set(keys[i], error);
        continue;
      }
      read.loadedValue(loaded[i], codec, payload);
    }
    answered(read.loaded(ms));
  }

  #waiter(id) {
    let entry = this.#waiters.get(id);
    if (entry === undefined) {
      let resolve;
      const promise = new Promise((r) => {
        resolve = r;
      });
      entry = { promise, resolve };
      this.#waiters.set(id, entry);
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

  async #write(step) {
    const adapter = this.#tiers[step.tier];
    const name = adapter.name ?? `tier${step.tier}`;
    const timeout = adapter.timeoutMs ?? this.#tierTimeoutMs;
    try {
      if (step.kind === 'store') {
        // Chunks first, the manifest (under the main key) last.
        const chunks = step.entries.filter((e) => e.key.startsWith('tiercache.chunk|'));
        const rest = chunks.length ? step.entries.filter((e) => !e.key.startsWith('tiercache.chunk|')) : step.entries;
        if (chunks.length) await withTimeout(adapter.setMany(chunks), timeout, `setMany on tier ${name}`);
        await withTimeout(adapter.setMany(rest), timeout, `setMany on tier ${name}`);
      } else {
        await withTimeout(adapter.deleteMany(step.keys), timeout, `deleteMany on tier ${name}`);
      }
      return true;
    } catch (error) {
      this.#core.tierFailed(step.tier, this.#clock());
      // Writes are best effort: counted (and cooling the tier down after
      // repeated failures), reported to onError, never thrown.
      this.#report(error, name);
      return false;
    }
  }

  async #runWrites(steps) {
    await Promise.all(steps.map((step) => this.#write(step)));
  }
}
