// Entry point for Cloudflare Workers / workerd (and bundlers that import a
// .wasm file as a WebAssembly.Module): instantiates the module synchronously.
import wasmModule from './stratacache_core_bg.wasm';
import { initSync } from './stratacache_core.js';
import { attach } from './runtime.js';

attach(initSync({ module: wasmModule }));

export * from './lib.js';
