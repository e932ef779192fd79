; vmx-exits: a real-mode guest (VMX unrestricted guest) that executes, in order, one
; instruction for each VMX exit reachable from real mode (SDM Vol. 3C 26.1-26.2,
; appendix C). Driven by plugins/vmx/src/kernel/vmx-guest.test.ts, which turns the
; controls on, runs the guest through the real kernel and, per step, checks the basic
; exit reason, qualification, instruction length and information, interruption and
; IDT-vectoring information and RIP, then moves RIP past the step as a VMM emulating the
; instruction would. The events step (a NOP) is where the driver posts an NMI and an
; INIT and sets the monitor trap flag and the preemption timer.
; Layout the driver reads: word at 7C02h = address of the step table, word at 7C04h =
; the number of steps, word at 7C06h = the INT 80h handler; each table entry is two
; words: the step's instruction address and the address after it.
; Not reachable here: task switches (9), LLDT/LTR/SLDT/STR (47), #GP/#PF with error codes
; and the #PF error-code mask/match (0), ICEBP, XSETBV (55) with CR4.OSXSAVE: they need
; protected mode or paging and are steps of vmx-exits-pm.asm. Here XSETBV is #UD first (no
; CR4.OSXSAVE), which the driver sees as exit 0 vector 6.
; Build: nasm -i tests/guests/ -f bin -o tests/guests/vmx-exits.img tests/guests/vmx-exits.asm

bits 16
org 0x7c00

MEM     equ 0x0600              ; scratch operand for INVLPG and the descriptor-table instructions

%include "lib/steps.inc"
    STEP_GUEST_ENTRY
    step cpuid                          ; 10
    step rdtsc                          ; 16 (RDTSC exiting)
    step db 0x0f, 0x01, 0xf9            ; 51 RDTSCP (RDTSC exiting + enable RDTSCP)
    step rdpmc                          ; 15
    step invd                           ; 13 (unconditional)
    step wbinvd                         ; 54
    step invlpg [MEM]                   ; 14, qualification 600h (DS base 0)
    step mov eax, dr7                   ; 29, qualification DR7 | from | EAX
    step mov cr3, ebx                   ; 28, CR3 load: 3 | EBX << 8
    step mov eax, cr3                   ; 28, CR3 store: 3 | 1 << 4
    step sgdt [MEM]                     ; 46, identity 0
    step sidt [MEM]                     ; 46, identity 1
    step lgdt [MEM]                     ; 46, identity 2
    step lidt [MEM]                     ; 46, identity 3
    step pause                          ; 40
    step db 0x0f, 0x01, 0xc8            ; 39 MONITOR (ECX = 0)
    step db 0x0f, 0x01, 0xc9            ; 36 MWAIT
    step vmcall                         ; 18 (unconditional)
    step hlt                            ; 12
    step out 0x80, al                   ; 30, port 80h imm8 OUT
    step in al, 0x81                    ; 30, port 81h imm8 IN
    step rdmsr                          ; 31 (ECX = 0: no MSR bitmaps)
    step wrmsr                          ; 32
    step ud2                            ; 0, #UD (exception bitmap bit 6), type 3
    step int3                           ; 0, #BP (bit 3), type 6 with length 1
    step db 0x0f, 0x01, 0xd1            ; XSETBV: #UD (bit 6) before its exit 55
    step nop                            ; events: NMI (0, type 2), INIT (3), MTF (37), timer (52)
    step int 0x80                       ; vector 80h beyond the IDT limit: #GP (0, vector 13)
                                        ; with IDT-vectoring = INT 80h, length 2
    step out 0x82, al                   ; re-injected INT 80h ran the handler and returned here
.done:
    hlt
    jmp .done

; INT 80h handler (IVT[80h] points here; the driver restores the IDT limit and re-injects).
handler:
    out 0x97, al
    iret

STEPS equ n
    align 2
table:
%assign i 0
%rep n
    dw step_%[i], next_%[i]
%assign i i+1
%endrep
