// Request-cache soak (issue 7, "Soak and memory"), JS: the npm package's
// RequestCache (a wasm RequestRef per request, freed by a
// FinalizationRegistry when the request's cache is garbage).
//
// --tasks concurrent async tasks serve --requests requests in all. Each
// request makes its own RequestCache, writes private values (its id, a fresh
// object, a ~1 KiB string) under the keys every request uses, yields
// (setImmediate) so the other tasks run, and checks it reads back its own
// values only; then it lets the cache go. Every --sample requests the driver
// runs the GC (node --expose-gc), lets finalizers run, and checks through
// WeakRefs that the private objects of every request finished before the
// previous sample are gone (nothing outlives its request once the GC has
// run), then samples RSS, the JS heap in use and the wasm memory size. Prints one JSON object.
//
// Usage: node --expose-gc soak_request.mjs [--requests N] [--tasks K] [--progress]
import { setImmediate as tick } from 'node:timers/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { heap, rssBytes } from './soak_local.mjs';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const PKG = join(REPO, 'bindings-wasm', 'pkg');

export async function run(requests, tasks, sample, progress = false) {
  if (typeof globalThis.gc !== 'function') throw new Error('run node with --expose-gc');
  const { RequestCache } = await import(pathToFileURL(join(PKG, 'node.js')));
  const { wasmMemory } = await import(pathToFileURL(join(PKG, 'runtime.js')));
  let nextId = 0;
  let done = 0;
  const sightings = [];
  const survivors = [];
  let pending = []; // WeakRefs of requests finished since the last sample
  let previous = [];
  const samples = [];
  const saw = (what) => sightings.length < 100 && sightings.push(what);
  const outlived = (what) => survivors.length < 100 && survivors.push(what);

  async function collect() {
    for (let i = 0; i < 3; i++) {
      globalThis.gc();
      await tick();
    }
  }

  async function sampleNow() {
    await collect();
    for (const [rid, ref] of previous) if (ref.deref() !== undefined) outlived(`request ${rid}: its private value is alive after its end and 2 GCs`);
    previous = pending;
    pending = [];
    samples.push([done, rssBytes(), wasmMemory().buffer.byteLength, heap()[0]]);
    if (progress && done % Math.max(Math.floor(requests / 20), 1) < sample) {
      const s = samples[samples.length - 1];
      process.stderr.write(
        `  [js request-cache] ${String(done).padStart(10)} requests  rss ${(s[1] / 2 ** 20).toFixed(1).padStart(6)} MiB  wasm ${(s[2] / 2 ** 20).toFixed(1)} MiB  sightings ${sightings.length}  survivors ${survivors.length}\n`,
      );
    }
  }

  let sampling = null;
  async function worker() {
    for (;;) {
      if (sampling) await sampling;
      if (nextId >= requests) return;
      const rid = nextId++;
      let ref;
      {
        const cache = new RequestCache();
        const priv = { rid };
        ref = new WeakRef(priv);
        cache.set('user', rid);
        cache.set('private', priv);
        cache.set('blob', `${rid}:${'x'.repeat(1024)}`, 'other');
        cache.set(`only:${rid}`, rid);
        for (let step = 0; step < 3; step++) {
          await tick();
          if (cache.get('user') !== rid) saw(`request ${rid} step ${step}: user is ${cache.get('user')}`);
          if (cache.get('private') !== priv) saw(`request ${rid} step ${step}: private object is another's`);
          const blob = cache.get('blob', 'other');
          if (typeof blob !== 'string' || !blob.startsWith(`${rid}:`)) saw(`request ${rid} step ${step}: blob is ${String(blob).slice(0, 20)}`);
          if (rid > 0 && cache.has(`only:${rid - 1}`)) saw(`request ${rid} step ${step}: sees only:${rid - 1}`);
          cache.set('user', rid);
        }
      }
      pending.push([rid, ref]);
      done++;
      if (done % sample === 0 && !sampling) {
        sampling = sampleNow().finally(() => {
          sampling = null;
        });
      }
    }
  }

  await collect();
  samples.push([0, rssBytes(), wasmMemory().buffer.byteLength, heap()[0]]);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: tasks }, worker));
  if (sampling) await sampling;
  await sampleNow();
  await sampleNow(); // checks the last batch too
  const seconds = (performance.now() - t0) / 1000;
  const warmAt = Math.floor(requests / 5);
  const warm = samples.find((s) => s[0] >= warmAt);
  const after = samples.filter((s) => s[0] >= warmAt);
  const last = samples[samples.length - 1];
  return {
    host: 'js',
    contender: 'request-cache',
    requests: done,
    tasks,
    seconds,
    requests_per_s: done / seconds,
    sightings: sightings.length,
    sighting_examples: sightings.slice(0, 5),
    survivors: survivors.length,
    survivor_examples: survivors.slice(0, 5),
    warm_rss: warm[1],
    peak_rss: Math.max(...samples.map((s) => s[1])),
    final_rss: last[1],
    growth_after_warm: last[1] - warm[1],
    peak_growth_after_warm: Math.max(...after.map((s) => s[1])) - warm[1],
    // What the JS heap still holds after full GCs: a leak of requests'
    // values grows it by their size; RSS also moves with V8's page reuse.
    heap_growth_after_warm: Math.max(...after.map((s) => s[3])) - warm[3],
    warm_wasm_bytes: warm[2],
    final_wasm_bytes: last[2],
    samples,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1].replaceAll('_', '')) : dflt;
  };
  const requests = opt('--requests', 1_000_000);
  const tasks = opt('--tasks', 200);
  const sample = opt('--sample', 0) || Math.max(Math.floor(requests / 200), 1);
  const result = await run(requests, tasks, sample, args.includes('--progress'));
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
