// Reads the byte layout in which the wasm side hands over steps and read
// results (bindings-wasm/src/wire.rs, src/tiered.rs `advance`): little-endian u8, u32 and f64;
// strings and bytes are a u32 length and the bytes. Byte fields are views
// into the buffer (a copy out of wasm memory that JS owns), not copies.

import { checkWellFormed } from './key.js';

const utf8 = new TextDecoder();
const encoder = new TextEncoder();

/**
 * Writes `keys` as the wasm side reads them (one copy, no call per key):
 * their UTF-8 bytes one after another into `bytes` (room for 3 per UTF-16
 * unit of `all`, the keys joined), each one's byte length into
 * `lengths[at...]`. Returns the number of bytes.
 */
export function encodeKeys(keys, all, bytes, lengths, at) {
  const { written } = encoder.encodeInto(all, bytes);
  if (written === all.length) {
    for (let i = 0; i < keys.length; i++) lengths[at + i] = keys[i].length;
  } else {
    for (let i = 0; i < keys.length; i++) {
      // Any string is a key (the core maps it with plainKey), but a lone
      // surrogate has no UTF-8 form and would merge with U+FFFD.
      checkWellFormed(keys[i], 'the key');
      lengths[at + i] = encoder.encode(keys[i]).length;
    }
  }
  return written;
}

export class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.at = 0;
  }

  u8() {
    return this.bytes[this.at++];
  }

  u32() {
    const v = this.view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }

  f64() {
    const v = this.view.getFloat64(this.at, true);
    this.at += 8;
    return v;
  }

  bytesField() {
    const n = this.u32();
    const v = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }

  str() {
    return utf8.decode(this.bytesField());
  }

  strs() {
    const n = this.u32();
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.str();
    return out;
  }

  list(item) {
    const n = this.u32();
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = item(this);
    return out;
  }
}

/**
 * Where a read's keys go in wasm memory (`Tiered#keyBuffers`, no string
 * crosses) and where its output comes back: views of the whole memory,
 * rebuilt when it grows (a growth detaches them).
 */
export class WasmIo {
  #core;
  #memory;
  #keyBytes = 0;
  #keyLengths = 0;
  #byteRoom = 0;
  #keyRoom = 0;
  #u8 = new Uint8Array(0);
  #u32 = new Uint32Array(0);

  constructor(core, memory) {
    this.#core = core;
    this.#memory = memory;
  }

  /** Writes `keys` for the next `read`; the number of bytes. */
  keys(keys) {
    const n = keys.length;
    const all = n === 1 ? keys[0] : keys.join('');
    const most = all.length * 3;
    if (most > this.#byteRoom || n > this.#keyRoom) {
      this.#byteRoom = Math.max(most, 2 * this.#byteRoom, 1024);
      this.#keyRoom = Math.max(n, 2 * this.#keyRoom, 64);
      [this.#keyBytes, this.#keyLengths] = this.#core.keyBuffers(this.#byteRoom, this.#keyRoom);
    }
    this.#views();
    return encodeKeys(keys, all, this.#u8.subarray(this.#keyBytes, this.#keyBytes + most), this.#u32, this.#keyLengths >>> 2);
  }

  /** The output of `read` at `at` (a u32 length, then the bytes): a view, valid until the next call into wasm. */
  output(at) {
    this.#views();
    const u8 = this.#u8;
    return u8.subarray(at + 4, at + 4 + (u8[at] | (u8[at + 1] << 8) | (u8[at + 2] << 16) | (u8[at + 3] << 24)));
  }

  #views() {
    if (this.#u8.byteLength > 0) return;
    this.#u8 = new Uint8Array(this.#memory.buffer);
    this.#u32 = new Uint32Array(this.#memory.buffer);
  }
}

// A result's flags, as src/tiered.rs writes them.
const HIT = 1, REFRESH = 2, ERROR = 4;

// Step kinds by code, as src/tiered.rs writes them.
const KINDS = ['done', 'fetch', 'decode', 'lease', 'sleep', 'load', 'notify', 'wait', 'store', 'delete'];

export function readStep(r) {
  const kind = KINDS[r.u8()];
  switch (kind) {
    case 'fetch':
      return { kind, tier: r.u32(), keys: r.strs() };
    case 'decode':
      return { kind, items: r.list(() => ({ key: r.str(), codec: r.str(), payload: r.bytesField() })) };
    case 'lease':
      return { kind, tier: r.u32(), entries: r.list(() => ({ key: r.str(), value: r.bytesField(), ttlMs: r.f64() })) };
    case 'sleep':
      return { kind, ms: r.f64() };
    case 'load':
      return { kind, keys: r.strs() };
    case 'notify':
    case 'wait':
      return { kind, waits: r.list(() => r.f64()) };
    case 'store': {
      const tier = r.u32();
      const entries = r.list(() => {
        const key = r.str();
        const value = r.bytesField();
        const ttl = r.f64();
        return { key, value, ttlMs: Number.isNaN(ttl) ? null : ttl };
      });
      return { kind, tier, entries };
    }
    case 'delete':
      return { kind, tier: r.u32(), keys: r.strs() };
    case 'done':
      return { kind };
    default:
      throw new Error('stratacache: the wasm module sent an unknown step; the package files do not match');
  }
}

/** The steps of a write (setAllTiers, deleteAllTiers). */
export function decodeSteps(bytes) {
  const r = new Reader(bytes);
  const steps = [];
  while (r.at < bytes.length) steps.push(readStep(r));
  return steps;
}

/**
 * The results of a finished read of `keys` (after its done step in `r`):
 * `results` holds `{ key, hit, value, source }` per key, in order, a hit's
 * value read from `slots` by the number the core sent; `errors` (a Map
 * from index to message) and `refresh` (indices) are null when empty.
 * `sources[code]` names a source.
 */
export function readResults(r, keys, slots, sources) {
  const n = keys.length;
  const results = new Array(n);
  let errors = null;
  let refresh = null;
  for (let i = 0; i < n; i++) {
    const flags = r.bytes[r.at++];
    const source = sources[r.bytes[r.at++]];
    const hit = (flags & HIT) !== 0;
    const value = hit ? slots[r.u32()] : undefined;
    if (flags & ERROR) (errors ??= new Map()).set(i, r.str());
    if (flags & REFRESH) (refresh ??= []).push(i);
    results[i] = { key: keys[i], hit, value, source };
  }
  return { results, errors, refresh };
}
