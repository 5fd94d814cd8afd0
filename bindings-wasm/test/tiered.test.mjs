// TieredCache over the built package: the core's read machine driven with
// await, over in-memory tiers that keep a real server's limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TieredCache, RequestCache, memoryTier, Key, safeKey, plainKey, StratacacheError } from 'stratacache';
import { EnvelopeCodec } from 'stratacache/tools';

const SECRET = 'a test secret of at least 16 bytes';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const keys = (n) => Array.from({ length: n }, (_, i) => new Key('course_meta', 1).build(`course-v1:edX+C${i}+2024`));

test('a cold read loads once, writes every tier; another isolate reads the remote tier', async () => {
  const memcached = memoryTier({ name: 'memcached' });
  const storage = memoryTier({ name: 's3', kind: 'storage' });
  const a = new TieredCache({ tiers: [memcached, storage] });
  let loads = 0;
  const key = new Key('course_blocks', 3).build('course-v1:edX+DemoX+Demo_Course');
  const value = { blocks: ['intro', 'quiz'], count: 2 };
  assert.deepEqual(await a.getOrLoad(key, async () => (loads++, value)), value);
  assert.equal(loads, 1);
  assert.equal(memcached.items.size, 1);
  assert.equal(storage.items.size, 1);
  assert.deepEqual(await a.get(key), { hit: true, value, source: 'local' });
  const b = new TieredCache({ tiers: [memcached, storage] });
  assert.deepEqual(await b.get(key), { hit: true, value, source: 'memcached' });
  assert.equal(loads, 1);
  const s = b.stats();
  assert.equal(s.reads.remoteHits, 1);
  assert.equal(s.tiers[0].name, 'memcached');
});

test('100 keys cost one getMany per tier and one loader batch', async () => {
  const tier = memoryTier();
  const cache = new TieredCache({ tiers: [tier] });
  const ks = keys(100);
  const batches = [];
  const values = await cache.getManyOrLoad(ks, async (missing) => {
    batches.push(missing.length);
    return missing.map((k) => `v:${k}`);
  });
  assert.deepEqual(batches, [100]);
  assert.equal(tier.calls.getMany, 1);
  assert.deepEqual(values, ks.map((k) => `v:${k}`));
  const other = new TieredCache({ tiers: [tier] });
  const got = await other.getMany(ks);
  assert.equal(tier.calls.getMany, 2);
  assert.ok(got.every((r, i) => r.hit && r.value === `v:${ks[i]}` && r.source === 'memory'));
  // A Map from the loader works too.
  const more = keys(103).slice(100);
  assert.deepEqual(await cache.getManyOrLoad(more, async (m) => new Map(m.map((k) => [k, k.length]))), more.map((k) => k.length));
});

test('concurrent requests for one cold key load it once (single-flight)', async () => {
  const tier = memoryTier();
  const cache = new TieredCache({ tiers: [tier] });
  let loads = 0;
  const loader = async () => {
    loads++;
    await sleep(30);
    return 'expensive';
  };
  const results = await Promise.all(Array.from({ length: 20 }, () => cache.getOrLoad('report|v1|cold', loader)));
  assert.equal(loads, 1);
  assert.ok(results.every((v) => v === 'expensive'));
  assert.ok(cache.stats().reads.flightWaits >= 1);
});

test('values larger than the item limit are chunked and read back', async () => {
  const tier = memoryTier({ itemLimit: 4096 });
  const writer = new TieredCache({ tiers: [tier], compressAt: null });
  const big = 'x'.repeat(20_000) + Math.random();
  await writer.setAllTiers('big|v1|doc', big);
  assert.ok(tier.items.size > 2, 'chunks plus a manifest');
  for (const item of tier.items.values()) assert.ok(item.value.length <= 4096);
  const reader = new TieredCache({ tiers: [tier] });
  assert.equal((await reader.get('big|v1|doc')).value, big);
  assert.equal(reader.stats().tiers[0].chunkedReads, 1);
});

test('the JSON codec writes compact UTF-8 JSON, as the Python package does', async () => {
  const tier = memoryTier();
  const cache = new TieredCache({ tiers: [tier], compressAt: null });
  const value = { name: 'Café ☕', n: [1, 2.5, -3], ok: true, none: null };
  await cache.setAllTiers('json|v1|k', value);
  const env = new EnvelopeCodec(null, false, 0, 0).decode(tier.items.get('json|v1|k').value);
  assert.equal(env.header.codec, 'json');
  assert.equal(new TextDecoder().decode(env.payload), '{"name":"Café ☕","n":[1,2.5,-3],"ok":true,"none":null}');
  await cache.setAllTiers('raw|v1|k', new Uint8Array([0, 255, 7]));
  const raw = new EnvelopeCodec(null, false, 0, 0).decode(tier.items.get('raw|v1|k').value);
  assert.equal(raw.header.codec, 'raw');
  assert.deepEqual([...(await new TieredCache({ tiers: [tier] }).get('raw|v1|k')).value], [0, 255, 7]);
});

test('signed envelopes: a tampered value is a miss and is loaded again', async () => {
  const tier = memoryTier();
  const opts = { tiers: [tier], signingKeys: [{ id: '2025a', secret: SECRET }] };
  await new TieredCache(opts).setAllTiers('user|v1|#7', { admin: false });
  const item = tier.items.get('user|v1|#7');
  const bytes = item.value;
  const i = bytes.indexOf('f'.charCodeAt(0)); // "false" -> "talse"-like flip inside the payload
  bytes[i] ^= 0x01;
  let loads = 0;
  const reader = new TieredCache(opts);
  assert.deepEqual(await reader.getOrLoad('user|v1|#7', () => (loads++, { admin: false })), { admin: false });
  assert.equal(loads, 1);
  assert.equal(reader.stats().tiers[0].rejected, 1);
  // Unsigned values are refused once signing is on.
  const unsignedTier = memoryTier();
  await new TieredCache({ tiers: [unsignedTier] }).setAllTiers('k|v1', 1);
  assert.equal((await new TieredCache({ ...opts, tiers: [unsignedTier] }).get('k|v1')).hit, false);
});

test('the request cache answers first and is filled by reads', async () => {
  const tier = memoryTier();
  const cache = new TieredCache({ tiers: [tier], local: false });
  const request = new RequestCache();
  await cache.setAllTiers('p|v1', 'remote');
  const first = await cache.get('p|v1', { request });
  assert.equal(first.source, 'memory');
  const second = await cache.get('p|v1', { request });
  assert.equal(second.source, 'request');
  assert.equal(tier.calls.getMany, 1);
  request.set('mine', null);
  assert.deepEqual(request.lookup('mine'), { hit: true, value: null });
  assert.equal(request.size(), 2);
  request.clear();
  assert.equal(request.size(), 0);
});

test('deleteAllTiers removes a key everywhere; forceMiss reloads', async () => {
  const tier = memoryTier();
  const cache = new TieredCache({ tiers: [tier] });
  await cache.setAllTiers('d|v1', 1);
  await cache.deleteAllTiers('d|v1');
  assert.equal(tier.items.size, 0);
  assert.equal((await cache.get('d|v1')).hit, false);
  let loads = 0;
  await cache.getOrLoad('f|v1', () => ++loads);
  assert.equal(await cache.getOrLoad('f|v1', () => ++loads), 1);
  assert.equal(await cache.getOrLoad('f|v1', () => ++loads, { forceMiss: true }), 2);
});

test('a stale value is served while one background refresh reloads it (waitUntil)', async () => {
  let now = 1_700_000_000_000;
  const clock = () => now;
  const tier = memoryTier({ clock });
  const cache = new TieredCache({ tiers: [tier], clock, staleMs: 60_000, ttlJitter: 0, xfetchBeta: 0, local: false });
  let version = 0;
  const loader = async () => ++version;
  assert.equal(await cache.getOrLoad('s|v1', loader, { ttlMs: 1000 }), 1);
  now += 2000; // past the TTL, within the stale window
  const background = [];
  assert.equal(await cache.getOrLoad('s|v1', loader, { ttlMs: 1000, waitUntil: (p) => background.push(p) }), 1);
  assert.ok(background.length >= 1, 'the refresh was handed to waitUntil');
  await Promise.all(background);
  assert.equal(version, 2);
  assert.equal(await cache.getOrLoad('s|v1', loader, { ttlMs: 1000 }), 2);
});

// ---- bad input: clear errors, no stuck promises --------------------------

test('non-string keys are refused with a TypeError', async () => {
  const cache = new TieredCache({ tiers: [memoryTier()] });
  await assert.rejects(cache.get(42), { name: 'TypeError', message: /keys must be strings, got number 42/ });
  await assert.rejects(cache.getMany(['ok', null]), /got null/);
  await assert.rejects(cache.getMany('not-an-array'), /must be an array/);
  await assert.rejects(cache.getOrLoad({}, () => 1), /got an object/);
  await assert.rejects(cache.setAllTiers(undefined, 1), TypeError);
  assert.throws(() => new RequestCache().set(1, 2), /must be strings/);
  assert.throws(() => new Key('ns', 1).build({}), /key part 0 is object/);
  assert.throws(() => new Key('ns', 1).build(1.5), /not a safe integer/);
});

test('any string is a key: 10 KB, spaces, Unicode map to remote keys with plainKey, and loaders see the caller\'s keys', async () => {
  const tier = memoryTier();
  const cache = new TieredCache({ tiers: [tier] });
  const long = 'k'.repeat(10_240);
  const seen = [];
  const keys = [long, 'has space', 'caf\u00e9|#1', '', 'ns|v1|a'];
  const values = await cache.getManyOrLoad(keys, (ks) => {
    seen.push(...ks);
    return ks.map((k) => `v:${k.length}`);
  });
  assert.deepEqual(values, keys.map((k) => `v:${k.length}`));
  assert.deepEqual(seen, keys);
  assert.deepEqual([...tier.items.keys()].sort(), keys.map((k) => plainKey(k)).sort());
  assert.ok(tier.items.has('%~has%20space') && tier.items.has('ns|v1|a'));
  assert.equal(plainKey(long).length, 200);
  const fresh = new TieredCache({ tiers: [tier] });
  assert.deepEqual(await fresh.get('has space'), { hit: true, value: 'v:9', source: 'memory' });
  await assert.rejects(cache.get('\ud800'), /lone surrogate/);
  assert.equal(safeKey(long).length, 200);
});

test('values JSON cannot encode are refused, naming the key, and waiters are released', async () => {
  const cache = new TieredCache({ tiers: [memoryTier()] });
  const circular = {};
  circular.self = circular;
  for (const [value, message] of [
    [10n, /bigint/],
    [circular, /circular/i],
    [NaN, /NaN is not a JSON number/],
    [{ m: new Map() }, /Map would not survive JSON/],
    [undefined, /use null/],
    [() => 1, /JSON cannot encode|function/],
  ]) {
    await assert.rejects(cache.setAllTiers('bad|v1', value), { name: 'TypeError', message: message });
  }
  // Through a loader: every concurrent caller gets the error, none hangs.
  const calls = Array.from({ length: 5 }, () => cache.getOrLoad('bad|v2', async () => 10n));
  const settled = await Promise.allSettled(calls);
  assert.ok(settled.every((s) => s.status === 'rejected' && /cannot be JSON-encoded/.test(s.reason.message)));
});

test('a tier that rejects is skipped: the read falls through, the error is reported', async () => {
  const broken = { ...memoryTier({ name: 'down' }), getMany: async () => { throw new Error('ECONNREFUSED'); }, setMany: async () => { throw new Error('ECONNREFUSED'); } };
  const errors = [];
  const cache = new TieredCache({ tiers: [broken], onError: (e, tier) => errors.push([tier, e.message]) });
  assert.equal(await cache.getOrLoad('r|v1', () => 'loaded'), 'loaded');
  assert.ok(errors.some(([tier, m]) => tier === 'down' && m === 'ECONNREFUSED'));
  assert.ok(cache.stats().tiers[0].errors >= 1);
  // Strict mode: the failure is the caller's error.
  const strict = new TieredCache({ tiers: [broken], strict: true });
  await assert.rejects(strict.get('r|v1'), { kind: 'tier_failure', message: /"down" failed in strict mode: ECONNREFUSED/ });
});

test('a failed tier cools down; after it, a successful write ends the cool-down', async () => {
  let down = true;
  let fetches = 0;
  const tier = memoryTier({ name: 'flaky' });
  const getMany = tier.getMany.bind(tier);
  const setMany = tier.setMany.bind(tier);
  tier.getMany = async (ks) => (fetches++, down ? Promise.reject(new Error('ECONNREFUSED')) : getMany(ks));
  tier.setMany = async (entries) => (down ? Promise.reject(new Error('ECONNREFUSED')) : setMany(entries));
  let now = 1_000_000;
  const cache = new TieredCache({ tiers: [tier], local: false, clock: () => now, cooldown: { failuresToTrip: 3, cooldownMs: 1000 }, onError: () => {} });
  for (let i = 0; i < 4; i++) await cache.get(`c|${i}`);
  assert.equal(fetches, 3, 'three failures trip the cool-down: the fourth read skips the tier');
  now += 1001; // the cool-down is over; the tier answers writes again
  down = false;
  await cache.setAllTiers('c|w', 'written');
  assert.equal(tier.items.size, 1);
  down = true; // failing again: the write reset its count, so one failure does not trip it
  await cache.get('c|x');
  await cache.get('c|y');
  assert.equal(fetches, 5, 'the tier is still asked after one new failure');
});

test('a tier that never answers times out; the read completes', async () => {
  const hanging = { ...memoryTier({ name: 'slow' }), getMany: () => new Promise(() => {}), setMany: () => new Promise(() => {}) };
  const errors = [];
  const cache = new TieredCache({ tiers: [hanging], tierTimeoutMs: 50, onError: (e) => errors.push(e) });
  const started = Date.now();
  assert.equal(await cache.getOrLoad('t|v1', () => 'loaded'), 'loaded');
  assert.ok(Date.now() - started < 1000);
  assert.ok(errors.some((e) => e instanceof StratacacheError && e.kind === 'timeout' && /getMany on tier slow timed out after 50 ms/.test(e.message)));
});

test('a tier that returns garbage is a tier error, not a crash', async () => {
  const odd = { ...memoryTier({ name: 'odd' }), getMany: async (ks) => ks.map(() => 'not bytes') };
  const cache = new TieredCache({ tiers: [odd] });
  assert.equal(await cache.getOrLoad('g|v1', () => 1), 1);
  const short = { ...memoryTier({ name: 'short' }), getMany: async () => [] };
  assert.equal(await new TieredCache({ tiers: [short] }).getOrLoad('g|v1', () => 2), 2);
});

test('a loader that rejects or hangs fails every waiting caller, with a clear error', async () => {
  const cache = new TieredCache({ tiers: [memoryTier()], loadTimeoutMs: 100 });
  const failing = Array.from({ length: 3 }, () => cache.getOrLoad('l|v1', async () => { await sleep(10); throw new Error('database down'); }));
  for (const s of await Promise.allSettled(failing)) {
    assert.equal(s.status, 'rejected');
    assert.match(s.reason.message, /database down/);
  }
  const started = Date.now();
  await assert.rejects(cache.getOrLoad('l|v2', () => new Promise(() => {})), { kind: 'timeout', message: /loader for 1 key\(s\) timed out after 100 ms/ });
  assert.ok(Date.now() - started < 2000);
  // The key is not stuck: the next caller loads it.
  assert.equal(await cache.getOrLoad('l|v2', () => 'fine'), 'fine');
  await assert.rejects(cache.getManyOrLoad(['a|v1', 'b|v1'], async () => ['only one']), /returned 1 values for 2 keys/);
});

test('bad adapters and options are refused when the cache is built', () => {
  assert.throws(() => new TieredCache({ tiers: [{}] }), /has no getMany\(\) method/);
  assert.throws(() => new TieredCache({ tiers: [{ ...memoryTier(), kind: 'dynamo' }] }), /kind "dynamo"/);
  assert.throws(() => new TieredCache({ signingKeys: [{ id: '2025a', secret: 'short' }] }), /at least 16/);
  assert.throws(() => new TieredCache({ ttlJitter: 2 }), /ttlJitter is out of range/);
  assert.throws(() => new TieredCache({ tiers: [memoryTier({ itemLimit: 10 })] }), /item limit of 10 bytes/);
});

test('keys cross to wasm joined: mixed ASCII, 2-, 3- and 4-byte characters and empty keys stay apart', async () => {
  const tier = memoryTier({ name: 'm\u00e9moire' });
  // Key ids are ASCII; a refused one comes back whole in the message.
  assert.throws(() => new TieredCache({ tiers: [tier], signingKeys: [{ id: 'cl\u00e9', secret: SECRET }, { id: 'k2', secret: SECRET }] }), /key id "cl\u00e9" is invalid/);
  const cache = new TieredCache({ tiers: [tier], signingKeys: [{ id: 'k1', secret: SECRET }, { id: 'k2', secret: SECRET }] });
  const keys = ['a', '', 'caf\u00e9', '\u20ac', '\u{1F600}x', 'b', '', 'z\u{1F600}'];
  const values = await cache.getManyOrLoad(keys, (ks) => ks.map((k) => `v:${k}`));
  assert.deepEqual(values, keys.map((k) => `v:${k}`));
  assert.deepEqual([...tier.items.keys()].sort(), [...new Set(keys.map((k) => plainKey(k)))].sort());
  const fresh = new TieredCache({ tiers: [tier], signingKeys: [{ id: 'k1', secret: SECRET }] });
  const got = await fresh.getMany(keys);
  assert.deepEqual(got.map((r) => [r.key, r.hit, r.value, r.source]), keys.map((k) => [k, true, `v:${k}`, 'm\u00e9moire']));
  assert.equal(fresh.stats().tiers[0].name, 'm\u00e9moire');
});

test('keys are written into wasm memory: reads after the memory grows, and reads bigger than the room so far, get their own keys', async () => {
  const { wasmMemory } = await import('./node_modules/stratacache/runtime.js');
  const tier = memoryTier();
  const cache = new TieredCache({ tiers: [tier] });
  const small = ['a', 'b\u00e9', 'c'];
  assert.deepEqual(await cache.getManyOrLoad(small, (ks) => ks.map((k) => `v:${k}`)), small.map((k) => `v:${k}`));
  // A growth of wasm memory detaches the views the last read wrote through.
  wasmMemory().grow(1);
  assert.deepEqual((await cache.getMany(small)).map((r) => [r.key, r.value, r.source]), small.map((k) => [k, `v:${k}`, 'local']));
  // More keys and bytes than the room reserved so far.
  const big = Array.from({ length: 500 }, (_, i) => `key-${i}-${'x'.repeat(i % 40)}`);
  assert.deepEqual(await cache.getManyOrLoad(big, (ks) => ks.map((k) => `v:${k}`)), big.map((k) => `v:${k}`));
  assert.deepEqual((await cache.getMany(big)).map((r) => [r.key, r.value]), big.map((k) => [k, `v:${k}`]));
  assert.deepEqual((await cache.getMany([])), []);
});

test('keys are read right wherever their buffers are in wasm memory (addresses above 16 MB too)', async () => {
  const tier = memoryTier();
  const asked = [];
  const spy = { ...tier, async getMany(keys) { asked.push(...keys); return tier.getMany(keys); } };
  const cache = new TieredCache({ tiers: [spy], local: false });
  // Each read needs more room than the last: its buffers go higher up.
  for (const n of [1_000, 20_000, 60_000]) {
    const keys = Array.from({ length: n }, (_, i) => `k${i}-${'x'.repeat(190)}`);
    asked.length = 0;
    const results = await cache.getMany(keys);
    assert.equal(results.length, n);
    assert.equal(asked.length, n);
    assert.ok(asked.every((k, i) => k === keys[i]), `the tier was asked for the read's own keys (${n} keys)`);
  }
});

test('RequestCache: namespaces, stored undefined is a hit, delete/clear/size per namespace, bad namespaces refused', () => {
  const request = new RequestCache();
  request.set('k', 'default').set('k', 'in a', 'a').set('k', undefined, 'b');
  assert.equal(request.get('k'), 'default');
  assert.equal(request.get('k', 'a'), 'in a');
  assert.deepEqual(request.lookup('k', 'b'), { hit: true, value: undefined });
  assert.deepEqual(request.lookup('missing', 'b'), { hit: false, value: undefined });
  assert.equal(request.has('k', 'b'), true);
  assert.equal(request.has('k', 'c'), false);
  assert.deepEqual([request.size(), request.size('a'), request.size('c')], [3, 1, 0]);
  assert.equal(request.delete('k', 'a'), true);
  assert.equal(request.delete('k', 'a'), false);
  request.clear('b');
  assert.deepEqual([request.size(), request.size('b'), request.get('k')], [1, 0, 'default']);
  assert.throws(() => request.set('k', 1, ''), TypeError);
  assert.throws(() => request.get('k', 'tiercache.locks'), TypeError);
});
