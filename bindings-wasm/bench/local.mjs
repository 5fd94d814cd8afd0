// LocalCache (tiercache, policy in wasm) vs npm lru-cache, in one run.
// Usage: node bench/local.mjs [seconds-per-case]   (run via scripts/bench-wasm.sh)
import { LRUCache } from 'lru-cache';
import { LocalCache } from 'tiercache';

const MAX = 10_000;
const SECONDS = Number(process.argv[2] ?? 1);
const KEYS = Array.from({ length: 4 * MAX }, (_, i) => `course-v1:edX+C${i}+2024|block@${(i * 2654435761) % 100003}`);

function time(fn, ops) {
  // Warm up, then run rounds for SECONDS; report the best round (ns/op).
  fn();
  let best = Infinity;
  const end = performance.now() + SECONDS * 1000;
  do {
    const t0 = performance.now();
    fn();
    const ns = ((performance.now() - t0) * 1e6) / ops;
    if (ns < best) best = ns;
  } while (performance.now() < end);
  return best;
}

function getHit(cache) {
  for (let i = 0; i < MAX; i++) cache.set(KEYS[i], i);
  const n = 1_000_000;
  let sink = 0;
  const ns = time(() => {
    for (let i = 0; i < n; i++) sink += cache.get(KEYS[(i * 7919) % MAX]);
  }, n);
  if (sink < 0) console.log(sink);
  return ns;
}

function setEvict(cache) {
  for (let i = 0; i < MAX; i++) cache.set(KEYS[i], i);
  const n = 200_000;
  let k = MAX;
  return time(() => {
    for (let i = 0; i < n; i++) {
      cache.set(KEYS[k], i);
      k = k + 1 === KEYS.length ? 0 : k + 1;
    }
  }, n);
}

function mixed(cache) {
  // 90% gets over a skewed key set, 10% sets: misses are filled.
  const n = 500_000;
  const range = 2 * MAX;
  let seed = 1;
  return time(() => {
    for (let i = 0; i < n; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      const r = seed % 100;
      const key = KEYS[(seed >>> 7) % (r < 80 ? MAX / 2 : range)];
      if (r < 90) {
        if (cache.get(key) === undefined) cache.set(key, i);
      } else {
        cache.set(key, i);
      }
    }
  }, n);
}

const cases = [
  ['get (hit), 10,000 string keys', getHit],
  ['set with eviction (full cache)', setEvict],
  ['mixed 90% get / 10% set, misses filled', mixed],
];
const rows = [];
for (const [name, fn] of cases) {
  const peer = fn(new LRUCache({ max: MAX }));
  const ours = fn(new LocalCache({ maxEntries: MAX }));
  rows.push({ case: name, 'lru-cache ns/op': peer.toFixed(1), 'tiercache ns/op': ours.toFixed(1), 'speed ratio (lru/ours)': (peer / ours).toFixed(2) });
}
console.table(rows);
console.log('ratio >= 1.00 means tiercache LocalCache is at least as fast as lru-cache');
