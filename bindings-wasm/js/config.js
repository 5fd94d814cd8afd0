// What TieredCache checks before the core sees it: options flattened into
// the numbers the wasm constructor takes (src/tiered.rs, `Tiered::new`),
// keys and TTLs, and the error type. No caching rule lives here.

import { checkWellFormed } from './key.js';
import { encodeKeys } from './wire.js';
import { checkKey } from './local.js';

/** An error of a tier, a loader or a strict read. `kind`: timeout, tier, loader, decode, tier_failure, answer_error. */
export class StratacacheError extends Error {
  constructor(message, { kind, cause, key } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'StratacacheError';
    this.kind = kind;
    if (key !== undefined) this.key = key;
  }
}

// Tier kinds by the code the wasm side takes.
const TIER_KINDS = ['memcached', 'redis', 'workers_kv', 'storage'];
const TIER_FIELDS = ['itemLimit', 'maxTtlMs', 'minTtlMs', 'storage', 'backfill', 'replicas', 'leases'];
// The global numbers, in the order src/tiered.rs reads them: these options, a
// lease flag, these of options.lease, these of options.cooldown. The local
// tier's numbers come on their own. The tests of src/tiered.rs check each
// field against the core's serde configuration of that name.
const GLOBAL_FIELDS = ['compressAt', 'defaultTtlMs', 'staleMs', 'ttlJitter', 'xfetchBeta', 'refreshTimeoutMs', 'strict', 'maxPayloadLen'];
const LEASE_FIELDS = ['ttlMs', 'maxWaitMs', 'pollIntervalMs'];
const COOLDOWN_FIELDS = ['failuresToTrip', 'cooldownMs'];
const LOCAL_FIELDS = ['maxEntries', 'maxBytes', 'ttlMs'];

export function message(error) {
  return error instanceof Error ? error.message : String(error);
}

/** `promise`, or a StratacacheError of kind "timeout" after `ms`. */
export function withTimeout(promise, ms, what) {
  if (!(ms > 0) || ms === Infinity) return Promise.resolve(promise);
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new StratacacheError(`stratacache: ${what} timed out after ${ms} ms`, { kind: 'timeout' })), ms);
  });
  return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer));
}

export function checkTier(tier, index) {
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
  if (tier.leases && typeof tier.add !== 'function') {
    throw new TypeError(`stratacache: tier ${tier.name ?? `tier${index}`} has leases on but no add() method`);
  }
  return tier.name ?? `tier${index}`;
}

function signingKeys(keys) {
  if (keys === undefined || keys === null) return [];
  const list = Array.isArray(keys) ? keys : Object.entries(keys).map(([id, secret]) => ({ id, secret }));
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

/** The arguments of the wasm `Tiered` constructor for `tiers` named `names` (see src/tiered.rs). */
export function coreConfig(tiers, names, options) {
  const tierNumbers = Float64Array.from(tiers.flatMap((t) => [TIER_KINDS.indexOf(t.kind ?? 'memcached'), ...TIER_FIELDS.map((f) => num(t[f]))]));
  const local = options.local === false || options.local === null ? [] : LOCAL_FIELDS.map((f) => num(options.local?.[f]));
  const keys = signingKeys(options.signingKeys);
  const secrets = new Uint8Array(keys.reduce((n, k) => n + k.secret.length, 0));
  keys.reduce((at, { secret }) => (secrets.set(secret, at), at + secret.length), 0);
  const lease = options.lease !== null && typeof options.lease === 'object' ? options.lease : undefined;
  const cooldown = options.cooldown ?? {};
  const numbers = [...GLOBAL_FIELDS.map((f) => options[f]), lease !== undefined, ...LEASE_FIELDS.map((f) => lease?.[f]), ...COOLDOWN_FIELDS.map((f) => cooldown[f])];
  // Copies: the bytes of joined() are a view of a buffer the next call reuses.
  const [nameBytes, nameLengths] = joined(names);
  return [nameBytes.slice(), nameLengths, tierNumbers, Float64Array.from(local), ...joined(keys.map((k) => k.id)), secrets, Uint32Array.from(keys, (k) => k.secret.length), Float64Array.from(numbers, num)];
}

export function ttlOf(options) {
  const ttl = options?.ttlMs;
  if (ttl === undefined || ttl === null) return NaN;
  if (typeof ttl !== 'number' || Number.isNaN(ttl)) throw new TypeError(`stratacache: ttlMs must be a number of milliseconds, got ${ttl}`);
  return ttl;
}

export function checkKeys(keys) {
  if (!Array.isArray(keys)) throw new TypeError(`stratacache: keys must be an array of strings, got ${keys === null ? 'null' : typeof keys}`);
  for (const key of keys) if (typeof key !== 'string') checkOne(key);
}

export function checkOne(key) {
  checkKey(key);
  checkWellFormed(key, 'the key');
}

const encoder = new TextEncoder();
let scratch = new Uint8Array(4096);

/**
 * `[the keys' UTF-8 bytes one after another, their lengths]`: how keys
 * cross to the wasm side (one copy of bytes instead of two calls per key).
 * The bytes are a view of a shared buffer: valid until the next call.
 */
export function joined(keys) {
  const all = keys.join('');
  if (scratch.length < all.length * 3) scratch = new Uint8Array(all.length * 3);
  const lengths = new Uint32Array(keys.length);
  return [scratch.subarray(0, encodeKeys(keys, all, scratch, lengths, 0)), lengths];
}

/** `parts` (Uint8Arrays) one after another. */
export function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
