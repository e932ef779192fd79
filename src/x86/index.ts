// Public barrel of the x86 core.
export * from "./types.js";
export { X86Cpu, isLockable } from "./cpu.js";
export { resetState, realModeState, cloneState, ATTRIB_CODE16, ATTRIB_DATA16 } from "./state.js";
export { FlatMemory, SparseMemory, MEM_ABORT, MemAbortSignal } from "./memory.js";
