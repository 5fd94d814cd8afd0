// Metrics of a TieredCache for the JS hosts: a stats snapshot (the shape of
// Python's `stratacache.metrics.snapshot`, camelCase) and an export through
// the OpenTelemetry API (`@opentelemetry/api`, passed in: no dependency).

/**
 * `cache.stats()` with the local tier's `hitRatio`, each tier's `source`
 * position, and `at` (ms since the epoch): one JSON-ready object.
 *
 * @example
 * import { statsSnapshot } from 'stratacache/metrics';
 * console.log(JSON.stringify(statsSnapshot(cache)));
 */
export function statsSnapshot(cache, now = Date.now()) {
  const stats = cache.stats();
  if (stats.local) {
    const asked = stats.local.hits + stats.local.misses;
    stats.local.hitRatio = asked ? stats.local.hits / asked : 0;
  }
  stats.at = now;
  return stats;
}

const snake = (name) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const LOCAL_GAUGES = new Set(['entries', 'weight', 'hitRatio']);

/** `[kind, name, attributes, value]` of every counter and gauge of `caches` (`[name, cache]` pairs). */
function samples(caches) {
  const out = [];
  for (const [cacheName, cache] of caches) {
    const stats = statsSnapshot(cache);
    for (const tier of stats.tiers) {
      const attrs = { cache: cacheName, tier: tier.name };
      for (const [name, value] of Object.entries(tier)) {
        if (name !== 'name') out.push(['counter', `tier.${snake(name)}`, attrs, value]);
      }
    }
    for (const [name, value] of Object.entries(stats.reads)) {
      out.push(['counter', `reads.${snake(name)}`, { cache: cacheName }, value]);
    }
    if (stats.local) {
      for (const [name, value] of Object.entries(stats.local)) {
        out.push([LOCAL_GAUGES.has(name) ? 'gauge' : 'counter', `local.${snake(name)}`, { cache: cacheName }, value]);
      }
    }
  }
  return out;
}

const READS = ['get', 'getMany', 'getOrLoad', 'getManyOrLoad'];

/**
 * Exports the counters of `caches` (`{ name: cache }`) through an
 * OpenTelemetry `meter` (observable counters `stratacache.tier.hits` with
 * attributes `cache` and `tier`, ..., gauges `stratacache.local.hit_ratio`,
 * `stratacache.local.entries`), and, unless `latency: false`, records the
 * histogram `stratacache.read.duration` (seconds, attributes `cache`,
 * `source`: where the slowest key came from) by wrapping the caches' read
 * methods. Returns `{ close() }`, which unwraps them.
 *
 * @example
 * import { metrics } from '@opentelemetry/api';
 * import { registerOpenTelemetry } from 'stratacache/metrics';
 * registerOpenTelemetry({ default: cache }, metrics.getMeter('my-worker'));
 */
export function registerOpenTelemetry(caches, meter, { latency = true } = {}) {
  const entries = Object.entries(caches);
  const instruments = new Map();
  for (const [kind, name] of samples(entries)) {
    if (instruments.has(name)) continue;
    const full = `stratacache.${name}`;
    const instrument = kind === 'counter' ? meter.createObservableCounter(full) : meter.createObservableGauge(full);
    instrument.addCallback((result) => {
      for (const [, n, attrs, value] of samples(entries)) if (n === name) result.observe(value, attrs);
    });
    instruments.set(name, instrument);
  }
  const restore = [];
  if (latency) {
    const histogram = meter.createHistogram('stratacache.read.duration', {
      unit: 's',
      description: 'Time of a stratacache read, by the slowest source that answered it',
    });
    for (const [cacheName, cache] of entries) {
      for (const method of READS) {
        const original = cache[method];
        if (typeof original !== 'function') continue;
        cache[method] = async function (...args) {
          const start = performance.now();
          const result = await original.apply(this, args);
          histogram.record((performance.now() - start) / 1000, { cache: cacheName, source: sourceOf(method, result) });
          return result;
        };
        restore.push(() => delete cache[method]);
      }
    }
  }
  return {
    instruments,
    close() {
      for (const undo of restore) undo();
      restore.length = 0;
    },
  };
}

const ORDER = ['loader', 'miss', 'local', 'request'];

/** Where the slowest key of a read's result came from (`getOrLoad` results carry no source). */
function sourceOf(method, result) {
  if (method === 'get') return result.hit ? result.source : 'miss';
  if (method === 'getMany') {
    const seen = new Set(result.map((r) => (r.hit ? r.source : 'miss')));
    if (seen.has('miss')) return 'miss';
    const remote = [...seen].filter((s) => !ORDER.includes(s));
    if (remote.length) return remote[remote.length - 1];
    return seen.has('local') ? 'local' : seen.has('request') ? 'request' : 'miss';
  }
  return 'read';
}
