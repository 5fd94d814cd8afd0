// Module instantiation + first call: in Node (V8, timed in-process) and in
// workerd (timed inside the worker, in fresh isolates). Prints the package
// sizes too.
import { readFileSync, readdirSync, mkdtempSync, writeFileSync, copyFileSync, rmSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Miniflare } from 'miniflare';

const require = createRequire(import.meta.url);
const pkg = path.dirname(require.resolve('stratacache/package.json'));
const wasmPath = path.join(pkg, 'stratacache_core_bg.wasm');
const wasm = readFileSync(wasmPath);
// What a worker's `import "stratacache"` loads: every module but the other
// entry points and the tools entry's.
const js = readdirSync(pkg)
  .filter((f) => f.endsWith('.js') && !/^(tools-|stratacache_tools|node\.js|browser\.js)/.test(f))
  .map((f) => readFileSync(path.join(pkg, f)));
const jsAll = Buffer.concat(js);
console.log(`wasm: ${wasm.length} bytes, ${gzipSync(wasm, { level: 9 }).length} gzipped (zlib -9); JS: ${jsAll.length} bytes, ${gzipSync(jsAll, { level: 9 }).length} gzipped`);

// Node: compile + instantiate + first call.
{
  const { initSync } = await import(path.join(pkg, 'stratacache_core.js'));
  const runtime = await import(path.join(pkg, 'runtime.js'));
  const t0 = performance.now();
  runtime.attach(initSync({ module: new WebAssembly.Module(wasm) }));
  const { LocalCache } = await import(path.join(pkg, 'local.js'));
  const c = new LocalCache({ maxEntries: 100 });
  c.set('k', 1);
  c.get('k');
  console.log(`Node ${process.version}: compile + instantiate + first call: ${(performance.now() - t0).toFixed(2)} ms`);
}

// workerd: timed inside the worker. Each of ISOLATES workers (one isolate
// each) times, in its first request, with workerd's own clock: instantiating
// the compiled module (workerd compiles `CompiledWasm` modules when it loads
// the script, as Cloudflare does), wasm-bindgen's init, and a first
// LocalCache construction, set and get. Local workerd's clock advances
// during synchronous work (checked: a 141 ms busy loop reads as 141 ms), in
// whole milliseconds: timing starts on a tick, and each sample is the ticks
// seen plus one, an upper bound.
const ISOLATES = 7;
const dir = mkdtempSync(path.join(tmpdir(), 'stratacache-startup-'));
try {
  for (const f of ['stratacache_core.js', 'runtime.js', 'local.js']) copyFileSync(path.join(pkg, f), path.join(dir, f));
  copyFileSync(wasmPath, path.join(dir, 'stratacache_core_bg.wasm'));
  writeFileSync(
    path.join(dir, 'worker.js'),
    `import mod from './stratacache_core_bg.wasm';
import { initSync } from './stratacache_core.js';
import { attach } from './runtime.js';
import { LocalCache } from './local.js';
let cache;
let startupMs;
export default { async fetch() {
  if (!cache) {
    // Start on a tick of workerd's whole-millisecond clock, so the time
    // read after is an upper bound once 1 ms is added.
    const tick = performance.now();
    let t0;
    do t0 = performance.now(); while (t0 === tick);
    attach(initSync({ module: mod }));
    cache = new LocalCache({ maxEntries: 100 });
    cache.set('k', 1);
    cache.get('k');
    startupMs = performance.now() - t0 + 1;
  }
  cache.set('k', 1);
  return Response.json({ startupMs, value: cache.get('k') });
} };`,
  );
  const modules = [
    { type: 'ESModule', path: path.join(dir, 'worker.js') },
    { type: 'ESModule', path: path.join(dir, 'stratacache_core.js') },
    { type: 'ESModule', path: path.join(dir, 'runtime.js') },
    { type: 'ESModule', path: path.join(dir, 'local.js') },
    { type: 'CompiledWasm', path: path.join(dir, 'stratacache_core_bg.wasm') },
  ];
  const mf = new Miniflare({
    workers: Array.from({ length: ISOLATES }, (_, i) => ({ name: `w${i}`, modules, modulesRoot: dir, compatibilityDate: '2025-01-01' })),
  });
  await mf.ready;
  const inside = [];
  for (let i = 0; i < ISOLATES; i++) {
    const worker = await mf.getWorker(`w${i}`);
    const { startupMs, value } = await (await worker.fetch('http://localhost/')).json();
    if (value !== 1) throw new Error(`worker w${i} answered ${value}`);
    inside.push(startupMs);
  }
  // Outside view, for comparison: first request minus later ones, in a fresh isolate.
  const url = await mf.ready;
  const time = async () => {
    const t0 = performance.now();
    await (await fetch(url)).text();
    return performance.now() - t0;
  };
  const first = await time();
  const later = [];
  for (let i = 0; i < 30; i++) later.push(await time());
  later.sort((a, b) => a - b);
  await mf.dispose();
  inside.sort((a, b) => a - b);
  const median = inside[inside.length >> 1];
  console.log(`workerd: instantiation + first call, timed inside the worker over ${ISOLATES} fresh isolates: median < ${median} ms, max < ${inside[inside.length - 1]} ms (upper bounds on workerd's whole-ms clock: ${inside.join(', ')})`);
  console.log(`workerd (outside view): first request ${first.toFixed(2)} ms, later requests (median) ${later[later.length >> 1].toFixed(2)} ms`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
