// `stratacache/tools` for browsers (and Deno): the envelope and chunk formats
// (EnvelopeCodec), in a wasm module of their own, fetched next to this file.
import init from './stratacache_tools.js';

await init({ module_or_path: new URL('./stratacache_tools_bg.wasm', import.meta.url) });

export { EnvelopeCodec } from './stratacache_tools.js';
