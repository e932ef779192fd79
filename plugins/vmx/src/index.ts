// plugins/vmx: Intel VMX as a monitor backend. register() installs the kernel half
// (VmxExtension: VMCS semantics, entry checks, exit encoding) into the kernel and
// binds the monitor half (VmxBackend) as the VM's VcpuBackend.
import { Lifecycle, type DependencyContainer } from "tsyringe";
import { SYS_ERR_NAMES, SysErr } from "../../../src/kernel/api.js";
import { ConfigError, Tokens, type HostApi, type MonitorPlugin } from "../../../src/monitor/api.js";
import { VmxExtension } from "./kernel/vmx-extension.js";
import { VMX_DEFAULT_OPTIONS, VmxBackend, VmxBackendOptions } from "./monitor/vmx-backend.js";

export { VmxExtension, VmcsState, eptPointerFor, KERNEL_HOST_STATE, SOFT_HOST, CR4_VMXE, VMXON_IN_VMX_ROOT, type VmxHostCpu } from "./kernel/vmx-extension.js";
export { VmxBackend, VmxBackendError, VmxBackendOptions, VMX_DEFAULT_OPTIONS } from "./monitor/vmx-backend.js";
export {
  SOFT_CAPS, VmxMsr, vmxMsrValue, controlValue, capsFromMsrs, decodeBasic, CapsReadError, FeatureControl,
  VMX_CAPABILITY_MSRS, type VmxCaps, type CtlCap, type VmxBasic,
} from "./kernel/caps.js";
export { CONTROL_CHECKS, HOST_CHECKS, GUEST_CHECKS, runEntryChecks, type EntryCheck, type EntryFailure } from "./kernel/entry-checks.js";
export * from "./vmcs-fields.js";

/** plugins/vmx options: `ept` (boolean, default false): see README "EPT". */
export interface VmxConfig { ept?: boolean }

/** The kernel refused the VMX extension (another extension installed, ...). */
export class VmxInstallError extends Error {
  override readonly name = "VmxInstallError";
  constructor(readonly code: SysErr, engine: string) {
    super(`vmx: installing the VMX kernel extension on the "${engine}" engine failed: ${SYS_ERR_NAMES[code] ?? `error ${code}`}`);
  }
}

function parseConfig(raw: unknown, path: string): VmxConfig {
  if (raw === undefined) return {};
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError(path, "expected an object or nothing (vmx options: ept)");
  const out: VmxConfig = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key !== "ept") throw new ConfigError(`${path}.${key}`, "unknown option (vmx options: ept)");
    if (typeof value !== "boolean") throw new ConfigError(`${path}.${key}`, "expected true or false");
    out.ept = value;
  }
  return out;
}

function register(vm: DependencyContainer, config: VmxConfig, _host?: HostApi): void {
  const host = vm.resolve(Tokens.KernelExtensionHost);
  const err = host.install(new VmxExtension());
  if (err !== SysErr.Ok) throw new VmxInstallError(err, host.engineName);
  vm.register(VmxBackendOptions, { useValue: { ept: config.ept ?? VMX_DEFAULT_OPTIONS.ept } });
  vm.register(Tokens.VcpuBackend, { useClass: VmxBackend }, { lifecycle: Lifecycle.ContainerScoped });
}

const plugin: MonitorPlugin<VmxConfig> = { id: "vmx", phase: "backend", parseConfig, register };
export default plugin;
