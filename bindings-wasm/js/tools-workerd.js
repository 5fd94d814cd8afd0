// `tiercache/tools` for Cloudflare Workers / workerd: the envelope and chunk
// formats (EnvelopeCodec), in a wasm module of their own.
import wasmModule from './tiercache_tools_bg.wasm';
import { initSync } from './tiercache_tools.js';

initSync({ module: wasmModule });

export { EnvelopeCodec } from './tiercache_tools.js';
