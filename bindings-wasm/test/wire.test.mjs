// The byte layout of steps and read results (wasm -> JS), checked against
// the core's Rust types: test/wire-vectors.json holds bytes written by the
// wasm module's own writers (src/tiered.rs, src/wire.rs) and the fields they
// carry, taken from the Rust values (src/wire_vectors.rs, which also checks
// the file is current). Here the package's js/wire.js reads the bytes back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

// wire.js is internal (not in the package's exports): imported by path,
// from the packed package that the other tests use.
const { Reader, decodeSteps, readStep, readResults } = await import(new URL('./node_modules/stratacache/wire.js', import.meta.url));

const vectors = JSON.parse(readFileSync(new URL('./wire-vectors.json', import.meta.url), 'utf8'));
const bytesOf = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

/** Byte fields (views) as hex, as the vectors write them. */
function plain(v) {
  if (v instanceof Uint8Array) return toHex(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

test(`every step vector (${vectors.steps.length}) reads as the Rust step's fields`, () => {
  for (const v of vectors.steps) {
    const bytes = bytesOf(v.hex);
    assert.deepEqual(plain(decodeSteps(bytes)), v.steps, v.name);
    // Read one at a time, as a read's output is: each step ends where the next begins.
    const r = new Reader(bytes);
    for (const expected of v.steps) assert.deepEqual(plain(readStep(r)), expected, v.name);
    assert.equal(r.at, bytes.length, `${v.name}: every byte read`);
  }
  const kinds = new Set(vectors.steps.flatMap((v) => v.steps.map((s) => s.kind)));
  assert.equal(kinds.size, 10, 'every step kind has a vector');
});

test('a step vector read at an offset (a view into a larger buffer) reads the same', () => {
  for (const v of vectors.steps) {
    const inner = bytesOf(v.hex);
    const outer = new Uint8Array(inner.length + 7);
    outer.set(inner, 3);
    assert.deepEqual(plain(decodeSteps(outer.subarray(3, 3 + inner.length))), v.steps, v.name);
  }
});

test(`the result vector (${vectors.results.results.length} keys) reads as the Rust results' fields`, () => {
  const v = vectors.results;
  const bytes = bytesOf(v.hex);
  const n = v.results.length;
  const keys = Array.from({ length: n }, (_, i) => `key ${i}`);
  // A hit's value is slots[its slot], a source's name sources[its code]:
  // both stand for the number itself here.
  const identity = new Proxy([], { get: (_, p) => Number(p) });
  const r = new Reader(bytes);
  const { results, errors, refresh } = readResults(r, keys, identity, identity);
  assert.equal(r.at, bytes.length, 'every byte read');
  const got = results.map((res, i) => ({
    hit: res.hit,
    slot: res.hit ? res.value : null,
    source: res.source,
    refresh: refresh?.includes(i) ?? false,
    error: errors?.get(i) ?? null,
  }));
  assert.deepEqual(got, v.results);
  assert.deepEqual(results.map((res) => res.key), keys);
  for (const field of ['hit', 'refresh']) {
    assert.ok(v.results.some((x) => x[field]) && v.results.some((x) => !x[field]), `${field} both ways`);
  }
  assert.ok(v.results.some((x) => x.error !== null) && v.results.some((x) => x.error === null), 'errors both ways');
});
