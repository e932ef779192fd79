// `hvkit info`: the virtualization capabilities a monitor sees, printed the way
// DragonFly's `hw.vmm` sysctl tree shows them (hw.vmm.vmx.revision, region size,
// the supported controls by name ...). Each backend plugin is registered into a
// fresh kernel (soft engine) through its own register(), exactly as a VM would load
// it; the values then come only through the rdmsrCap syscall, so a future engine
// reports what it honours without this file changing. Names of control bits are SDM
// facts (Vol. 3C tables 25-5 .. 25-15, appendix A), not imports from the plugin.
import { container as globalContainer } from "tsyringe";
import { bootKernel, softEngine } from "../kernel/index.js";
import { SYS_ERR_NAMES, SysErr, type Syscalls } from "../kernel/api.js";
import { ConfigError, Tokens, type MonitorPlugin } from "./api.js";
import { BUILTIN_PLUGINS, HOST_API } from "./plugins.js";

export type InfoBackend = "vmx" | "svm";
export const INFO_BACKENDS: readonly InfoBackend[] = ["vmx", "svm"];

/** A capability the installed extension would not report. */
export class InfoError extends Error {
  override readonly name = "InfoError";
}

type Bits = Readonly<Record<number, string>>;

/** SDM 25.6.1 table 25-5. */
const PIN: Bits = { 0: "external_interrupt_exiting", 3: "nmi_exiting", 5: "virtual_nmis", 6: "vmx_preemption_timer", 7: "process_posted_interrupts" };
/** SDM 25.6.2 table 25-6. */
const PROC: Bits = {
  2: "interrupt_window_exiting", 3: "use_tsc_offsetting", 7: "hlt_exiting", 9: "invlpg_exiting", 10: "mwait_exiting",
  11: "rdpmc_exiting", 12: "rdtsc_exiting", 15: "cr3_load_exiting", 16: "cr3_store_exiting",
  17: "activate_tertiary_controls", 19: "cr8_load_exiting", 20: "cr8_store_exiting", 21: "use_tpr_shadow",
  22: "nmi_window_exiting", 23: "mov_dr_exiting", 24: "unconditional_io_exiting", 25: "use_io_bitmaps",
  27: "monitor_trap_flag", 28: "use_msr_bitmaps", 29: "monitor_exiting", 30: "pause_exiting",
  31: "activate_secondary_controls",
};
/** SDM 25.6.2 table 25-7. */
const PROC2: Bits = {
  0: "virtualize_apic_accesses", 1: "enable_ept", 2: "descriptor_table_exiting", 3: "enable_rdtscp",
  4: "virtualize_x2apic_mode", 5: "enable_vpid", 6: "wbinvd_exiting", 7: "unrestricted_guest",
  8: "apic_register_virtualization", 9: "virtual_interrupt_delivery", 10: "pause_loop_exiting",
  11: "rdrand_exiting", 12: "enable_invpcid", 13: "enable_vm_functions", 14: "vmcs_shadowing",
  15: "enable_encls_exiting", 16: "rdseed_exiting", 17: "enable_pml", 18: "ept_violation_ve",
  19: "conceal_vmx_from_pt", 20: "enable_xsaves_xrstors", 22: "mode_based_execute_control",
  23: "sub_page_write_permissions", 24: "pt_uses_guest_physical_addresses", 25: "use_tsc_scaling",
  26: "enable_user_wait_and_pause", 27: "enable_pconfig", 28: "enable_enclv_exiting",
};
/** SDM 25.7.1 table 25-13. */
const EXIT: Bits = {
  2: "save_debug_controls", 9: "host_address_space_size", 12: "load_ia32_perf_global_ctrl",
  15: "acknowledge_interrupt_on_exit", 18: "save_ia32_pat", 19: "load_ia32_pat", 20: "save_ia32_efer",
  21: "load_ia32_efer", 22: "save_vmx_preemption_timer", 23: "clear_ia32_bndcfgs", 24: "conceal_vmx_from_pt",
  25: "clear_ia32_rtit_ctl", 26: "clear_ia32_lbr_ctl", 28: "load_cet_state", 29: "load_pkrs",
  30: "save_ia32_perf_global_ctrl", 31: "activate_secondary_controls",
};
/** SDM 25.8.1 table 25-15. */
const ENTRY: Bits = {
  2: "load_debug_controls", 9: "ia32e_mode_guest", 10: "entry_to_smm", 11: "deactivate_dual_monitor_treatment",
  13: "load_ia32_perf_global_ctrl", 14: "load_ia32_pat", 15: "load_ia32_efer", 16: "load_ia32_bndcfgs",
  17: "conceal_vmx_from_pt", 18: "load_ia32_rtit_ctl", 20: "load_cet_state", 21: "load_guest_ia32_lbr_ctl",
  22: "load_pkrs",
};
/** IA32_VMX_EPT_VPID_CAP (SDM A.10). */
const EPT_VPID: Bits = {
  0: "ept_execute_only", 6: "ept_page_walk_4", 7: "ept_page_walk_5", 8: "ept_uc", 14: "ept_wb",
  16: "ept_2m_pages", 17: "ept_1g_pages", 20: "invept", 21: "ept_accessed_dirty", 22: "ept_advanced_exit_info",
  23: "ept_supervisor_shadow_stack", 25: "invept_single_context", 26: "invept_all_context",
  32: "invvpid", 40: "invvpid_individual_address", 41: "invvpid_single_context",
  42: "invvpid_all_context", 43: "invvpid_single_context_retaining_globals",
};
const MEM_TYPES: Readonly<Record<number, string>> = { 0: "UC", 6: "WB" };

/** The VMX capability MSRs (SDM appendix A, Vol. 4 table 2-2). */
const MSR = {
  FeatureControl: 0x3a, Basic: 0x480, Pin: 0x481, Proc: 0x482, Exit: 0x483, Entry: 0x484, Misc: 0x485,
  Cr0Fixed0: 0x486, Cr0Fixed1: 0x487, Cr4Fixed0: 0x488, Cr4Fixed1: 0x489, VmcsEnum: 0x48a, Proc2: 0x48b,
  EptVpidCap: 0x48c, TruePin: 0x48d, TrueProc: 0x48e, TrueExit: 0x48f, TrueEntry: 0x490,
} as const;
/** The SVM CPUID leaves the SVM extension reports through the same call (APM Vol. 3 E.4). */
const SVM_LEAF = { ExtFeatures: 0x80000001, AddressSizes: 0x80000008, SvmFeatures: 0x8000000a } as const;
/** CPUID Fn8000_000A EDX (APM Vol. 3 E.4.9). */
const SVM_FEATURES: Bits = {
  0: "np", 1: "lbr_virt", 2: "svm_lock", 3: "nrip_save", 4: "tsc_rate_msr", 5: "vmcb_clean",
  6: "flush_by_asid", 7: "decode_assists", 10: "pause_filter", 12: "pause_filter_threshold",
  13: "avic", 15: "vmsave_vmload_virt", 16: "vgif",
};

function read(sys: Syscalls, msr: number): bigint {
  const err = sys.rdmsrCap(msr);
  if (err !== SysErr.Ok) throw new InfoError(`capability 0x${msr.toString(16)}: ${SYS_ERR_NAMES[err] ?? `error ${err}`}`);
  return (BigInt(sys.ret.valueHigh >>> 0) << 32n) | BigInt(sys.ret.value >>> 0);
}

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;
const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;

/** A control MSR's named bits: required (allowed-0 bit set), allowed (allowed-1 bit set), or unsupported. */
function controls(out: string[], prefix: string, v: bigint, names: Bits): void {
  const must = v & 0xffffffffn, may = v >> 32n;
  out.push(`${prefix}.allowed0: ${hex(must)}`, `${prefix}.allowed1: ${hex(may)}`);
  for (const [n, name] of Object.entries(names)) {
    const i = Number(n);
    out.push(`${prefix}.${name}: ${bit(must, i) ? "required" : bit(may, i) ? "allowed" : "unsupported"}`);
  }
}

/** The hw.vmm.vmx lines from the capability MSRs. */
export function vmxInfoLines(sys: Syscalls): string[] {
  const out: string[] = [];
  const p = "hw.vmm.vmx";
  const fc = read(sys, MSR.FeatureControl);
  out.push(`${p}.feature_control: ${hex(fc)} (lock ${bit(fc, 0) ? 1 : 0}, vmxon_outside_smx ${bit(fc, 2) ? 1 : 0})`);
  const basic = read(sys, MSR.Basic);
  const memType = Number((basic >> 50n) & 0xfn);
  const trueCtls = bit(basic, 55);
  out.push(
    `${p}.revision: ${hex(basic & 0x7fffffffn)}`,
    `${p}.region_size: ${(basic >> 32n) & 0x1fffn}`,
    `${p}.width_addr: ${bit(basic, 48) ? 32 : 64}`,
    `${p}.dual_monitor: ${bit(basic, 49) ? 1 : 0}`,
    `${p}.mem_type: ${memType} (${MEM_TYPES[memType] ?? "reserved"})`,
    `${p}.ins_outs_info: ${bit(basic, 54) ? 1 : 0}`,
    `${p}.true_controls: ${trueCtls ? 1 : 0}`,
  );
  controls(out, `${p}.pinbased`, read(sys, trueCtls ? MSR.TruePin : MSR.Pin), PIN);
  const proc = read(sys, trueCtls ? MSR.TrueProc : MSR.Proc);
  controls(out, `${p}.procbased`, proc, PROC);
  // IA32_VMX_PROCBASED_CTLS2 exists only if secondary controls may be 1 (SDM A.3.3).
  if (bit(proc >> 32n, 31)) controls(out, `${p}.procbased2`, read(sys, MSR.Proc2), PROC2);
  controls(out, `${p}.exit`, read(sys, trueCtls ? MSR.TrueExit : MSR.Exit), EXIT);
  controls(out, `${p}.entry`, read(sys, trueCtls ? MSR.TrueEntry : MSR.Entry), ENTRY);
  const misc = read(sys, MSR.Misc);
  out.push(
    `${p}.misc.preemption_timer_rate: ${misc & 0x1fn}`,
    `${p}.misc.activity_hlt: ${bit(misc, 6) ? 1 : 0}`,
    `${p}.misc.activity_shutdown: ${bit(misc, 7) ? 1 : 0}`,
    `${p}.misc.activity_wait_for_sipi: ${bit(misc, 8) ? 1 : 0}`,
    `${p}.misc.cr3_targets: ${(misc >> 16n) & 0x1ffn}`,
    `${p}.misc.max_msr_list: ${512n * (((misc >> 25n) & 7n) + 1n)}`,
    `${p}.misc.vmwrite_exit_info: ${bit(misc, 29) ? 1 : 0}`,
    `${p}.misc.zero_length_injection: ${bit(misc, 30) ? 1 : 0}`,
  );
  out.push(
    `${p}.cr0_fixed0: ${hex(read(sys, MSR.Cr0Fixed0))}`, `${p}.cr0_fixed1: ${hex(read(sys, MSR.Cr0Fixed1))}`,
    `${p}.cr4_fixed0: ${hex(read(sys, MSR.Cr4Fixed0))}`, `${p}.cr4_fixed1: ${hex(read(sys, MSR.Cr4Fixed1))}`,
    `${p}.vmcs_enum.highest_index: ${hex((read(sys, MSR.VmcsEnum) >> 1n) & 0x1ffn)}`,
  );
  const ept = read(sys, MSR.EptVpidCap);
  for (const [n, name] of Object.entries(EPT_VPID)) out.push(`${p}.ept_vpid.${name}: ${bit(ept, Number(n)) ? 1 : 0}`);
  return out;
}

/** The hw.vmm.svm lines from the CPUID leaves the SVM extension reports. */
export function svmInfoLines(sys: Syscalls): string[] {
  const p = "hw.vmm.svm";
  const ext = read(sys, SVM_LEAF.ExtFeatures);
  const sizes = read(sys, SVM_LEAF.AddressSizes);
  const svm = read(sys, SVM_LEAF.SvmFeatures);
  const edx = svm >> 32n;
  const out = [
    `${p}.svm: ${bit(ext, 2) ? 1 : 0}`,
    `${p}.long_mode: ${bit(ext >> 32n, 29) ? 1 : 0}`,
    `${p}.phys_addr_bits: ${sizes & 0xffn}`,
    `${p}.revision: ${svm & 0xffn}`,
    `${p}.features: ${hex(edx)}`,
  ];
  for (const [n, name] of Object.entries(SVM_FEATURES)) out.push(`${p}.features.${name}: ${bit(edx, Number(n)) ? 1 : 0}`);
  return out;
}

/**
 * Boot a kernel on the soft engine, let the backend plugin install its kernel half
 * through its own register(), and print what it reports.
 */
export async function backendInfo(backend: InfoBackend): Promise<string[]> {
  const load = BUILTIN_PLUGINS[backend];
  if (load === undefined) throw new ConfigError("backend", `unknown backend "${backend}"`);
  const plugin = ((await load()) as { default: MonitorPlugin<unknown> }).default;
  const kernel = bootKernel({ engine: softEngine(), ramBytes: 64 * 1024 });
  const vm = globalContainer.createChildContainer();
  try {
    vm.register(Tokens.KernelExtensionHost, { useValue: kernel.extensions });
    await plugin.register(vm, plugin.parseConfig(undefined, `plugins.${backend}`), HOST_API);
  } finally {
    void vm.dispose();
  }
  const head = `hw.vmm.${backend}.engine: ${kernel.extensions.engineName}`;
  return [head, ...(backend === "vmx" ? vmxInfoLines(kernel.syscalls) : svmInfoLines(kernel.syscalls))];
}

/** The text `hvkit info` prints for the given backends. */
export async function infoText(backends: readonly InfoBackend[] = INFO_BACKENDS): Promise<string> {
  const lines: string[] = [];
  for (const b of backends) lines.push(...(await backendInfo(b)));
  return `${lines.join("\n")}\n`;
}
