import { describe, expect, it } from "vitest";
import { ExitCtl, F, Pin, Proc, Proc2, highestFieldIndex } from "../vmcs-fields.js";
import { CapsReadError, DEFAULT1, SOFT_CAPS, VmxMsr, capsFromMsrs, controlValue, decodeBasic, vmxMsrValue } from "./caps.js";

const lo = (v: bigint | undefined): number => Number(v! & 0xffffffffn);
const hi = (v: bigint | undefined): number => Number(v! >> 32n);

describe("VMX capability MSRs (SDM appendix A)", () => {
  it("reports the revision, a 4 KiB region, WB, 32-bit addresses and TRUE controls in IA32_VMX_BASIC", () => {
    const v = vmxMsrValue(SOFT_CAPS, VmxMsr.Basic)!;
    expect(lo(v) & 0x7fffffff).toBe(SOFT_CAPS.revision);
    expect(lo(v) >>> 31).toBe(0);
    expect(hi(v) & 0x1fff).toBe(4096);
    expect((v >> 48n) & 1n).toBe(1n);
    expect((v >> 50n) & 0xfn).toBe(6n);
    expect((v >> 55n) & 1n).toBe(1n);
  });

  it("keeps every allowed-0 bit inside allowed-1 for each control MSR", () => {
    for (const msr of [VmxMsr.TruePinbasedCtls, VmxMsr.TrueProcbasedCtls, VmxMsr.ProcbasedCtls2, VmxMsr.TrueExitCtls,
      VmxMsr.TrueEntryCtls, VmxMsr.PinbasedCtls, VmxMsr.ProcbasedCtls, VmxMsr.ExitCtls, VmxMsr.EntryCtls]) {
      const v = vmxMsrValue(SOFT_CAPS, msr);
      expect((lo(v) & ~hi(v)) >>> 0, `MSR 0x${msr.toString(16)}`).toBe(0);
    }
  });

  it("reports the default1 bits as must-be-1 in the non-TRUE MSRs", () => {
    expect(lo(vmxMsrValue(SOFT_CAPS, VmxMsr.ProcbasedCtls)) & DEFAULT1.proc).toBe(DEFAULT1.proc);
    expect(lo(vmxMsrValue(SOFT_CAPS, VmxMsr.TrueProcbasedCtls)) & Proc.Cr3LoadExiting).toBe(0);
  });

  it("offers exactly the controls the soft engine honours", () => {
    const proc = hi(vmxMsrValue(SOFT_CAPS, VmxMsr.TrueProcbasedCtls));
    for (const bit of [Proc.HltExiting, Proc.UncondIoExiting, Proc.InterruptWindow, Proc.ActivateSecondary,
      Proc.RdtscExiting, Proc.RdpmcExiting, Proc.InvlpgExiting, Proc.MovDrExiting, Proc.Cr3LoadExiting,
      Proc.Cr3StoreExiting, Proc.PauseExiting, Proc.UseIoBitmaps, Proc.UseMsrBitmaps, Proc.TscOffsetting,
      Proc.MwaitExiting, Proc.MonitorExiting, Proc.NmiWindow, Proc.MonitorTrapFlag]) expect(proc & bit).not.toBe(0);
    for (const bit of [Proc.Cr8LoadExiting, Proc.Cr8StoreExiting, Proc.TprShadow]) expect(proc & bit).toBe(0);
    const proc2 = hi(vmxMsrValue(SOFT_CAPS, VmxMsr.ProcbasedCtls2));
    for (const bit of [Proc2.EnableEpt, Proc2.UnrestrictedGuest, Proc2.WbinvdExiting, Proc2.DescTableExiting, Proc2.EnableRdtscp]) {
      expect(proc2 & bit).not.toBe(0);
    }
    expect(proc2 & (Proc2.VirtApicAccesses | Proc2.EnableVpid)).toBe(0);
    const pin = vmxMsrValue(SOFT_CAPS, VmxMsr.TruePinbasedCtls);
    expect(lo(pin) & Pin.ExtIntExiting).toBe(Pin.ExtIntExiting);
    expect(hi(pin) & (Pin.NmiExiting | Pin.VirtualNmis | Pin.PreemptionTimer | Pin.PostedInterrupts))
      .toBe(Pin.NmiExiting | Pin.VirtualNmis | Pin.PreemptionTimer);
    expect(hi(vmxMsrValue(SOFT_CAPS, VmxMsr.TrueExitCtls)) & (ExitCtl.AckIntOnExit | ExitCtl.SavePreemptionTimer | ExitCtl.LoadPat))
      .toBe(ExitCtl.AckIntOnExit | ExitCtl.SavePreemptionTimer);
  });

  it("reports CR fixed bits, VMCS_ENUM, EPT caps, MISC; nothing for other MSRs", () => {
    expect(lo(vmxMsrValue(SOFT_CAPS, VmxMsr.Cr0Fixed0)) >>> 0).toBe(0x80000001);
    expect(Number(vmxMsrValue(SOFT_CAPS, VmxMsr.VmcsEnum)) >> 1).toBe(highestFieldIndex(SOFT_CAPS));
    expect(highestFieldIndex(SOFT_CAPS)).toBeGreaterThanOrEqual((F.GuestSysenterEip >> 1) & 0x1ff);
    const ept = vmxMsrValue(SOFT_CAPS, VmxMsr.EptVpidCap)!;
    expect([(ept >> 6n) & 1n, (ept >> 8n) & 1n, (ept >> 14n) & 1n]).toEqual([1n, 1n, 1n]);
    const misc = vmxMsrValue(SOFT_CAPS, VmxMsr.Misc)!;
    // Activity states HLT, shutdown, wait-for-SIPI (bits 8:6); timer rate (4:0); zero-length injection (30).
    expect([(misc >> 6n) & 7n, misc & 0x1fn, (misc >> 30n) & 1n]).toEqual([7n, BigInt(SOFT_CAPS.preemptionTimerRate), 1n]);
    // Four CR3-target values (24:16, SDM A.6), MSR lists of at most 512 * (N + 1) = 512 entries (27:25).
    expect([(misc >> 16n) & 0x1ffn, (misc >> 25n) & 7n]).toEqual([4n, 0n]);
    expect(capsFromMsrs((m) => vmxMsrValue(SOFT_CAPS, m))).toEqual(SOFT_CAPS);
    expect(capsFromMsrs((m) => vmxMsrValue({ ...SOFT_CAPS, cr3Targets: 2, msrListN: 3 }, m))).toMatchObject({ cr3Targets: 2, msrListN: 3 });
    expect(vmxMsrValue(SOFT_CAPS, 0x10)).toBeUndefined();
  });

  it("computes a control value with the must-be-1 bits added", () => {
    expect(controlValue(SOFT_CAPS.pin, 0)).toBe(SOFT_CAPS.pin.mustBe1);
    expect(controlValue(SOFT_CAPS.proc, Proc.HltExiting) & Proc.HltExiting).toBe(Proc.HltExiting);
  });
});

describe("capsFromMsrs: VmxCaps read back from the MSRs", () => {
  it("recovers SOFT_CAPS from its own MSR values (TRUE controls, MISC, EPT memory types)", () => {
    expect(capsFromMsrs((msr) => vmxMsrValue(SOFT_CAPS, msr))).toEqual(SOFT_CAPS);
  });

  it("recovers other capabilities too, and decodes IA32_VMX_BASIC", () => {
    const caps = { ...SOFT_CAPS, revision: 0x1234, activityHlt: false, eptMemTypes: [6], proc2: { mustBe1: 0, mayBe1: Proc2.EnableEpt } };
    expect(capsFromMsrs((msr) => vmxMsrValue(caps, msr))).toEqual(caps);
    const b = decodeBasic(vmxMsrValue(caps, VmxMsr.Basic)!);
    expect(b).toEqual({ revision: 0x1234, regionBytes: 4096, physAddr32: true, dualMonitor: false, memType: 6, insOutsInfo: true, trueControls: true });
  });

  it("throws CapsReadError naming an MSR that cannot be read", () => {
    expect(() => capsFromMsrs((msr) => (msr === VmxMsr.Misc ? undefined : vmxMsrValue(SOFT_CAPS, msr)))).toThrow(CapsReadError);
    expect(() => capsFromMsrs(() => undefined)).toThrow(/0x480/);
  });
});
