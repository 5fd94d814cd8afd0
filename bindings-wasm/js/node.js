// Entry point for Node.js (20+): reads and instantiates the module synchronously.
import { readFileSync } from 'node:fs';
import { initSync } from './stratacache_core.js';
import { attach } from './runtime.js';

attach(initSync({ module: readFileSync(new URL('./stratacache_core_bg.wasm', import.meta.url)) }));

export * from './lib.js';
