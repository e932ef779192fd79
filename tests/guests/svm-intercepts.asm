; svm-intercepts: a real-mode guest that executes, in order, one instruction for each SVM
; intercept reachable from real mode (AMD APM Vol. 2, 15.9). Driven by
; plugins/svm/src/kernel/svm-guest.test.ts, which sets the intercepts, runs the guest
; through the real kernel and, per step, checks EXITCODE, EXITINFO1/2, RIP and nRIP,
; then moves RIP to nRIP as a VMM that emulated the instruction would.
; Layout the driver reads: word at 7C02h = address of the step table, word at 7C04h =
; the number of steps, word at 7C06h = the INT 80h handler; each table entry is two words: the step's instruction address
; and the address after it (the expected nRIP).
; The protected-mode intercepts (SLDT/STR/LLDT/LTR, task switches, #PF, selector error
; codes, CPL checks, CR0 selective write, shutdown) are in svm-intercepts-pm.asm.
; Not reachable here (README): XSETBV (#UD: no CR4.OSXSAVE), RSM (#UD outside SMM), MOV CR8 (#UD outside long mode),
; MWAIT_CONDITIONAL (MONITOR arms nothing), FERR_FREEZE, SMI.
; Build: nasm -i tests/guests/ -f bin -o tests/guests/svm-intercepts.img tests/guests/svm-intercepts.asm

bits 16
org 0x7c00

MEM     equ 0x0600              ; scratch operand for the descriptor-table instructions

%include "lib/steps.inc"
    STEP_GUEST_ENTRY
    step mov eax, cr0                   ; 00h read CR0 (EXITINFO1 0: no decode assists)
    step smsw ax                        ; 00h (SMSW is a CR0 read)
    step mov edx, cr2                   ; 02h
    step mov eax, cr3                   ; 03h
    step mov esi, cr4                   ; 04h
    step mov cr0, eax                   ; 10h
    step clts                           ; 10h (a CR0 write)
    step lmsw ax                        ; 10h (a CR0 write)
    step mov cr3, ebx                   ; 13h
    step mov cr4, edi                   ; 14h
    step mov eax, dr7                   ; 27h
    step mov dr1, ecx                   ; 31h
    step sidt [MEM]                     ; 66h
    step sgdt [MEM]                     ; 67h
    step lidt [MEM]                     ; 6Ah
    step lgdt [MEM]                     ; 6Bh
    step rdtsc                          ; 6Eh
    step rdpmc                          ; 6Fh
    step pushf                          ; 70h
    step popf                           ; 71h
    step cpuid                          ; 72h (the backend's cpuid exit)
    step iret                           ; 74h
    step int 0x21                       ; 75h
    step invd                           ; 76h
    step pause                          ; 77h
    step hlt                            ; 78h (the backend's hlt exit)
    step invlpg [MEM]                   ; 79h
    step db 0x0f, 0x01, 0xdf            ; 7Ah INVLPGA
    step out 0x80, al                   ; 7Bh (the backend's io exit), EXITINFO2 = next RIP
    step rdmsr                          ; 7Ch (the backend's msr exit)
    step db 0x0f, 0x01, 0xd8            ; 80h VMRUN
    step db 0x0f, 0x01, 0xd9            ; 81h VMMCALL
    step db 0x0f, 0x01, 0xda            ; 82h VMLOAD
    step db 0x0f, 0x01, 0xdb            ; 83h VMSAVE
    step db 0x0f, 0x01, 0xdc            ; 84h STGI
    step db 0x0f, 0x01, 0xdd            ; 85h CLGI
    step db 0x0f, 0x01, 0xde            ; 86h SKINIT
    step db 0x0f, 0x01, 0xf9            ; 87h RDTSCP
    step db 0xf1                        ; 88h ICEBP
    step wbinvd                         ; 89h
    step db 0x0f, 0x01, 0xc8            ; 8Ah MONITOR (ECX = 0)
    step db 0x0f, 0x01, 0xc9            ; 8Bh MWAIT
    step ud2                            ; 46h (#UD intercepted), no nRIP
    step nop                            ; the driver posts NMI, then INIT: 61h, 63h before it
    step int 0x80                       ; INTn not intercepted, vector 80h beyond the IDT limit:
                                        ; #GP (4Dh) with EXITINTINFO = INT 80h, nRIP = next
    step out 0x81, al                   ; re-injected INT 80h ran the handler: 7Bh from there
.done:
    hlt
    jmp .done

; INT 80h handler (the driver points IVT[80h] here once the IDT limit is restored).
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
