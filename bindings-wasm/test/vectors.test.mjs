// The shared golden vectors (tests/vectors/), checked through the package.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Key, safeKey, isValidKey, plainKey, signingKeysFromSecret } from 'stratacache';
import { EnvelopeCodec } from 'stratacache/tools';

const root = new URL('../../tests/vectors/', import.meta.url);
const keys = JSON.parse(readFileSync(new URL('keys.json', root), 'utf8'));
const envelopes = JSON.parse(readFileSync(new URL('envelopes.json', root), 'utf8'));
const plain = JSON.parse(readFileSync(new URL('plain-keys.json', root), 'utf8'));

const hex = (s) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

function part(p) {
  if ('str' in p) return p.str;
  if ('int' in p) return BigInt(p.int);
  if ('bytes_hex' in p) return hex(p.bytes_hex);
  if ('str_repeat' in p) return p.str_repeat.unit.repeat(p.str_repeat.count);
  throw new Error(`unknown part ${JSON.stringify(p)}`);
}

test(`every key vector (${keys.vectors.length}) builds the exact key`, () => {
  assert.equal(keys.format, 'tiercache-key-1');
  for (const v of keys.vectors) {
    const build = () => new Key(v.namespace, v.version, { maxLen: v.max_len }).build(...v.parts.map(part));
    if (v.error) {
      assert.throws(build, RangeError, v.name);
    } else {
      const key = build();
      assert.equal(key, v.key, v.name);
      assert.ok(isValidKey(key), v.name);
    }
  }
});

test(`every safe_key vector (${keys.safe_keys.length}) gives the exact key`, () => {
  for (const v of keys.safe_keys) {
    const raw = v.raw ?? v.raw_repeat.unit.repeat(v.raw_repeat.count);
    if (v.error) assert.throws(() => safeKey(raw, v.max_len), v.name);
    else assert.equal(safeKey(raw, v.max_len), v.key, v.name);
  }
});

test(`every plain-key vector (${plain.plain_keys.length}) gives the exact remote key`, () => {
  assert.equal(plain.format, 'stratacache-plain-key-1');
  for (const v of plain.plain_keys) {
    const raw = v.raw ?? v.raw_repeat.unit.repeat(v.raw_repeat.count);
    if (v.error) assert.throws(() => plainKey(raw, v.max_len), RangeError, v.name);
    else assert.equal(plainKey(raw, v.max_len), v.key, v.name);
  }
  // A built key is its own plain key.
  for (const v of keys.vectors) {
    if (v.key && (v.max_len ?? 200) <= 200) assert.equal(plainKey(v.key), v.key, v.name);
  }
});

test(`every signing-key vector (${plain.signing_keys.length}) derives the exact key`, () => {
  for (const v of plain.signing_keys) {
    if (v.error) {
      assert.throws(() => signingKeysFromSecret(v.secret), /secret .* is empty/, v.name);
      continue;
    }
    const [{ id, secret }] = signingKeysFromSecret(v.secret);
    assert.equal(id, 'k1');
    assert.equal(toHex(secret), v.key_hex, v.name);
    assert.equal(toHex(signingKeysFromSecret(new TextEncoder().encode(v.secret), 'django')[0].secret), v.key_hex);
  }
});

function keyring(ids) {
  return ids.map((id) => ({ id, secret: hex(envelopes.keys.find((k) => k.key_id === id).secret_hex) }));
}

test(`every valid envelope vector (${envelopes.valid.length}) encodes to the exact bytes and decodes back`, () => {
  for (const v of envelopes.valid) {
    const writer = new EnvelopeCodec(keyring(v.sign_with), false, v.compress_at ?? 0, 0);
    const bytes = writer.encode(v.header, hex(v.payload_hex), v.bound_key ?? undefined);
    assert.equal(toHex(bytes), v.envelope_hex, v.name);
    const reader = new EnvelopeCodec(keyring(v.decode_keyring), v.sign_with.length > 0, 0, 0);
    const decoded = reader.decode(hex(v.envelope_hex), v.bound_key ?? undefined);
    assert.equal(toHex(decoded.payload), v.payload_hex, v.name);
    assert.deepEqual(decoded.header, { ...v.header, manifest: false }, v.name);
    assert.equal(decoded.compressed, v.compressed, v.name);
    assert.equal(decoded.verified, v.sign_with.length > 0, v.name);
  }
});

test(`every invalid envelope vector (${envelopes.invalid.length}) is refused with its error kind`, () => {
  for (const v of envelopes.invalid) {
    const reader = new EnvelopeCodec(keyring(v.keyring), v.require_signature, 0, v.max_payload_len ?? 0);
    assert.throws(() => reader.decode(hex(v.envelope_hex), v.bound_key ?? undefined), (e) => e.kind === v.error, v.name);
  }
});

test(`every manifest vector (${envelopes.manifests.length}) splits, reads and reassembles exactly`, () => {
  for (const v of envelopes.manifests) {
    const codec = new EnvelopeCodec(keyring(v.sign_with), v.sign_with.length > 0, 0, 0);
    const envelope = hex(v.envelope_hex);
    const split = codec.split(v.main_key, envelope, v.item_limit);
    assert.equal(split.chunked, true, v.name);
    const last = split.writes.at(-1);
    assert.equal(last.key, v.main_key, v.name);
    assert.equal(toHex(last.value), v.manifest_hex, v.name);
    assert.deepEqual(
      split.writes.slice(0, -1).map((w) => ({ key: w.key, hex: toHex(w.value) })),
      v.chunks,
      v.name,
    );
    const read = codec.readManifest(v.main_key, hex(v.manifest_hex));
    assert.deepEqual(read.manifest, v.manifest, v.name);
    assert.deepEqual(read.chunkKeys, v.chunks.map((c) => c.key), v.name);
    const chunks = v.chunks.map((c) => hex(c.hex));
    assert.equal(toHex(codec.reassemble(v.main_key, hex(v.manifest_hex), chunks)), v.envelope_hex, v.name);
    // A lost chunk is an error, never corrupt data.
    assert.throws(() => codec.reassemble(v.main_key, hex(v.manifest_hex), [chunks[0], null, ...chunks.slice(2)]), v.name);
  }
});

test('refusals built in JS carry the core messages (safeKey, plainKey, Key maxLen, empty secret)', () => {
  assert.throws(() => safeKey(''), { name: 'TypeError', message: /cache key is empty/ });
  assert.throws(() => safeKey('a', 63), { name: 'RangeError', message: /maximum key length 63 is out of range: choose a length from 64 to 250/ });
  assert.throws(() => plainKey('a', 251), { name: 'RangeError', message: /maximum key length 251 is out of range/ });
  assert.throws(() => new Key('ns', 1, { maxLen: 10 }), { name: 'RangeError', message: /maximum key length 10 is out of range/ });
  assert.equal(new Key('ns', 1, { maxLen: 64 }).maxLen, 64);
  assert.equal(safeKey('a b', 64), 'a%20b');
  assert.equal(plainKey('', 64), '%~');
  assert.throws(() => signingKeysFromSecret(''), { name: 'TypeError', message: /secret to derive signing keys from is empty/ });
});
