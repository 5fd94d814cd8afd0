// The KV tier's base64 (the package's base64.js): RFC 4648 vectors, every
// length, and strict decoding. Node 20 takes its atob/btoa path; workerd's
// native Uint8Array#toBase64 path is exercised by e2e.test.mjs (KV values).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { base64Encode, base64Decode } from './node_modules/stratacache/base64.js';

const bytes = (text) => new TextEncoder().encode(text);

test('RFC 4648 vectors and the envelope magic', () => {
  for (const [raw, text] of [['', ''], ['f', 'Zg=='], ['fo', 'Zm8='], ['foo', 'Zm9v'], ['foobar', 'Zm9vYmFy']]) {
    assert.equal(base64Encode(bytes(raw)), text);
    assert.deepEqual(base64Decode(text), bytes(raw));
  }
  assert.equal(base64Encode(Uint8Array.of(0x89, 0x54, 0x43)), 'iVRD');
});

test('every length round-trips, and a value larger than one encoding slice', () => {
  for (let n = 0; n < 40; n++) {
    const b = Uint8Array.from({ length: n }, (_, i) => (i * 37 + 200) & 255);
    const text = base64Encode(b);
    assert.equal(text.length, Math.ceil(n / 3) * 4);
    assert.deepEqual(base64Decode(text), b);
    assert.equal(text, Buffer.from(b).toString('base64'));
  }
  const big = Uint8Array.from({ length: 100_003 }, (_, i) => (i * 131) & 255);
  assert.equal(base64Encode(big), Buffer.from(big).toString('base64'));
  assert.deepEqual(base64Decode(base64Encode(big)), big);
});

test('anything but standard padded base64 is refused (undefined), not decoded leniently', () => {
  for (const text of ['abc', 'ab!d', 'a===', 'Zg==Zg==', 'Zg', 'Zm9v\n', ' Zm9v', 'Zm 9v', 'Zm9v-_', 'Zg=']) {
    assert.equal(base64Decode(text), undefined, JSON.stringify(text));
  }
});
