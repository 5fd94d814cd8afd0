// Cross-runtime: envelope bytes written by the Python package under a key
// are read by this package under the same key, and the other way round.
// Needs the Python package (STRATACACHE_PYTHON, default .venv/bin/python).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TieredCache, memoryTier, Key } from 'stratacache';

const here = path.dirname(fileURLToPath(import.meta.url));
const python = process.env.STRATACACHE_PYTHON ?? path.join(here, '../../.venv/bin/python');
const script = path.join(here, 'cross/python_side.py');
const SECRET = 'cross-runtime secret, 16+ bytes!';
const hex = (s) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

/** Random letters: incompressible enough to be chunked at 64 KiB. */
function lcgText(n) {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(bytes.subarray(i, Math.min(n, i + 65536)));
  return Array.from(bytes, (b) => String.fromCharCode(0x61 + (b % 26))).join('');
}

function jsCache(tier) {
  return new TieredCache({ tiers: [tier], local: false, signingKeys: [{ id: '2025a', secret: SECRET }] });
}

test('values the Python package wrote are read here under the same keys', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'stratacache-cross-'));
  try {
    const file = path.join(dir, 'from-python.json');
    execFileSync(python, [script, 'write', file], { stdio: ['ignore', 'inherit', 'inherit'] });
    const data = JSON.parse(readFileSync(file, 'utf8'));
    // The same keys, built here.
    const outline = new Key('course_outline', 3);
    assert.equal(data.keys[0], outline.build('course-v1:edX+DemoX+Demo_Course', 42));
    assert.equal(data.keys[1], outline.build('course-v1:edX+DemoX+Demo_Course', -7));
    assert.equal(data.keys[2], new Key('grades', 7).build('a b|c', new Uint8Array([0, 255])));
    assert.equal(data.keys[3], new Key('flags', 1).build());
    assert.equal(data.keys[4], new Key('big', 1).build('doc'));
    const tier = memoryTier({ itemLimit: 64 * 1024 });
    for (const [key, value] of Object.entries(data.items)) tier.items.set(key, { value: hex(value), expiresAt: Infinity });
    assert.ok([...tier.items.keys()].some((k) => k.startsWith('tiercache.chunk|')), 'the big value was chunked by Python');
    const got = await jsCache(tier).getMany(data.keys);
    for (let i = 0; i < data.keys.length; i++) {
      assert.equal(got[i].hit, true, data.keys[i]);
      assert.deepEqual(got[i].value, data.values[i], data.keys[i]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('values this package wrote are read by the Python package', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'stratacache-cross-'));
  try {
    const tier = memoryTier({ itemLimit: 64 * 1024 });
    const cache = jsCache(tier);
    const values = {
      [new Key('course_outline', 3).build('course-v1:edX+DemoX+Demo_Course', 42)]: { title: 'Démo ☕', sections: [1, 2, 3], ok: true, none: null },
      [new Key('grades', 7).build('a b|c', 9n)]: ['x', -1.25, { y: [] }],
      [new Key('flags', 1).build()]: 'plain "string" \\ \n',
      [new Key('big', 1).build('js-doc')]: { text: lcgText(200_000) },
    };
    for (const [key, value] of Object.entries(values)) await cache.setAllTiers(key, value, { ttlMs: 3_600_000 });
    assert.ok([...tier.items.keys()].some((k) => k.startsWith('tiercache.chunk|')), 'the big value was chunked');
    const file = path.join(dir, 'from-js.json');
    const items = Object.fromEntries([...tier.items].map(([k, v]) => [k, toHex(v.value)]));
    writeFileSync(file, JSON.stringify({ keys: Object.keys(values), items }));
    const read = JSON.parse(execFileSync(python, [script, 'read', file], { encoding: 'utf8', maxBuffer: 64 << 20 }));
    assert.deepEqual(read, values);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
