// End-to-end in real workerd (Miniflare brings it), on loopback: two
// isolates (workers "a" and "b") running the bundled package, sharing one
// Workers KV namespace as the remote tier.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, readFileSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import { Miniflare } from 'miniflare';

const here = path.dirname(fileURLToPath(import.meta.url));
const SECRET = 'an e2e secret of at least 16 bytes';
let mf;
let dir;
let a;
let b;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'stratacache-e2e-'));
  // Bundle as wrangler does: workerd conditions, .wasm imports kept as modules.
  await build({
    entryPoints: [path.join(here, 'e2e/worker.mjs')],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    conditions: ['workerd', 'worker', 'browser'],
    external: ['*.wasm'],
    outfile: path.join(dir, 'worker.js'),
    logLevel: 'error',
  });
  const wasm = path.join(here, 'node_modules/stratacache/stratacache_core_bg.wasm');
  copyFileSync(wasm, path.join(dir, 'stratacache_core_bg.wasm'));
  const worker = (name) => ({
    name,
    modules: [
      { type: 'ESModule', path: path.join(dir, 'worker.js') },
      { type: 'CompiledWasm', path: path.join(dir, 'stratacache_core_bg.wasm') },
    ],
    modulesRoot: dir,
    compatibilityDate: '2025-01-01',
    kvNamespaces: { CACHE: 'shared-cache' },
    bindings: { SECRET, NAME: name },
  });
  mf = new Miniflare({ workers: [worker('a'), worker('b')], host: '127.0.0.1' });
  await mf.ready;
  a = await mf.getWorker('a');
  b = await mf.getWorker('b');
});

after(async () => {
  await mf?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function call(worker, url) {
  const res = await worker.fetch(`http://stratacache.test${url.replaceAll('+', '%2B')}`);
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

test('cold request loads, warm request hits the local tier, a second isolate hits KV', async () => {
  const cold = await call(a, '/get?course=course-v1:edX+DemoX+Demo_Course');
  assert.equal(cold.loads, 1);
  assert.deepEqual(cold.value.sections, ['intro', 'week 1']);
  assert.equal(cold.key, 'course_outline|v1|course-v1:edX+DemoX+Demo_Course');
  assert.equal(cold.requestSource, 'request', 'the request cache was filled by the read');
  const warm = await call(a, '/lookup?course=course-v1:edX+DemoX+Demo_Course');
  assert.equal(warm.source, 'local');
  assert.equal(warm.loads, 1);
  const other = await call(b, '/lookup?course=course-v1:edX+DemoX+Demo_Course');
  assert.equal(other.isolate, 'b');
  assert.equal(other.source, 'kv');
  assert.equal(other.loads, 0, 'isolate b never ran the loader');
  assert.deepEqual(other.value, cold.value);
});

test('concurrent requests for one cold key load it once', async () => {
  const before = (await call(a, '/stats')).loads;
  const results = await Promise.all(Array.from({ length: 8 }, () => call(a, '/get?course=concurrent&delay=300')));
  const after = (await call(a, '/stats')).loads;
  assert.equal(after - before, 1, 'one load for eight concurrent requests');
  assert.ok(results.every((r) => r.value.course === 'concurrent'));
});

test('a value over the KV item limit round-trips through chunking', async () => {
  const n = 20 * 1024 * 1024; // 20 MiB of text: over KV_ITEM_LIMIT (base64 of 25 MiB)
  const written = await call(a, `/big?n=${n}&seed=s1`);
  assert.equal(written.length, n);
  const kv = await mf.getKVNamespace('CACHE', 'a');
  const listed = (await kv.list({ prefix: 'tiercache.chunk|' })).keys;
  assert.ok(listed.length >= 2, `chunks in KV: ${listed.length}`);
  const loadsBefore = (await call(b, '/stats')).loads;
  const read = await call(b, `/big?n=${n}&seed=s1`);
  assert.equal(read.source, 'kv', JSON.stringify((await call(b, '/stats')).stats));
  assert.equal(read.loads, loadsBefore, 'isolate b read the chunks, it did not load');
  assert.equal(read.length, n);
  assert.equal(read.head, written.head);
  const stats = (await call(b, '/stats')).stats;
  assert.equal(stats.tiers[0].chunkedReads, 1);
});

test('a 100-key getMany against KV is one bulk KV call', async () => {
  await call(a, '/fill-many');
  const r = await call(b, '/many');
  assert.equal(r.hits, 100);
  assert.deepEqual(r.sources, ['kv']);
  assert.equal(r.kvCalls, 1);
});

test('a tampered KV value is a miss (and is loaded again)', async () => {
  await call(a, '/get?course=tampered');
  const kv = await mf.getKVNamespace('CACHE', 'a');
  const key = 'course_outline|v1|tampered';
  const text = await kv.get(key);
  assert.ok(text.startsWith('iVRD'), 'KV holds base64 text of the envelope');
  const bytes = Buffer.from(text, 'base64');
  bytes[bytes.length - 40] ^= 0x20; // flip a payload bit; the MAC no longer verifies
  await kv.put(key, bytes.toString('base64'));
  const r = await call(b, '/lookup?course=tampered');
  assert.equal(r.hit, false);
  const loadsBefore = r.loads;
  const stats = (await call(b, '/stats')).stats;
  assert.ok(stats.tiers[0].rejected >= 1, 'counted as rejected');
  const reloaded = await call(b, '/get?course=tampered');
  assert.equal(reloaded.value.course, 'tampered');
  assert.equal(reloaded.loads, loadsBefore + 1);
});
