; svm-intercepts-pm: the SVM intercepts that need protected mode (AMD APM Vol. 2, 15.7,
; 15.9-15.14), one instruction per step. Driven by plugins/svm/src/kernel/svm-guest-pm.test.ts,
; which plays the monitor: it sets the intercepts per phase, runs the guest through the real
; kernel and, per step, checks EXITCODE, EXITINFO1, EXITINFO2, nRIP and EXITINTINFO, then
; moves RIP past the step as a VMM that emulated or refused the instruction would.
; Phases: LDTR/TR reads and writes; CR reads/writes and the CR0 selective write; #PF (also
; during an INT's delivery); #GP/#NP with selector error codes; task switches (far JMP, far
; CALL, IDT task gate for INT n and for a #GP with its error code, IRET with NT); ring 3 (the
; SVM instructions' CPL check, VMMCALL, I/O through the TSS bitmap, RDMSR, MOV CR, LLDT,
; SLDT, #PF on a supervisor page); XSETBV; a triple fault (shutdown).
; Layout the driver reads: word at 7C02h = the step table, 7C04h = the number of steps,
; 7C06h = `ready` (the HLT where setup is done), 7C08h = `shutdown_entry`, 7C0Ah = `skip_to`
; (a dword: nonzero, the guest jumps there after `ready`; the driver runs the last step
; alone that way); each table entry is two dwords: the step's instruction
; address and the address after it.
; Memory (64 KiB of guest RAM, identity-paged): 1000h page directory, 2000h page table,
; 3000h IDT, 4000h ring-3 stack page, 5000h a supervisor-only page, 6000h-6FFFh kernel stack.
; Build: nasm -i tests/guests/ -f bin -o tests/guests/svm-intercepts-pm.img tests/guests/svm-intercepts-pm.asm

bits 16
org 0x7c00

KCODE      equ 0x08
KDATA      equ 0x10
UCODE      equ 0x18 | 3
UDATA      equ 0x20 | 3
TSS1_SEL   equ 0x28          ; the running task (TR)
TSS2_SEL   equ 0x30          ; far JMP target
TSS3_SEL   equ 0x38          ; far CALL target
LDT_SEL    equ 0x40
TSS4_SEL   equ 0x48          ; behind the IDT task gates
TSS5_SEL   equ 0x50          ; busy: TSS1's back link, the target of IRET with NT
NP_SEL     equ 0x58          ; a data segment with P = 0

PD         equ 0x1000
PT         equ 0x2000
IDT        equ 0x3000
USTACK     equ 0x5000        ; ring-3 stack top (page 4000h, U=1)
SUPER      equ 0x5000        ; supervisor-only page
KSTACK     equ 0x7000
UNMAPPED   equ 0x300000      ; no page-table entry
CR0_BASE   equ 0x80000011    ; PG, ET, PE

%define ADDR(x) ((x) - $$ + 0x7c00)   ; a label as a plain number (for shifts and masks)

    jmp short start
    dw table
    dw STEPS
    dw ready
    dw shutdown_entry
    dw skip_to

%include "lib/gdt.inc"
%include "lib/steps.inc"

start:
    cli
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, KSTACK
    lgdt [gdtr]
    lidt [idtr]
    mov eax, cr0
    or al, 1
    mov cr0, eax
    jmp dword KCODE:pm32

bits 32
pm32:
    mov ax, KDATA
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    mov esp, KSTACK

    ; paging: PD[0] -> PT, which maps 0-64 KiB identically, user-accessible but for SUPER
    mov edi, PD
    xor eax, eax
    mov ecx, 2048
    rep stosd
    mov dword [PD], PT | 7
    xor ecx, ecx
pte_loop:
    mov eax, ecx
    shl eax, 12
    or eax, 7
    mov [PT + ecx * 4], eax
    inc ecx
    cmp ecx, 16
    jb pte_loop
    mov dword [PT + (SUPER >> 12) * 4], SUPER | 3
    mov eax, PD
    mov cr3, eax
    mov eax, CR0_BASE
    mov cr0, eax

    ; IDT: every vector reports itself as unexpected, but for the ones the steps use
    xor ecx, ecx
idt_loop:
    mov eax, unexpected
    mov edx, 0x8e00           ; P, DPL 0, 32-bit interrupt gate
    call set_gate
    inc ecx
    cmp ecx, 256
    jb idt_loop
    mov ecx, 13
    mov eax, gp_resume
    call set_gate
    mov ecx, 0x31
    mov eax, int31_handler
    call set_gate
    mov ecx, 0x80
    mov eax, ring0_back
    mov edx, 0xef00           ; P, DPL 3, 32-bit trap gate
    call set_gate
    mov dword [IDT + 0x40 * 8], TSS4_SEL << 16
    mov dword [IDT + 0x40 * 8 + 4], 0x8500   ; P, DPL 0, task gate

    mov ax, LDT_SEL
    lldt ax
    mov ax, TSS1_SEL
    ltr ax
ready:
    hlt                       ; setup done: the driver turns the intercepts on here
    mov eax, [skip_to]
    test eax, eax
    jz first_step
    jmp eax
first_step:

    ; ------------------------------------------------ LDTR/TR reads and writes (66h-6Dh)
    step sldt ax                        ; 68h
    step str ax                         ; 69h
    mov ax, LDT_SEL
    step lldt ax                        ; 6Ch
    mov ax, TSS1_SEL
    step ltr ax                         ; 6Dh
    step sldt [scratch]                 ; 68h (memory operand)

    ; ------------------------------------------------ CR accesses
    step mov eax, cr0                   ; 00h
    step smsw eax                       ; 00h (a CR0 read)
    step mov ebx, cr4                   ; 04h
    mov eax, CR0_BASE
    step mov cr0, eax                   ; 10h: the CR0 write intercept beats the selective one
    mov ebx, PD
    step mov cr3, ebx                   ; 13h
    ; the driver turns the CR0 write intercept off; the selective one stays
    mov eax, CR0_BASE | 8
    mov cr0, eax                        ; only TS changes: no exit
    or eax, 2
    mov cr0, eax                        ; only MP changes: no exit
    clts                                ; never exits on the selective intercept
    mov ax, 0x000b
    lmsw ax                             ; PE, MP, TS: only TS changes: no exit
    mov ecx, CR0_BASE | 0x20
    step mov cr0, ecx                   ; 65h (NE changes, with MP and TS)
    mov ax, 0x0007
    step lmsw ax                        ; 65h (EM changes)

    ; ------------------------------------------------ #PF (exit 4Eh)
    step mov eax, [UNMAPPED + 4]        ; error code 0, EXITINFO2 = the address
    step mov [UNMAPPED + 8], eax        ; error code 2 (write)
    mov esp, UNMAPPED + 0x100
    step int 0x31                       ; #PF pushing the frame; EXITINTINFO = INT 31h
    mov esp, KSTACK

    ; ------------------------------------------------ selector error codes (4Dh, 4Bh)
    mov ax, 0x0ff8
    step mov ds, ax                     ; #GP(0FF8h): beyond the GDT limit
    mov ax, TSS1_SEL
    step mov ds, ax                     ; #GP(28h): a system descriptor
    mov ax, UDATA
    step mov ss, ax                     ; #GP(20h): RPL 3 != CPL 0
    mov ax, 0x001c
    step mov fs, ax                     ; #GP(1Ch): beyond the LDT limit (TI = 1)
    mov ax, NP_SEL
    step mov es, ax                     ; #NP(58h)
    step jmp KDATA:0                    ; #GP(10h): a far JMP to a data segment

    ; ------------------------------------------------ task switches (7Dh)
    step jmp TSS2_SEL:0
    step call TSS3_SEL:0
    step int 0x40                       ; through the IDT task gate
    mov dword [resume], gp_back
    mov ax, 0x0ff8
    step mov ds, ax                     ; #GP(0FF8h) through a task gate the driver puts in IDT[13]
gp_back:
    pushfd
    or dword [esp], 0x4000              ; NT
    popfd
    step iretd                          ; a return to the back link, TSS5
    pushfd
    and dword [esp], ~0x4000
    popfd

    ; ------------------------------------------------ ring 3
    push dword UDATA
    push dword USTACK
    push dword 0x00000002               ; IF = 0, IOPL = 0
    push dword UCODE
    push dword user_code
    iretd

user_code:
    mov ax, UDATA
    mov ds, ax
    mov es, ax
    step db 0x0f, 0x01, 0xd8            ; VMRUN: #GP(0) at CPL 3 before the intercept
    step db 0x0f, 0x01, 0xda            ; VMLOAD
    step db 0x0f, 0x01, 0xdb            ; VMSAVE
    step db 0x0f, 0x01, 0xdc            ; STGI
    step db 0x0f, 0x01, 0xdd            ; CLGI
    step db 0x0f, 0x01, 0xde            ; SKINIT
    step db 0x0f, 0x01, 0xdf            ; INVLPGA
    step db 0x0f, 0x01, 0xd9            ; VMMCALL: no CPL check, exits 81h
    step out 0x80, al                   ; the TSS I/O bitmap allows 80h: IOIO exit
    step out 0x81, al                   ; denied by the bitmap: #GP(0) before the IOIO check
    xor ecx, ecx
    step rdmsr                          ; #GP(0) before the MSR intercept
    step mov eax, cr0                   ; #GP(0) before the CR read intercept
    step lldt ax                        ; #GP(0) before the LDTR write intercept
    step sldt ax                        ; no CPL check: 68h
    step mov eax, [SUPER]               ; #PF, error code 5 (present, read, user)
    int 0x80                            ; back to ring 0

ring0_back:
    mov ax, KDATA
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov esp, KSTACK

    ; ------------------------------------------------ XSETBV (8Dh)
    mov eax, cr4
    or eax, 1 << 18                     ; CR4.OSXSAVE: else XSETBV is #UD before the intercept
    mov cr4, eax
    xor ecx, ecx
    xor edx, edx
    mov eax, 1                          ; XCR0 = x87
    step xsetbv
    mov eax, cr4
    and eax, ~(1 << 18)
    mov cr4, eax

    ; ------------------------------------------------ shutdown (7Fh)
shutdown_entry:
    lidt [null_idtr]
    step ud2                            ; #UD, #GP, #DF undeliverable: triple fault
halt:
    hlt
    jmp halt

; ECX = vector, EAX = handler, DX = type bits (P, DPL, type) for bytes 4-5 of the gate.
set_gate:
    mov [IDT + ecx * 8], ax
    mov word [IDT + ecx * 8 + 2], KCODE
    mov [IDT + ecx * 8 + 4], dx
    shr eax, 16
    mov [IDT + ecx * 8 + 6], ax
    ret

unexpected:                   ; a vector the steps do not expect: the driver sees port EEh
    out 0xee, al
    jmp halt

task_entry:                   ; no monitor in the test performs a switch: port EDh if one happens
    out 0xed, al
    jmp halt

int31_handler:                ; the re-injected INT 31h arrives here
    out 0x97, al
    iretd

gp_resume:                    ; a re-injected #GP: report its error code, resume at [resume]
    pop eax
    mov dx, 0x98
    out dx, eax
    mov eax, [resume]
    mov [esp], eax
    iretd

; ---------------------------------------------------------------- data
    align 8
gdt:
    GDT_KERNEL_FLAT
    GDT_USER_FLAT
%macro TSS_DESC 2                      ; label, access byte (89h available, 8Bh busy)
    dw %1_end - %1 - 1, ADDR(%1) & 0xffff
    db (ADDR(%1) >> 16) & 0xff, %2, 0, ADDR(%1) >> 24
%endmacro
    TSS_DESC tss1, 0x89               ; LTR marks it busy
    TSS_DESC tss2, 0x89
    TSS_DESC tss3, 0x89
    dw ldt_end - ldt - 1, ADDR(ldt) & 0xffff   ; LDT: type 2
    db (ADDR(ldt) >> 16) & 0xff, 0x82, 0, ADDR(ldt) >> 24
    TSS_DESC tss4, 0x89
    TSS_DESC tss5, 0x8b
    dw 0xffff, 0, 0x1200, 0x00cf      ; NP_SEL: data, P = 0
gdt_end:

ldt:
    dq 0
    dw 0xffff, 0, 0x9200, 0x00cf      ; a flat data segment (selector 0Ch)
ldt_end:

gdtr:      dw gdt_end - gdt - 1
           dd gdt
idtr:      dw 256 * 8 - 1
           dd IDT
null_idtr: dw 0
           dd 0

; 32-bit TSS (SDM figure 7-2): back link, ESP0, SS0, ..., CR3 1Ch, EIP 20h, EFLAGS 24h,
; EAX-EDI 28h-44h, ES-GS 48h-5Ch, LDT 60h, I/O map base 66h.
    align 4
tss1:
    dd TSS5_SEL                       ; back link: IRET with NT returns there
    dd KSTACK, KDATA, 0, 0, 0, 0
    dd PD
    times 16 dd 0
    dd 0
    dw 0, tss1_iomap - tss1
tss1_iomap:                           ; ports 0-87h: only 80h allowed
    times 16 db 0xff
    db 0xfe
    db 0xff
    db 0xff                           ; the byte past the map (SDM 18.5.2)
tss1_end:

%macro TASK 1                          ; a runnable task at task_entry
    align 4
%1:
    dd 0, KSTACK, KDATA, 0, 0, 0, 0
    dd PD, task_entry, 0x00000002
    dd 0, 0, 0, 0, KSTACK - 0x800, 0, 0, 0
    dd KDATA, KCODE, KDATA, KDATA, KDATA, KDATA
    dd 0
    dw 0, 0x68
%1_end:
%endmacro
    TASK tss2
    TASK tss3
    TASK tss4
    TASK tss5

    align 4
resume:  dd 0
skip_to: dd 0
scratch: times 8 db 0

STEPS equ n
    align 4
table:
%assign i 0
%rep n
    dd step_%[i], next_%[i]
%assign i i+1
%endrep
