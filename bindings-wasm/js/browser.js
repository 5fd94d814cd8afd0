// Entry point for browsers (and Deno): fetches and instantiates the module
// (top-level await) next to this file.
import init from './stratacache_core.js';
import { attach } from './runtime.js';

attach(await init({ module_or_path: new URL('./stratacache_core_bg.wasm', import.meta.url) }));

export * from './lib.js';
