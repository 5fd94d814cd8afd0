// `stratacache/tools` for Cloudflare Workers / workerd: the envelope and chunk
// formats (EnvelopeCodec), in a wasm module of their own.
import wasmModule from './stratacache_tools_bg.wasm';
import { initSync } from './stratacache_tools.js';

initSync({ module: wasmModule });

export { EnvelopeCodec } from './stratacache_tools.js';
