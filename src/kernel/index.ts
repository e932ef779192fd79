// Booting the kernel core: one kernel, one CSpace for the monitor holding a Ram
// capability for all of guest memory, and the extension host through which
// plugins/vmx or plugins/svm installs its kernel half.
import type { CPtr, Engine, KernelExtensionHost, Syscalls } from "./api.js";
import { Rights } from "./api.js";
import { CSpace, DEFAULT_CSPACE_SLOTS } from "./cspace.js";
import { DEFAULT_TIMESLICE, Kernel } from "./kernel.js";
import { KernelSyscalls } from "./syscalls.js";

export * from "./api.js";
export { softEngine } from "./engine-soft.js";
export type { SoftEngineOptions } from "./engine-soft.js";
export { KernelConfigError } from "./kernel.js";
export { CSpaceConfigError } from "./cspace.js";

export interface KernelConfig {
  engine: Engine;
  /** Bytes of the monitor's Ram capability: a positive multiple of 4096. */
  ramBytes: number;
  /** Instructions per world-switch timeslice (default 100 000). */
  timeslice?: number;
  /** Slots of the monitor's CSpace, 2..65536 (default 4096; slot 0 is reserved). */
  cspaceSlots?: number;
}

export interface BootedKernel {
  syscalls: Syscalls;
  ram: CPtr;
  extensions: KernelExtensionHost;
}

/** Throws KernelConfigError / CSpaceConfigError on a bad config. */
export function bootKernel(config: KernelConfig): BootedKernel {
  const kernel = new Kernel(config.engine, config.timeslice ?? DEFAULT_TIMESLICE);
  const ramObject = kernel.createRam(config.ramBytes);
  const cspace = new CSpace(config.cspaceSlots ?? DEFAULT_CSPACE_SLOTS);
  const cap = cspace.insert(ramObject, Rights.All, null);
  // A fresh CSpace has at least one free slot (size >= 2, slot 0 reserved).
  if (typeof cap === "number") throw new Error("unreachable: a fresh CSpace is full");
  return { syscalls: new KernelSyscalls(kernel, cspace), ram: cap.cptr, extensions: kernel };
}
