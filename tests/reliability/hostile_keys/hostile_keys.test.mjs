// Keys built from hostile parts through the npm package (issue 7): the
// cases of hk_cases.py (separators, confusables, NFC/NFD, NUL and controls,
// empty parts, 1 MB strings, at max_len 64, 200 and 250) give valid
// memcached keys that never collide, byte-identical to the keys Python's
// stratacache.Key builds for the same parts (the venv python is spawned).
// JS strings may hold lone surrogates; they are refused (TypeError), as
// Python refuses them (ValueError), instead of being merged with U+FFFD.
//
// Run: bash scripts/test-reliability.sh   (or:
//   STRATACACHE_PYTHON=.venv/bin/python node --test tests/reliability/hostile_keys/hostile_keys.test.mjs)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../../..');
const PYTHON = process.env.STRATACACHE_PYTHON ?? path.join(REPO, '.venv/bin/python');
const { Key, safeKey, isValidKey } = await import(pathToFileURL(path.join(REPO, 'bindings-wasm/pkg/node.js')).href);

function python(command, input) {
  const run = spawnSync(PYTHON, [path.join(HERE, 'hk_cases.py'), command], {
    input: input === undefined ? undefined : JSON.stringify(input),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    env: { ...process.env, PYTHONPATH: path.join(REPO, 'tests/reliability') },
  });
  assert.equal(run.status, 0, `hk_cases.py ${command} failed: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

const hex = (s) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));

function part(p) {
  if ('str' in p) return p.str;
  if ('int' in p) return BigInt(p.int);
  if ('bytes_hex' in p) return hex(p.bytes_hex);
  const r = p.str_repeat;
  return r.unit.repeat(r.count) + r.suffix;
}

function buildOrError(c) {
  try {
    return { key: new Key(c.namespace, c.version, { maxLen: c.max_len }).build(...c.parts.map(part)) };
  } catch (e) {
    return { error: e.constructor.name, message: e.message };
  }
}

const { cases, lone_surrogates: loneSurrogates } = python('dump');

test(`${cases.length} hostile cases: valid keys, no collisions, identical to Python`, () => {
  assert.ok(cases.length >= 1800, `${cases.length} cases`);
  const js = cases.map(buildOrError);
  const py = python('build', cases);
  const seen = new Map();
  for (let n = 0; n < cases.length; n++) {
    const c = cases[n];
    const { key } = js[n];
    assert.ok(key !== undefined, `JS refused case ${n}: ${js[n].message}`);
    assert.equal(key, py[n].key, `case ${n} (max_len ${c.max_len}) differs between JS and Python`);
    assert.ok(key.length >= 1 && key.length <= c.max_len && key.length <= 250, `case ${n}: ${key.length} bytes`);
    assert.match(key, /^[\x21-\x7e]+$/, `case ${n}: ${JSON.stringify(key)}`);
    assert.ok(isValidKey(key));
    const marker = `${c.max_len} ${key}`;
    assert.ok(!seen.has(marker), `cases ${seen.get(marker)} and ${n} share the key ${key}`);
    seen.set(marker, n);
  }
});

test('lone surrogates are refused, never merged with U+FFFD', () => {
  const k = new Key('hk');
  const replacement = k.build('\ufffd');
  for (const text of [...loneSurrogates, '\ud83d', '\ude00', 'x\ud83d']) {
    for (const parts of [[text], ['ok', text]]) {
      assert.throws(() => k.build(...parts), TypeError, JSON.stringify(parts));
    }
    assert.throws(() => safeKey(text), TypeError, JSON.stringify(text));
  }
  // A surrogate *pair* is a well-formed character, the same as in Python.
  const emoji = '\ud83d\ude00';
  assert.equal(k.build(emoji), 'hk|v1|%F0%9F%98%80');
  assert.notEqual(k.build(emoji), replacement);
  // Python refuses the same strings.
  const py = python(
    'build',
    loneSurrogates.map((text) => ({ namespace: 'hk', version: 1, max_len: 200, parts: [{ str: text }] })),
  );
  assert.deepEqual(
    py.map((r) => r.error),
    loneSurrogates.map(() => 'ValueError'),
  );
});
