// stratacache/metrics over a real TieredCache (the built package) and a
// recording stand-in for an OpenTelemetry Meter (the API's four calls).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TieredCache, memoryTier } from 'stratacache';
import { statsSnapshot, registerOpenTelemetry } from 'stratacache/metrics';

function recordingMeter() {
  const observable = new Map();
  const histograms = new Map();
  const make = (name) => {
    const callbacks = [];
    observable.set(name, callbacks);
    return { addCallback: (cb) => callbacks.push(cb) };
  };
  return {
    createObservableCounter: make,
    createObservableGauge: make,
    createHistogram(name) {
      const records = [];
      histograms.set(name, records);
      return { record: (value, attributes) => records.push({ value, attributes }) };
    },
    collect(name) {
      const points = [];
      for (const cb of observable.get(name) ?? []) cb({ observe: (value, attributes) => points.push({ value, attributes }) });
      return points;
    },
    histograms,
    names: () => [...observable.keys()],
  };
}

test('statsSnapshot is stats() with the local hit ratio and a time', async () => {
  const cache = new TieredCache({ tiers: [memoryTier({ name: 'kv' })] });
  await cache.getOrLoad('a', async () => 1);
  await cache.get('a');
  const snap = statsSnapshot(cache, 1234);
  assert.equal(snap.at, 1234);
  assert.equal(snap.local.hitRatio, snap.local.hits / (snap.local.hits + snap.local.misses));
  assert.ok(snap.local.hitRatio > 0 && snap.local.hitRatio < 1);
  assert.equal(snap.tiers[0].name, 'kv');
  assert.deepEqual(Object.keys(snap.reads), Object.keys(cache.stats().reads));
  JSON.stringify(snap); // JSON-ready
});

test('registerOpenTelemetry exports per-tier counters, local gauges and a latency histogram', async () => {
  const kv = memoryTier({ name: 'kv' });
  const cache = new TieredCache({ tiers: [kv] });
  const meter = recordingMeter();
  const exported = registerOpenTelemetry({ default: cache }, meter);
  await cache.getOrLoad('a', async () => 1);
  await cache.get('a'); // local
  cache.clearLocal();
  await cache.get('a'); // kv
  await cache.getMany(['a', 'b']); // a local, b missing everywhere
  assert.deepEqual(meter.collect('stratacache.tier.hits'), [{ value: 1, attributes: { cache: 'default', tier: 'kv' } }]);
  assert.equal(meter.collect('stratacache.tier.writes')[0].value, 1);
  assert.ok(meter.names().includes('stratacache.tier.errors'));
  assert.ok(meter.names().includes('stratacache.tier.chunked_reads'));
  assert.ok(meter.names().includes('stratacache.local.evictions'));
  assert.equal(meter.collect('stratacache.reads.loads')[0].value, 1);
  const ratio = meter.collect('stratacache.local.hit_ratio')[0];
  assert.ok(ratio.value > 0 && ratio.value < 1);
  const sources = meter.histograms.get('stratacache.read.duration').map((r) => r.attributes.source);
  assert.deepEqual(sources, ['read', 'local', 'kv', 'miss']);
  exported.close();
  await cache.get('a');
  assert.equal(meter.histograms.get('stratacache.read.duration').length, 4); // unwrapped
  assert.ok(!Object.hasOwn(cache, 'get'));
});
