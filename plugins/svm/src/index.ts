// plugins/svm: the AMD SVM backend. Registering it installs the kernel half
// (SvmKernelExtension: VMRUN on a VMCB) into the kernel and binds the monitor
// half (SvmBackend) as the VM's VcpuBackend.
import { Lifecycle } from "tsyringe";
import { SYS_ERR_NAMES, SysErr } from "../../../src/kernel/api.js";
import { ConfigError, Tokens, type MonitorPlugin } from "../../../src/monitor/api.js";
import { SvmKernelExtension } from "./kernel/svm-extension.js";
import { SVM_DEFAULT_OPTIONS, SvmBackend, SvmBackendOptions } from "./monitor/svm-backend.js";

/** plugins/svm options: `npt` (boolean, default false): see README "Nested paging". */
export interface SvmConfig { npt?: boolean }

/** The kernel refused the SVM extension (another one is installed, ...). */
export class SvmInstallError extends Error {
  override readonly name = "SvmInstallError";
}

export function parseSvmConfig(raw: unknown, path: string): SvmConfig {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError(path, "expected an object (svm options: npt)");
  const out: SvmConfig = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key !== "npt") throw new ConfigError(path ? `${path}.${key}` : key, "unknown option (svm options: npt)");
    if (typeof value !== "boolean") throw new ConfigError(path ? `${path}.${key}` : key, "expected true or false");
    out.npt = value;
  }
  return out;
}

const plugin: MonitorPlugin<SvmConfig> = {
  id: "svm",
  phase: "backend",
  parseConfig: parseSvmConfig,
  register(vm, config) {
    const host = vm.resolve(Tokens.KernelExtensionHost);
    const err = host.install(new SvmKernelExtension());
    if (err !== SysErr.Ok) {
      throw new SvmInstallError(
        `svm: the kernel (engine "${host.engineName}") refused the SVM extension: ${SYS_ERR_NAMES[err] ?? err}`,
      );
    }
    vm.register(SvmBackendOptions, { useValue: { npt: config.npt ?? SVM_DEFAULT_OPTIONS.npt } });
    vm.register(Tokens.VcpuBackend, { useClass: SvmBackend }, { lifecycle: Lifecycle.ContainerScoped });
  },
};

export default plugin;
export { SvmBackend, SvmBackendError } from "./monitor/svm-backend.js";
export { SvmKernelExtension } from "./kernel/svm-extension.js";
export { VMRUN_CHECKS, SOFT_SVM_CAPS, firstFailedCheck } from "./kernel/vmrun-checks.js";
export type { SvmCaps, VmrunCheck, VmrunEnv } from "./kernel/vmrun-checks.js";
export * from "./vmcb.js";
