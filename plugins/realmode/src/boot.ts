// The BootContribution: set up the BIOS's memory, load the boot sector through the INT 19h
// code and leave the vCPU where a PC BIOS leaves it when it jumps to a boot sector.
import type { BootContribution, GuestMemory, VcpuBackend } from "../../../src/monitor/api.js";
import { StateParts } from "../../../src/monitor/api.js";
import type { SegmentReg } from "../../../src/x86/types.js";
import { Activity } from "../../../src/x86/types.js";
import type { Bios } from "./bios/bios.js";
import { BiosReturn, FLAG_IF, ReturnVia } from "./bios/frame.js";
import { BOOT_OFFSET, BOOT_SEGMENT } from "./bios/layout.js";

/** The boot sector cannot be loaded (no 0x55AA signature, ...): a host configuration problem. */
export class BootError extends Error {
  override readonly name = "BootError";
}

/**
 * SS:SP at the jump to the boot sector. BIOSes differ and boot sectors set up their own stack;
 * 0000:7C00 puts it just below the boot sector, in the free conventional memory 0500-7BFF.
 */
export const BOOT_SS = 0x0000;
export const BOOT_SP = 0x7c00;

const ATTRIB_CODE16 = 0x9b; // present, readable, accessed code (VMCS access-rights format)
const ATTRIB_DATA16 = 0x93; // present, writable, accessed data

function realSeg(seg: SegmentReg, selector: number, attrib: number): void {
  seg.selector = selector;
  seg.base = selector << 4;
  seg.limit = 0xffff;
  seg.attrib = attrib;
}

export class RealmodeBoot implements BootContribution {
  constructor(private readonly bios: Bios) {}

  boot(vcpu: VcpuBackend, memory: GuestMemory): void {
    this.bios.install();
    const s = vcpu.getState(StateParts.All);
    s.eax = 0; s.ebx = 0; s.ecx = 0; s.edx = 0; s.esi = 0; s.edi = 0; s.ebp = 0;
    realSeg(s.cs, BOOT_SEGMENT, ATTRIB_CODE16);
    for (const seg of [s.ds, s.es, s.fs, s.gs]) realSeg(seg, 0, ATTRIB_DATA16);
    realSeg(s.ss, BOOT_SS, ATTRIB_DATA16);
    s.esp = BOOT_SP;
    s.eflags = 0x2 | FLAG_IF; // bit 1 is reserved-one (SDM 3.4.3)
    s.cr0 = (s.cr0 & ~0x80000001) | 0x10; // PG=PE=0: real mode; ET=1
    s.idtr.base = 0; s.idtr.limit = 0x3ff; // the IVT (SDM 20.1.4)
    s.activity = Activity.Active;
    s.interruptibility = 0;
    const ret = new BiosReturn(memory).bind(s, ReturnVia.Registers);
    if (!this.bios.bootstrap(s, ret)) {
      throw new BootError(`realmode: drive 0x${this.bios.bootDrive.toString(16).padStart(2, "0")} has no boot sector (no 0x55AA signature at offset 510)`);
    }
    vcpu.setState(s, StateParts.All);
  }
}
