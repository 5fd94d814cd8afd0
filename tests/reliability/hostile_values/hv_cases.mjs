// Hostile values for the JS tiers: envelope bytes built and corrupted by
// hand (independently of the core's encoder), the same corruptions as
// hv_support.py on the Python side. See core/src/envelope.rs for the layout:
//   89 54 43 | 01 | codec, flags, created, soft?, hard?, cost, payload_len
//   | body | key id | key id len | HMAC-SHA256(secret, be64(len key) key bytes-before-mac)
import { createHmac, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/** Imports a dev dependency of bindings-wasm (miniflare, esbuild). */
export async function devImport(name) {
  const require = createRequire(path.join(REPO, 'bindings-wasm/package.json'));
  return import(pathToFileURL(require.resolve(name)).href);
}

export const KEY_ID = '2025a';
export const SECRET = 'a hostile-values secret, 32 B..!';
export const EVIL_KEY_ID = 'evil';
export const EVIL_SECRET = "an attacker's own secret, 32 B.!";
export const SIGNING_KEYS = [{ id: KEY_ID, secret: SECRET }];
export const READER_MAX_PAYLOAD = 64 * 1024;
export const ORIGINAL = { owner: 'user A', grade: 93 };
export const OTHER = { owner: 'user B', grade: 12 };
export const FRESH = { owner: 'loader', grade: 0 };

const MAGIC = [0x89, 0x54, 0x43];
const CODECS = { raw: 0, json: 1, pickle: 2, postcard: 3 };
export const FLAG_COMPRESSED = 1;
export const FLAG_MANIFEST = 2;
export const FLAG_SIGNED = 4;
const MAC_LEN = 32;

/** A pickle that would call os.system('touch /tmp/pwned') if a Python host unpickled it. */
export const EVIL_PICKLE = Buffer.from("cos\nsystem\n(S'touch /tmp/stratacache-hv-pwned'\ntR.", 'latin1');

export function varint(n) {
  let v = BigInt(n);
  const out = [];
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v) out.push(byte | 0x80);
    else {
      out.push(byte);
      return Buffer.from(out);
    }
  }
}

function readVarint(data, pos) {
  let shift = 0n;
  let value = 0n;
  for (;;) {
    const byte = data[pos++];
    value |= BigInt(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return [value, pos];
    shift += 7n;
  }
}

/** Where the parts of a valid envelope are. */
export function parse(data) {
  data = Buffer.from(data);
  if (data[0] !== 0x89 || data[1] !== 0x54 || data[2] !== 0x43 || data[3] !== 1) throw new Error(`not an envelope: ${data.subarray(0, 8).toString('hex')}`);
  let pos = 4;
  const codec = data[pos];
  const flags = data[pos + 1];
  pos += 2;
  [, pos] = readVarint(data, pos);
  for (let i = 0; i < 2; i++) {
    const tag = data[pos++];
    if (tag) [, pos] = readVarint(data, pos);
  }
  [, pos] = readVarint(data, pos);
  let payloadLen;
  [payloadLen, pos] = readVarint(data, pos);
  let bodyEnd = data.length;
  let keyId = null;
  if (flags & FLAG_SIGNED) {
    const idLen = data[data.length - MAC_LEN - 1];
    bodyEnd = data.length - MAC_LEN - 1 - idLen;
    keyId = data.subarray(bodyEnd, bodyEnd + idLen).toString('latin1');
  }
  return { codec, flags, bodyStart: pos, bodyEnd, payloadLen: Number(payloadLen), keyId, signed: Boolean(flags & FLAG_SIGNED) };
}

function mac(secret, key, bytes) {
  const k = Buffer.from(key, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64BE(BigInt(k.length));
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(len).update(k).update(bytes).digest();
}

/**
 * Envelope bytes signed for `key` with `keyring[0]` (keyring null: unsigned).
 * payloadLen / body override what the header claims and what follows it;
 * fakeMac replaces the real MAC.
 */
export function envelope(payload, { codec = 'json', key, keyring = [[KEY_ID, SECRET]], flags = 0, payloadLen, body, fakeMac } = {}) {
  payload = Buffer.from(payload);
  if (keyring) flags |= FLAG_SIGNED;
  const header = Buffer.concat([
    Buffer.from([CODECS[codec], flags]),
    varint(1_700_000_000_000),
    Buffer.from([0, 0]),
    varint(0),
    varint(payloadLen ?? payload.length),
  ]);
  let out = Buffer.concat([Buffer.from([...MAGIC, 1]), header, body ?? payload]);
  if (keyring) {
    const [id, secret] = keyring[0];
    out = Buffer.concat([out, Buffer.from(id, 'latin1'), Buffer.from([id.length])]);
    if (key === undefined) throw new Error('a signed envelope is bound to a key');
    out = Buffer.concat([out, fakeMac ?? mac(secret, key, out)]);
  }
  return new Uint8Array(out);
}

export function flip(data, index, mask = 1) {
  const out = Uint8Array.from(data);
  out[index] ^= mask;
  return out;
}

const midBody = (p) => p.bodyStart + Math.floor((p.bodyEnd - p.bodyStart) / 2);
const cut = (at) => (v) => Uint8Array.from(v).subarray(0, at(v, parse(v)));

/** name, group, what, counter, make(valid, ctx) -> hostile bytes; ctx: { key, otherValid }. */
export const CASES = [
  // (a) one flipped byte
  { name: 'flip_magic', group: 'tamper', make: (v) => flip(v, 0, 0x80) },
  { name: 'flip_version', group: 'tamper', make: (v) => flip(v, 3, 0x02) },
  { name: 'flip_codec', group: 'tamper', make: (v) => flip(v, 4, 0x02) },
  { name: 'flip_flags', group: 'tamper', make: (v) => flip(v, 5, FLAG_SIGNED) },
  { name: 'flip_header_time', group: 'tamper', make: (v) => flip(v, 6, 0x01) },
  { name: 'flip_payload', group: 'tamper', make: (v) => flip(v, midBody(parse(v))) },
  { name: 'flip_key_id', group: 'tamper', make: (v) => flip(v, parse(v).bodyEnd) },
  { name: 'flip_mac', group: 'tamper', make: (v) => flip(v, v.length - 1) },
  // (b) truncated
  { name: 'trunc_empty', group: 'truncate', make: () => new Uint8Array(0) },
  { name: 'trunc_magic', group: 'truncate', make: cut(() => 2) },
  { name: 'trunc_header', group: 'truncate', make: cut((v, p) => p.bodyStart - 1) },
  { name: 'trunc_body', group: 'truncate', make: cut((v, p) => midBody(p)) },
  { name: 'trunc_key_id', group: 'truncate', make: cut((v, p) => p.bodyEnd) },
  { name: 'trunc_mac', group: 'truncate', make: cut((v) => v.length - MAC_LEN / 2) },
  { name: 'trunc_last', group: 'truncate', make: cut((v) => v.length - 1) },
  // (c) replayed under another key
  { name: 'replay_other_key', group: 'replay', make: (v, c) => c.otherValid },
  // (d) oversized, or lying about its size (validly signed: a writer with the secret)
  { name: 'over_limit', group: 'oversized', make: (v, c) => envelope(randomBytes(80 * 1024), { codec: 'raw', key: c.key }) },
  { name: 'claims_huge', group: 'oversized', make: (v, c) => envelope(Buffer.alloc(16, 120), { codec: 'raw', key: c.key, payloadLen: 2 ** 40 }) },
  { name: 'claims_more', group: 'oversized', make: (v, c) => envelope(Buffer.alloc(16, 120), { codec: 'raw', key: c.key, payloadLen: 116 }) },
  {
    name: 'lz4_bomb',
    group: 'oversized',
    make: (v, c) => envelope(Buffer.alloc(16, 120), { codec: 'raw', key: c.key, flags: FLAG_COMPRESSED, payloadLen: 60 * 1024 }),
  },
  {
    name: 'lz4_garbage',
    group: 'oversized',
    make: (v, c) => envelope(Buffer.alloc(64, 0xff), { codec: 'raw', key: c.key, flags: FLAG_COMPRESSED, payloadLen: 200 }),
  },
  // (e) a pickle (JS never unpickles; it must not even reach the decoder)
  { name: 'pickle_unsigned', group: 'pickle', make: () => envelope(EVIL_PICKLE, { codec: 'pickle', keyring: null }) },
  { name: 'pickle_forged_mac', group: 'pickle', make: (v, c) => envelope(EVIL_PICKLE, { codec: 'pickle', key: c.key, fakeMac: randomBytes(MAC_LEN) }) },
  {
    name: 'pickle_unknown_key',
    group: 'pickle',
    make: (v, c) => envelope(EVIL_PICKLE, { codec: 'pickle', key: c.key, keyring: [[EVIL_KEY_ID, EVIL_SECRET]] }),
  },
  {
    name: 'pickle_mac_from_valid',
    group: 'pickle',
    make: (v) => {
      const head = envelope(EVIL_PICKLE, { codec: 'pickle', keyring: null, flags: FLAG_SIGNED });
      return new Uint8Array(Buffer.concat([head, Uint8Array.from(v).subarray(parse(v).bodyEnd)]));
    },
  },
  // a raw pickle, as Python's pymemcache/Django would store one: not an envelope
  { name: 'pickle_native', group: 'pickle', make: () => new Uint8Array(EVIL_PICKLE) },
].map((c) => ({ counter: 'rejected', ...c }));

/** Chunk attacks: apply(raw, key, other, codec) with raw = { get, put, del } over the tier's server. */
export const CHUNK_CASES = [
  { name: 'chunk_flip', counter: 'chunkMisses' },
  { name: 'chunk_truncate', counter: 'chunkMisses' },
  { name: 'chunk_missing', counter: 'chunkMisses' },
  { name: 'chunk_swapped', counter: 'chunkMisses' },
  { name: 'manifest_flip', counter: 'rejected' },
  { name: 'manifest_truncate', counter: 'rejected' },
  { name: 'manifest_replay', counter: 'rejected' },
  { name: 'manifest_huge_count', counter: 'rejected' },
];

export async function applyChunkCase(name, raw, key, other, chunkKeys) {
  const manifest = await raw.get(key);
  const ck = chunkKeys(key, manifest);
  const otherCk = chunkKeys(other, await raw.get(other));
  switch (name) {
    case 'chunk_flip':
      return raw.put(ck[1], flip(await raw.get(ck[1]), 100));
    case 'chunk_truncate':
      return raw.put(ck[1], (await raw.get(ck[1])).subarray(0, -10));
    case 'chunk_missing':
      return raw.del(ck[2]);
    case 'chunk_swapped':
      return raw.put(ck[0], await raw.get(otherCk[0]));
    case 'manifest_flip':
      return raw.put(key, flip(manifest, parse(manifest).bodyEnd - 3));
    case 'manifest_truncate':
      return raw.put(key, manifest.subarray(0, manifest.length >> 1));
    case 'manifest_replay':
      return raw.put(key, await raw.get(other));
    case 'manifest_huge_count': {
      const count = 1_000_000;
      const payload = Buffer.concat([varint(1024 * count), varint(1024), varint(count), Buffer.alloc(32)]);
      return raw.put(key, envelope(payload, { codec: 'postcard', key, flags: FLAG_MANIFEST }));
    }
    default:
      throw new Error(name);
  }
}
