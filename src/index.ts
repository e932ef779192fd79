// The hvkit package: the public plugin API, the kernel contract, and the entry points
// an embedder uses to build, run and test machines.
import "reflect-metadata";

export * from "./monitor/api.js";
export {
  ObjType, Rights, MapPerm, SysErr, SYS_ERR_NAMES, GuestControlWord, GUEST_CONTROL_BYTES, GuestFrameRole, GUEST_FRAME_BYTES,
} from "./kernel/api.js";
export type {
  CPtr, SysRet, MmioHandler, GuestSetup, Syscalls, VmControlObject, GuestPhysSpaceObject, EngineVcpu, Engine,
  GuestBinding, DispatcherObject, ExtensionContext, VmxExtension, SvmExtension, VirtExtension, KernelExtensionHost,
} from "./kernel/api.js";
export { bootKernel, softEngine } from "./kernel/index.js";
export type { KernelConfig, BootedKernel } from "./kernel/index.js";

export { createMachine, assembleMachine, Machine, MachineError, DeviceConflictError, rootContainer } from "./monitor/machine.js";
export type { MachineOptions, MachineStats } from "./monitor/machine.js";
export { loadConfig, validateConfig, parseSetArg, applyOverride, ConfigSchema, MIN_MEMORY, MAX_MEMORY } from "./monitor/config.js";
export type { MachineConfig, PluginRef, Override } from "./monitor/config.js";
export { loadPlugins, loadPluginModule, registerPlugins, HOST_API, BUILTIN_PLUGINS, PluginLoadError } from "./monitor/plugins.js";
export type { LoadedPlugin } from "./monitor/plugins.js";
export { PioBus, MmioBus, allOnes } from "./monitor/bus.js";
export { VmConsole, ConsoleRecorder } from "./monitor/console.js";
export { StdioSink, ESCAPE_BYTE } from "./monitor/stdio.js";
export { IrqLineSet } from "./monitor/irq.js";
export { FrameGuestMemory } from "./monitor/guest-memory.js";
export { CpuidPolicy, defaultProfile } from "./monitor/cpuid.js";
export type { CpuidProfile } from "./monitor/cpuid.js";
export { RunLoop } from "./monitor/run-loop.js";
export { runBootTest, runCombination, loadBootTest, expandMatrix, formatResults } from "./monitor/harness.js";
export type { BootTest, Combination, CaseResult } from "./monitor/harness.js";
export { main as cliMain, EXIT_STATUS } from "./monitor/cli-main.js";
export { parseSize, parseDuration } from "./monitor/units.js";
export { missingInjectTokens } from "./monitor/di-guard.js";
export { MonitorClock, DEFAULT_MIPS } from "./monitor/clock.js";
export type { ClockConfig, ClockMode } from "./monitor/clock.js";
export { MachinePlatform } from "./monitor/platform.js";
export { MsrPolicy, MSR_TABLE, MsrStateError } from "./monitor/msr.js";
export type { MsrPolicyState, MsrRow, MsrVerdict } from "./monitor/msr.js";
export { CountingSyscalls } from "./monitor/syscall-counter.js";
export { infoText, backendInfo, INFO_BACKENDS } from "./monitor/info.js";
