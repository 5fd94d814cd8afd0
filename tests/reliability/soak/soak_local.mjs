// LocalCache soak (issue 7, "Soak and memory"), JS contenders.
//
// One process runs one contender over the op stream shared with
// soak_local.py and core/examples/soak_local.rs (xorshift32, three draws per
// op; see soak_local.py for the mix) and prints one JSON object with RSS
// sampled every --sample ops (and, in JS, the heap used and the bytes of
// ArrayBuffers from process.memoryUsage()). Values are fresh Uint8Arrays of 16 B - 16 KiB
// weighed at their length; time is a fake clock moved by the op index (10
// ops per ms), given to stratacache as `clock` and to lru-cache as `perf`.
//
// Contenders: stratacache (LocalCache from the npm package in
// bindings-wasm/pkg: maxEntries, maxBytes), lru-cache (npm lru-cache from
// bindings-wasm/node_modules: max, maxSize, per-entry ttl).
//
// --gc (with node --expose-gc) runs a full GC before each sample, so RSS
// shows what is retained rather than garbage the GC has not yet collected
// (the fast test uses it; the long run does not).
//
// Usage: node [--expose-gc] soak_local.mjs CONTENDER [--ops N] [--sample N] [--progress] [--gc]
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const HOT = 4096;
export const MAX_ENTRIES = 50_000;
export const MAX_BYTES = 32 << 20;
const HOT_TTL_MS = 60_000;
const OPS_PER_MS = 10;
const START_MS = 1_700_000_000_000;
const SEED = 2463534242;

export function rssBytes() {
  const status = readFileSync('/proc/self/status', 'latin1');
  const m = /VmRSS:\s+(\d+)/.exec(status);
  if (!m) throw new Error('no VmRSS in /proc/self/status');
  return Number(m[1]) * 1024;
}

/**
 * What V8 holds at a sample: [JS heap used, bytes of ArrayBuffers (the
 * values)]. RSS also counts freed memory V8 and malloc keep for reuse.
 */
export function heap() {
  const m = process.memoryUsage();
  return [m.heapUsed, m.arrayBuffers];
}

/** {get, set(key, value, ttlMs), delete, size()} over the contender, on the clock. */
export async function build(contender, clock) {
  if (contender === 'stratacache') {
    const { LocalCache } = await import(pathToFileURL(join(REPO, 'bindings-wasm', 'pkg', 'node.js')));
    const cache = new LocalCache({
      maxEntries: MAX_ENTRIES,
      maxBytes: MAX_BYTES,
      ttlMs: HOT_TTL_MS,
      sizeOf: (v) => v.length,
      clock: () => clock.ms,
    });
    return {
      get: (k) => cache.get(k),
      set: (k, v, ttlMs) => cache.set(k, v, { ttlMs, size: v.length }),
      delete: (k) => cache.delete(k),
      size: () => cache.size,
    };
  }
  if (contender === 'lru-cache') {
    const { LRUCache } = await import(pathToFileURL(join(REPO, 'bindings-wasm', 'node_modules', 'lru-cache', 'dist', 'esm', 'index.js')));
    const cache = new LRUCache({
      max: MAX_ENTRIES,
      maxSize: MAX_BYTES,
      sizeCalculation: (v) => v.length,
      ttl: HOT_TTL_MS,
      perf: { now: () => clock.ms },
    });
    return {
      get: (k) => cache.get(k),
      set: (k, v, ttl) => cache.set(k, v, { ttl }),
      delete: (k) => cache.delete(k),
      size: () => cache.size,
    };
  }
  throw new Error(`unknown contender ${contender}: one of stratacache, lru-cache`);
}

export async function run(contender, ops, sample, progress = false, collect = false) {
  const clock = { ms: START_MS };
  const c = await build(contender, clock);
  const blob = new Uint8Array(32 << 10);
  for (let i = 0; i < blob.length; i++) blob[i] = (i * 131 + 7) & 0xff;
  const hotKeys = Array.from({ length: HOT }, (_, n) => `hot:${n}`);
  globalThis.gc?.();
  const baseline = rssBytes();
  let x = SEED;
  let hits = 0;
  let misses = 0;
  let digest = 0;
  const samples = [[0, rssBytes(), 0, ...heap()]];
  let nextSample = sample;
  const reportEvery = Math.max(Math.floor(ops / 20), 1);
  const t0 = performance.now();
  for (let i = 0; i < ops; i++) {
    clock.ms = START_MS + Math.floor(i / OPS_PER_MS);
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    const r = x % 100;
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    const y = x;
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    const span = 16 << ((y >>> 12) % 10);
    const length = span + (x % span);
    digest = (Math.imul(digest, 31) + r * 65536 + length) >>> 0;
    if (r < 45) {
      const key = hotKeys[y & 4095];
      if (c.get(key) === undefined) {
        misses++;
        c.set(key, blob.slice(0, length), HOT_TTL_MS);
      } else {
        hits++;
      }
    } else if (r < 80) {
      c.set(`fresh:${i}`, blob.slice(0, length), (1 + ((y >>> 16) % 10)) * 1000);
    } else if (r < 90) {
      c.set(hotKeys[y & 4095], blob.slice(0, length), HOT_TTL_MS);
    } else if (r < 95) {
      if (c.get(`absent:${i}`) !== undefined) throw new Error('a key that was never set was found');
      misses++;
    } else {
      c.delete(hotKeys[y & 4095]);
    }
    if (i + 1 === nextSample) {
      if (collect) {
        // Two full GCs: V8 frees dead ArrayBuffers' memory (and lowers
        // memoryUsage().arrayBuffers) while sweeping after a GC; the next
        // full GC finishes that sweep, so the figures are what is retained.
        globalThis.gc();
        globalThis.gc();
      }
      samples.push([i + 1, rssBytes(), c.size(), ...heap()]);
      nextSample += sample;
      if (progress && (i + 1) % reportEvery < sample) {
        const s = samples[samples.length - 1];
        process.stderr.write(
          `  [js ${contender}] ${String(s[0]).padStart(11)} ops  rss ${(s[1] / 2 ** 20).toFixed(1).padStart(7)} MiB  entries ${String(s[2]).padStart(7)}\n`,
        );
      }
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  if (samples[samples.length - 1][0] !== ops) samples.push([ops, rssBytes(), c.size(), ...heap()]);
  return summarize('js', contender, ops, seconds, baseline, samples, hits, misses, digest);
}

export function summarize(host, contender, ops, seconds, baseline, samples, hits, misses, digest) {
  const warmAt = Math.floor(ops / 5);
  const warm = samples.find((s) => s[0] >= warmAt);
  const after = samples.filter((s) => s[0] >= warmAt).map((s) => s[1]);
  const last = samples[samples.length - 1];
  const peakAfter = Math.max(...after);
  return {
    host,
    contender,
    ops,
    seconds,
    ops_per_s: seconds ? ops / seconds : 0,
    max_entries: MAX_ENTRIES,
    max_bytes: MAX_BYTES,
    baseline_rss: baseline,
    warm_ops: warm[0],
    warm_rss: warm[1],
    peak_rss: Math.max(...samples.map((s) => s[1])),
    peak_rss_after_warm: peakAfter,
    final_rss: last[1],
    growth_after_warm: last[1] - warm[1],
    peak_growth_after_warm: peakAfter - warm[1],
    final_entries: last[2],
    ...(last.length > 4
      ? {
          final_heap_used: last[3],
          final_array_buffers: last[4],
          peak_heap_used: Math.max(...samples.map((s) => s[3])),
          peak_array_buffers: Math.max(...samples.map((s) => s[4])),
        }
      : {}),
    hits,
    misses,
    digest,
    samples,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1].replaceAll('_', '')) : dflt;
  };
  const contender = args[0];
  const ops = opt('--ops', 10_000_000);
  const sample = opt('--sample', 0) || Math.max(Math.floor(ops / 200), 1);
  const collect = args.includes('--gc');
  if (collect && typeof globalThis.gc !== 'function') throw new Error('--gc needs node --expose-gc');
  const result = await run(contender, ops, sample, args.includes('--progress'), collect);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
