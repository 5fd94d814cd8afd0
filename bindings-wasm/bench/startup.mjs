// Module instantiation + first call: in Node (V8, timed in-process) and in
// workerd (timed from outside: first request, which instantiates the module,
// minus the median of later requests). Prints the package sizes too.
import { readFileSync, mkdtempSync, writeFileSync, copyFileSync, rmSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Miniflare } from 'miniflare';

const require = createRequire(import.meta.url);
const pkg = path.dirname(require.resolve('tiercache/package.json'));
const wasmPath = path.join(pkg, 'tiercache_core_bg.wasm');
const wasm = readFileSync(wasmPath);
const js = ['tiercache_core.js', 'lib.js', 'local.js', 'tiered.js', 'adapters.js', 'codec.js', 'key.js', 'request.js', 'runtime.js', 'workerd.js']
  .map((f) => readFileSync(path.join(pkg, f)));
const jsAll = Buffer.concat(js);
console.log(`wasm: ${wasm.length} bytes, ${gzipSync(wasm, { level: 9 }).length} gzipped; JS: ${jsAll.length} bytes, ${gzipSync(jsAll, { level: 9 }).length} gzipped`);

// Node: compile + instantiate + first call.
{
  const { initSync } = await import(path.join(pkg, 'tiercache_core.js'));
  const runtime = await import(path.join(pkg, 'runtime.js'));
  const t0 = performance.now();
  runtime.attach(initSync({ module: new WebAssembly.Module(wasm) }));
  const { LocalCache } = await import(path.join(pkg, 'local.js'));
  const c = new LocalCache({ maxEntries: 100 });
  c.set('k', 1);
  c.get('k');
  console.log(`Node ${process.version}: compile + instantiate + first call: ${(performance.now() - t0).toFixed(2)} ms`);
}

// workerd: the worker instantiates the (already compiled) module on its first request.
const dir = mkdtempSync(path.join(tmpdir(), 'tiercache-startup-'));
try {
  for (const f of ['tiercache_core.js', 'runtime.js', 'local.js']) copyFileSync(path.join(pkg, f), path.join(dir, f));
  copyFileSync(wasmPath, path.join(dir, 'tiercache_core_bg.wasm'));
  writeFileSync(
    path.join(dir, 'worker.js'),
    `import mod from './tiercache_core_bg.wasm';
import { initSync } from './tiercache_core.js';
import { attach } from './runtime.js';
import { LocalCache } from './local.js';
let cache;
export default { async fetch() {
  if (!cache) { attach(initSync({ module: mod })); cache = new LocalCache({ maxEntries: 100 }); }
  cache.set('k', 1);
  return new Response(String(cache.get('k')));
} };`,
  );
  const mf = new Miniflare({
    modules: [
      { type: 'ESModule', path: path.join(dir, 'worker.js') },
      { type: 'ESModule', path: path.join(dir, 'tiercache_core.js') },
      { type: 'ESModule', path: path.join(dir, 'runtime.js') },
      { type: 'ESModule', path: path.join(dir, 'local.js') },
      { type: 'CompiledWasm', path: path.join(dir, 'tiercache_core_bg.wasm') },
    ],
    modulesRoot: dir,
    compatibilityDate: '2025-01-01',
  });
  await mf.ready;
  const url = await mf.ready;
  const time = async () => {
    const t0 = performance.now();
    const res = await fetch(url);
    await res.text();
    return performance.now() - t0;
  };
  const first = await time();
  const later = [];
  for (let i = 0; i < 30; i++) later.push(await time());
  later.sort((a, b) => a - b);
  const median = later[later.length >> 1];
  console.log(`workerd: first request ${first.toFixed(2)} ms, later requests (median) ${median.toFixed(2)} ms => instantiation + first call ~ ${(first - median).toFixed(2)} ms`);
  await mf.dispose();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
