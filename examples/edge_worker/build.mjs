// Bundles src/worker.js as wrangler would (workerd's export conditions, the
// .wasm kept as a module) into dist/: worker.js + stratacache_core_bg.wasm.
// Usage: node build.mjs [outdir]
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * Bundles the worker (or another module that imports it: `entry`) into
 * `outdir`; returns the paths Miniflare needs.
 */
export async function bundle(outdir = path.join(here, 'dist'), entry = path.join(here, 'src/worker.js')) {
  mkdirSync(outdir, { recursive: true });
  await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    conditions: ['workerd', 'worker', 'browser'],
    external: ['*.wasm'],
    outfile: path.join(outdir, 'worker.js'),
    logLevel: 'error',
  });
  const pkg = path.dirname(createRequire(import.meta.url).resolve('stratacache/package.json'));
  copyFileSync(path.join(pkg, 'stratacache_core_bg.wasm'), path.join(outdir, 'stratacache_core_bg.wasm'));
  return {
    root: outdir,
    modules: [
      { type: 'ESModule', path: path.join(outdir, 'worker.js') },
      { type: 'CompiledWasm', path: path.join(outdir, 'stratacache_core_bg.wasm') },
    ],
  };
}

/**
 * Miniflare's options for one isolate named `name` running the bundled
 * worker (what `bundle` returned) with the KV namespace CACHE and `bindings`
 * (ORIGIN, SIGNING_SECRET, ...; see wrangler.toml).
 */
export function workerOptions(name, { root, modules }, bindings) {
  return {
    name,
    modules,
    modulesRoot: root,
    compatibilityDate: '2025-01-01',
    kvNamespaces: { CACHE: 'outline-cache' },
    bindings,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = await bundle(process.argv[2] ? path.resolve(process.argv[2]) : undefined);
  console.log(`bundled into ${out.root}`);
}
