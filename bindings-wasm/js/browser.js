// Entry point for browsers (and Deno): fetches and instantiates the module
// (top-level await) next to this file.
import init from './stratacache_core.js';
import { attach } from './runtime.js';

// workerd compiles no wasm at run time: a bundle that picked this entry
// (esbuild's defaults target browsers) cannot work there, so say what can.
if (globalThis.navigator?.userAgent === 'Cloudflare-Workers') {
  throw new Error(
    "stratacache: this bundle picked the package's browser entry, which cannot load WebAssembly in " +
      'Cloudflare Workers (workerd). Bundle with the "workerd" export condition and the .wasm as a module: ' +
      'wrangler does this by default; with esbuild add --conditions=workerd --loader:.wasm=copy --format=esm.',
  );
}

attach(await init({ module_or_path: new URL('./stratacache_core_bg.wasm', import.meta.url) }));

export * from './lib.js';
