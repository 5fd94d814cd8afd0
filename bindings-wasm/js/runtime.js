// The instantiated wasm module, set once by the entry point (workerd.js,
// node.js or browser.js) before any other module code runs.
import { fileSlots } from './stratacache_core.js';

let exports = null;

let memory = null;

export function attach(wasmExports) {
  exports = wasmExports;
  // Found by type: the build shortens the module's export names.
  memory = Object.values(wasmExports).find((e) => e instanceof WebAssembly.Memory);
}

export function wasmMemory() {
  if (exports === null) throw new Error('stratacache: the wasm module is not initialized; import "stratacache" (not its internal files)');
  return memory;
}

/** The JS values the core's local and request tiers hold, by slot number (src/slots.rs). */
export const slots = [];

/** Files `values` in new slots, which the next wasm call that stores values takes, in order. */
export function fileValues(values) {
  const at = fileSlots(values.length) >>> 2;
  const u32 = new Uint32Array(memory.buffer);
  const freed = u32[at];
  // Slots freed since the last call: cleared first (a new value may reuse one).
  for (let i = 1; i <= freed; i++) slots[u32[at + i]] = undefined;
  for (let i = 0; i < values.length; i++) slots[u32[at + 1 + freed + i]] = values[i];
}
