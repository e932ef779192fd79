import { describe, expect, it } from "vitest";
import { main, type CliIo } from "./cli-main.js";
import { SOFT_CAPS, VmxMsr, vmxMsrValue } from "../../plugins/vmx/src/kernel/caps.js";
import { SOFT_SVM_CAPS } from "../../plugins/svm/src/kernel/vmrun-checks.js";

function io(): CliIo & { outText: () => string; errText: () => string } {
  let out = "", err = "";
  return { out: (t) => { out += t; }, err: (t) => { err += t; }, outText: () => out, errText: () => err };
}

/** `key: value` lines → map. */
function sysctl(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.trim().split("\n")) {
    const i = line.indexOf(": ");
    m.set(line.slice(0, i), line.slice(i + 2));
  }
  return m;
}

describe("hvkit info (in-process)", () => {
  it("prints the VMX capabilities as hw.vmm.vmx sysctls: revision, region size, memory type, fixed bits", async () => {
    const c = io();
    expect(await main(["info", "--backend", "vmx"], c)).toBe(0);
    const t = sysctl(c.outText());
    expect(t.get("hw.vmm.vmx.engine")).toBe("soft");
    expect(t.get("hw.vmm.vmx.revision")).toBe(`0x${SOFT_CAPS.revision.toString(16)}`);
    expect(t.get("hw.vmm.vmx.region_size")).toBe("4096");
    expect(t.get("hw.vmm.vmx.mem_type")).toBe("6 (WB)");
    expect(t.get("hw.vmm.vmx.true_controls")).toBe("1");
    expect(t.get("hw.vmm.vmx.feature_control")).toBe("0x5 (lock 1, vmxon_outside_smx 1)");
    expect(t.get("hw.vmm.vmx.cr0_fixed0")).toBe(`0x${SOFT_CAPS.cr0Fixed0.toString(16)}`);
    expect(t.get("hw.vmm.vmx.cr4_fixed1")).toBe(`0x${SOFT_CAPS.cr4Fixed1.toString(16)}`);
    expect(t.get("hw.vmm.vmx.vmcs_enum.highest_index")).toBe(`0x${((Number(vmxMsrValue(SOFT_CAPS, VmxMsr.VmcsEnum)) >> 1) & 0x1ff).toString(16)}`);
    expect(t.has("hw.vmm.svm.revision")).toBe(false);
  });

  it("names every control with required / allowed / unsupported from the TRUE control MSRs", async () => {
    const c = io();
    expect(await main(["info", "--backend", "vmx"], c)).toBe(0);
    const t = sysctl(c.outText());
    expect(t.get("hw.vmm.vmx.pinbased.external_interrupt_exiting")).toBe("required");
    expect(t.get("hw.vmm.vmx.pinbased.nmi_exiting")).toBe("allowed");
    expect(t.get("hw.vmm.vmx.procbased.hlt_exiting")).toBe("allowed");
    expect(t.get("hw.vmm.vmx.procbased.use_msr_bitmaps")).toBe("allowed");
    // The TRUE MSR reports CR3-load exiting as optional-off, not the legacy default1.
    expect(t.get("hw.vmm.vmx.procbased.cr8_load_exiting")).toBe("unsupported");
    expect(t.get("hw.vmm.vmx.procbased.cr3_load_exiting")).toBe("allowed");
    expect(t.get("hw.vmm.vmx.procbased2.enable_ept")).toBe("allowed");
    expect(t.get("hw.vmm.vmx.procbased2.enable_vpid")).toBe("unsupported");
    expect(t.get("hw.vmm.vmx.exit.save_ia32_efer")).toBe("allowed");
    expect(t.get("hw.vmm.vmx.entry.ia32e_mode_guest")).toBe("unsupported");
    expect(t.get("hw.vmm.vmx.procbased.allowed1")).toBe(`0x${(SOFT_CAPS.proc.mayBe1 >>> 0).toString(16)}`);
    expect(t.get("hw.vmm.vmx.ept_vpid.ept_page_walk_4")).toBe("1");
    expect(t.get("hw.vmm.vmx.ept_vpid.ept_wb")).toBe("1");
    expect(t.get("hw.vmm.vmx.ept_vpid.invept")).toBe("1");
    expect(t.get("hw.vmm.vmx.misc.activity_hlt")).toBe("1");
  });

  it("prints both backends by default, SVM from the CPUID leaves its extension reports", async () => {
    const c = io();
    expect(await main(["info"], c)).toBe(0);
    const t = sysctl(c.outText());
    expect(t.has("hw.vmm.vmx.revision")).toBe(true);
    expect(t.get("hw.vmm.svm.svm")).toBe("1");
    expect(t.get("hw.vmm.svm.phys_addr_bits")).toBe(String(SOFT_SVM_CAPS.physAddrBits));
    expect(t.get("hw.vmm.svm.long_mode")).toBe(SOFT_SVM_CAPS.longMode ? "1" : "0");
    expect(t.get("hw.vmm.svm.features.np")).toBe("1");
    expect(t.get("hw.vmm.svm.features.nrip_save")).toBe("1");
    expect(t.get("hw.vmm.svm.features.decode_assists")).toBe("0");
  });

  it("rejects an unknown --backend as a config error", async () => {
    const c = io();
    expect(await main(["info", "--backend", "kvm"], c)).toBe(2);
    expect(c.errText()).toMatch(/--backend.*vmx, svm/);
  });
});
