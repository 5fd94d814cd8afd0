// `stratacache/tools` for Node.js: the envelope and chunk formats
// (EnvelopeCodec), in a wasm module of their own that workers never load.
import { readFileSync } from 'node:fs';
import { initSync } from './stratacache_tools.js';

initSync({ module: readFileSync(new URL('./stratacache_tools_bg.wasm', import.meta.url)) });

export { EnvelopeCodec } from './stratacache_tools.js';
