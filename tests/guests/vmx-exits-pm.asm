; vmx-exits-pm: the protected-mode part of the VMX exit guest (vmx-exits.asm is the real-mode
; part). It enters 32-bit protected mode with paging itself, then executes, in order, one
; instruction per VMX exit that needs protected mode or paging (SDM Vol. 3C 26.1-26.2,
; 28.2, appendix C): descriptor-table exits with every operand form, #GP(selector), CR
; accesses against the CR0/CR4 guest/host masks, INVLPG through a segment with a base,
; ICEBP under exception-bitmap bit 1, #PF under the error-code mask/match (exiting and
; delivered to the guest's own handler), task switches by JMP, CALL, IRET, a GDT task gate
; and IDT task gates (INT n and a #GP with its error code), XSETBV with CR4.OSXSAVE, and the
; VMX instructions with every operand form. Driven by
; plugins/vmx/src/kernel/vmx-guest-pm.test.ts, which plays the monitor over the real
; kernel: it turns the controls on at the first VMCALL, checks every step's exit fields,
; skips the instruction (RIP = next), re-injects ICEBP, and performs each task switch with
; the monitor's TaskSwitchAssist. Non-exiting work (MOV from CR0/CR4 through the read
; shadows, CR2, the #PF and #DB handlers, task 3) leaves its results in the variables.
; Layout the driver reads: word at 7C02h = the step table (two words per step, the step's
; instruction address and the address after it, in execution order), word at 7C04h = the
; number of steps, word at 7C06h = the variables (dwords, in the order below).
; Build: nasm -i tests/guests/ -f bin -o tests/guests/vmx-exits-pm.img tests/guests/vmx-exits-pm.asm

bits 16
org 0x7c00
%include "lib/gdt.inc"

KCODE    equ 0x08
KDATA    equ 0x10
FSDATA   equ 0x18            ; data segment with base FS_BASE: linear address != offset
TSS1_SEL equ 0x20            ; task 1: this code
TSS2_SEL equ 0x28
TSS3_SEL equ 0x30            ; task 3: the #GP task gate's task
TGATE3_SEL equ 0x38          ; GDT task gate to task 3
BAD_SEL  equ 0x123b          ; beyond the GDT limit: #GP(0x1238) (RPL dropped, SDM 6.13)

PD       equ 0x2000          ; page directory and the page table for 0-4 MiB (identity)
PT0      equ 0x3000
FS_BASE  equ 0x50000
RO_PAGE  equ 0x40000         ; present, read-only: a supervisor write faults with CR0.WP
NP_PAGE  equ 0x41000         ; not present
STACK1   equ 0x7000
STACK2   equ 0x6000
STACK3   equ 0x5000
OFF      equ 0x100           ; EBX during the steps
CR2_MARK equ 0xc2c2c2c2      ; CR2 before the exiting #PF (which must leave it alone)

%define ADDR(x) ((x) - $$ + 0x7c00)

    jmp short start
    dw table
    dw STEPS
    dw vars

; step N, INSN: the instruction of step N (table entry N: its address, the address after it).
%macro step 2+
step_%1:
    %2
next_%1:
%endmacro

start:
    cli
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, STACK1
    lgdt [gdtr]
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    jmp KCODE:pm32

bits 32
pm32:
    mov ax, KDATA
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov gs, ax
    mov ax, FSDATA
    mov fs, ax
    mov esp, STACK1
    lidt [idtr]
    mov ax, TSS1_SEL
    ltr ax
    ; identity paging for 0-4 MiB; RO_PAGE read-only, NP_PAGE not present (SDM 4.3)
    cld
    mov edi, PD
    xor eax, eax
    mov ecx, 1024
    rep stosd
    mov dword [PD], PT0 | 3
    mov edi, PT0
    mov eax, 3
.pt:
    stosd
    add eax, 0x1000
    cmp edi, PT0 + 4096
    jne .pt
    mov dword [PT0 + (RO_PAGE >> 12) * 4], RO_PAGE | 1
    mov dword [PT0 + (NP_PAGE >> 12) * 4], 0
    mov eax, PD
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80010000        ; PG, WP
    mov cr0, eax
    mov eax, CR2_MARK
    mov cr2, eax
    mov ebx, OFF
    step 0, vmcall            ; 18: ready; the driver turns the controls on

    ; descriptor-table exits (46, 47): every operand form of tables 28-10/28-11
    step 1, sgdt [ebx+esi*4+0x10]       ; base, index, scale 4, disp8, 32-bit operand
    step 2, o16 sidt [es:ebp-8]         ; ES, base EBP, negative disp8, 16-bit operand
    step 3, lgdt [bx+si+0x20]           ; 16-bit address (67h): base BX, index SI
    step 4, lidt [fs:eax]               ; FS, no displacement
    step 5, sldt ecx                    ; register form, Reg1 = ECX
    step 6, str [esp+8]                 ; SS by default, base ESP
    step 7, lldt dx                     ; register form, Reg1 = EDX
    step 8, ltr [nosplit edi*2+0x100]   ; index without base, scale 2, disp32

    ; exception with an error code (0): #GP(selector)
    mov ax, BAD_SEL
    step 9, mov ds, ax

    ; CR accesses (28): CR0 mask TS|MP|CD with shadow TS, CR4 mask OSFXSR with shadow OSFXSR
    step 10, clts
    mov ax, 0x000b
    step 11, lmsw ax                    ; MP differs from the shadow
    mov word [fs:ebx+4], 0x0003
    step 12, lmsw [fs:ebx+4]            ; TS differs; memory form with its linear address
    mov eax, cr0                        ; no exit: masked bits come from the shadow
    mov [cr0_read], eax
    mov esi, eax
    or esi, 0x40000000
    step 13, mov cr0, esi               ; CD differs from the shadow
    mov ecx, PD
    step 14, mov cr3, ecx               ; CR3-load exiting
    step 15, mov edx, cr3               ; CR3-store exiting
    mov eax, cr4                        ; no exit (there is no CR4-store exiting): the shadow
    mov [cr4_read], eax
    mov ebp, eax
    and ebp, ~0x200
    step 16, mov cr4, ebp               ; OSFXSR differs from the shadow

    ; INVLPG (14): the linear address, FS base included
    step 17, invlpg [fs:ebx+0x10]

    ; ICEBP (0, type 5) under exception-bitmap bit 1: the driver re-injects it; then, with
    ; bit 1 clear, the second one reaches the #DB handler without an exit.
    step 18, icebp
    icebp
    step 19, vmcall                     ; checkpoint: CR reads, #DB count

    ; #PF (0, vector 14). Mask/match A: bit 14 = 1, mask W, match W: writes exit.
    step 20, mov [RO_PAGE], eax         ; P|W: exits, qualification RO_PAGE, CR2 untouched
    mov eax, cr2
    mov [cr2_seen], eax
    mov eax, [NP_PAGE]                  ; read, not present: delivered to pf_handler
    step 21, vmcall                     ; checkpoint; the driver sets mask/match B
    ; B: bit 14 = 0, mask P, match P: #PFs with P = 0 exit, the others are delivered.
    step 22, mov eax, [NP_PAGE + 8]     ; not present: exits
    mov [RO_PAGE + 4], eax              ; present: delivered (CR2 loaded)
    step 23, vmcall                     ; checkpoint; the driver clears bitmap bit 13

    ; task switches (9), performed by the driver with the TaskSwitchAssist
    step 24, jmp TSS2_SEL:0             ; JMP to a TSS
    step 26, iretd                      ; NT (set by task 2's CALL): back to task 2
    mov cx, BAD_SEL
    step 28, mov es, cx                 ; #GP through the IDT task gate 13 to task 3
    ; XSETBV (55) exits unconditionally once CR4.OSXSAVE keeps it from being #UD (SDM 26.1.2)
    mov eax, cr4
    or eax, 0x40000                     ; OSXSAVE
    mov cr4, eax                        ; OSFXSR is written as its shadow: no exit
    xor ecx, ecx
    xor edx, edx
    mov eax, 1                          ; XCR0 = x87
    step 30, xsetbv

    ; VMX instructions (18-27, 50, 53): exit unconditionally in VMX non-root operation once
    ; CR0.PE = 1 (SDM 26.1.2); the operand forms of tables 28-9, 28-13 and 28-14
    step 31, vmptrld [ebx+ecx*8+0x20]   ; index with scale 8
    step 32, vmclear [fs:esi]           ; FS, base only
    step 33, vmxon [0x1234]             ; displacement only
    step 34, vmptrst [esp-4]            ; SS, negative displacement
    step 35, vmread [ebp+8], eax        ; memory destination, Reg2 = EAX
    step 36, vmread edx, ecx            ; register form: Reg1 = EDX, Reg2 = ECX
    step 37, vmwrite esi, [ebx]         ; memory source, Reg2 = ESI
    step 38, vmwrite edi, eax           ; register form: Reg1 = EAX, Reg2 = EDI
    step 39, invept ecx, [ebx+4]        ; Reg2 = ECX
    step 40, invvpid edx, [bx+di]       ; 16-bit address, Reg2 = EDX
    step 41, vmlaunch
    step 42, vmresume
    step 43, vmxoff
    step 44, call TGATE3_SEL:0          ; CALL through a GDT task gate: the TSS's selector
    step 46, hlt                        ; 12: done

; Task 2 (entered by the JMP).
task2_entry:
    step 25, call TSS1_SEL:0            ; CALL to a TSS
    step 27, int 0x40                   ; INT n through the IDT task gate 40h to task 1
.stay:
    hlt
    jmp .stay

; Task 3 (entered through IDT gate 13): the #GP error code is on its stack; skip the
; faulting MOV ES in task 1's saved state and IRET back to it.
task3_entry:
    pop eax
    mov [t3_err], eax
    add dword [tss1 + 0x20], 2
    step 29, iretd
    step 45, iretd                      ; back from the CALL through the GDT task gate
    jmp task3_entry

; #PF: record error code, CR2 and count; skip the 5-byte MOV (A1/A3 disp32) that faulted.
pf_handler:
    push eax
    mov eax, [esp + 4]
    mov [pf_err], eax
    mov eax, cr2
    mov [pf_cr2], eax
    inc dword [pf_count]
    pop eax
    add esp, 4
    add dword [esp], 5
    iretd

; #DB (from ICEBP, a trap: returns after it).
db_handler:
    inc dword [db_count]
    iretd

STEPS equ 47

    align 8
gdt:
    GDT_KERNEL_FLAT
    dw 0xffff, FS_BASE & 0xffff       ; FSDATA: base FS_BASE, 4 GiB
    db FS_BASE >> 16, 0x92, 0xcf, 0
%macro tss_desc 1
    dw 0x67, ADDR(%1) & 0xffff        ; 32-bit available TSS (type 9)
    db (ADDR(%1) >> 16) & 0xff, 0x89, 0, ADDR(%1) >> 24
%endmacro
    tss_desc tss1
    tss_desc tss2
    tss_desc tss3
    dw 0, TSS3_SEL, 0x8500, 0         ; TGATE3: task gate
gdt_end:

gdtr: dw gdt_end - gdt - 1
      dd gdt
idtr: dw idt_end - idt - 1
      dd idt

    align 8
idt:                                  ; vectors 0-40h
%assign v 0
%rep 0x41
  %if v == 1
    dw ADDR(db_handler) & 0xffff, KCODE
    db 0, 0x8e                        ; 32-bit interrupt gate
    dw ADDR(db_handler) >> 16
  %elif v == 14
    dw ADDR(pf_handler) & 0xffff, KCODE
    db 0, 0x8e
    dw ADDR(pf_handler) >> 16
  %elif v == 13
    dw 0, TSS3_SEL, 0x8500, 0         ; task gate
  %elif v == 0x40
    dw 0, TSS1_SEL, 0x8500, 0
  %else
    dq 0
  %endif
%assign v v + 1
%endrep
idt_end:

; 32-bit TSS (SDM figure 7-2): back link, ESP0, SS0, ..., CR3 at 1Ch, EIP 20h, EFLAGS 24h,
; EAX-EDI 28h-44h, ES-GS 48h-5Ch, LDT 60h, I/O map base 66h (past the limit: no bitmap).
%macro tss 4                          ; EIP, ESP, EAX
    dd 0, 0, 0, 0, 0, 0, 0
    dd PD, %1, 2
    dd %3, 0, 0, OFF, %2, 0, 0, 0
    dd KDATA, KCODE, KDATA, KDATA, FSDATA, KDATA
    dd 0
    dw 0, 0x68
%endmacro
    align 4
tss1: tss 0, 0, 0, 0                  ; filled by the first task switch away from task 1
tss2: tss ADDR(task2_entry), STACK2, 0x7a5c0002, 0
tss3: tss ADDR(task3_entry), STACK3, 0x7a5c0003, 0

    align 4
vars:
cr0_read: dd 0
cr4_read: dd 0
cr2_seen: dd 0
pf_err:   dd 0
pf_cr2:   dd 0
pf_count: dd 0
db_count: dd 0
t3_err:   dd 0

    align 2
table:
%assign i 0
%rep STEPS
    dw step_%[i], next_%[i]
%assign i i + 1
%endrep
