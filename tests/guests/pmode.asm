; hvkit test guest: 32-bit protected mode with paging, ring 3, gates, #PF, the x87 FPU and a
; hardware task switch (nasm -i tests/guests/ -f bin). A 24-sector hard-disk image (drive 80h):
; the boot sector loads LBA 1-23 (C0 H0 S2-24) to 0000:7E00 with INT 13h AH=02h.
; Each step prints "pmode: <step> ok" on COM1; the first failed check prints
; "pmode: FAIL <check> a=<eax> b=<ebx> c=<ecx>" and halts. All passed: "pmode: all tests
; passed", then HLT with interrupts disabled. Judged on qemu-system-i386 by run-on-qemu.sh.
; References: Intel SDM vol. 3A ch. 3 (segmentation), 4.3 (32-bit paging), 5.8 (call gates),
; 6.12 (exception and interrupt handling), 7 (task management); vol. 1 ch. 8 (x87 FPU).
bits 16
org 0x7c00
%include "lib/gdt.inc"
%include "lib/boot.inc"

SECTORS    equ 24            ; image size in sectors, the boot sector included
KCODE      equ 0x08          ; GDT selectors
KDATA      equ 0x10
UCODE      equ 0x18 | 3
UDATA      equ 0x20 | 3
TSS1_SEL   equ 0x28          ; the first task (this code)
TSS2_SEL   equ 0x30          ; the task switched to by a far CALL
GATE_SEL   equ 0x38 | 3      ; 32-bit call gate, DPL 3, to KCODE:call_gate_handler
LDT_SEL    equ 0x40          ; task 2's LDT
LDT_DATA   equ 0x08 | 4      ; LDT entry 1 (TI=1): data, base MAGIC_PHYS

IDT        equ 0x1e000       ; 256 gates
PD         equ 0x20000       ; page directory
PT0        equ 0x21000       ; page table for 0-4 MiB
USER_PAGE  equ 0xa000        ; ring-3 code (U=1), part of the image
USER_STACK equ 0x30000       ; ring-3 stack page (U=1, R/W)
SUPER_ADDR equ 0x40000       ; a supervisor-only page ring 3 reads (#PF, error code 5)
NP_PAGE    equ 0x50000       ; linear page left not present; the #PF handler maps it to MAGIC_PHYS
RO_PAGE    equ 0x58000       ; read-only page: a supervisor write faults with CR0.WP=1
MAGIC_PHYS equ 0x60000       ; physical frame with known values
TASK2_ESP  equ 0x70000
ESP0       equ 0x7f000       ; ring-0 stack from TSS1 on entries from ring 3
KSTACK     equ 0x90000
PSE_ALIAS  equ 0x800000      ; 4 MiB page at linear 8 MiB mapped to physical 4 MiB

MAGIC0     equ 0x600df00d    ; at MAGIC_PHYS + 0
MAGIC1     equ 0xc0ffee01    ; at MAGIC_PHYS + 4

%define ADDR(x) ((x) - $$ + 0x7c00)   ; a label as a plain number (for shifts and masks)

start:
    BOOT_ENTRY
    mov [drive], dl
    mov ax, 0x0200 | (SECTORS - 1)
    mov cx, 0x0002
    xor dh, dh
    mov bx, stage2
    int 0x13
    jc .stuck
    jmp stage2
.stuck:
    cli
    hlt
    jmp .stuck

drive:  db 0
    times 510 - ($ - $$) db 0
    dw 0xaa55

; ---------------------------------------------------------------- real mode, stage 2
stage2:
    call init_com1
    mov si, s_banner
    call puts

    ; A20 through System Control Port A (bit 1 ALT_A20; bit 0 would reset), then prove it:
    ; 0000:0500 and FFFF:0510 differ only in address bit 20.
    in al, 0x92
    or al, 2
    and al, 0xfe
    out 0x92, al
    mov ax, 0xffff
    mov es, ax
    mov byte [0x500], 0x11
    mov byte [es:0x510], 0x22
    cmp byte [0x500], 0x11
    jne .a20_fail
    mov si, s_a20
    call puts

    lgdt [gdtr]
    mov eax, cr0
    or eax, 0x23              ; PE, MP, NE
    and eax, ~0x0c            ; EM, TS clear: the FPU runs natively
    mov cr0, eax
    jmp KCODE:pm32
.a20_fail:
    mov si, s_a20_fail
    call puts
.h:
    cli
    hlt
    jmp .h

%include "lib/com1.inc"

s_banner:   db "pmode: protected-mode test guest", 13, 10, 0
s_a20:      db "pmode: a20 ok", 13, 10, 0
s_a20_fail: db "pmode: FAIL a20", 13, 10, 0

; ---------------------------------------------------------------- 32-bit helpers
bits 32

; "pmode: <name> ok" on COM1.
%macro OK 1
    mov esi, %%s
    call puts32
    jmp %%e
%%s: db "pmode: ", %1, " ok", 13, 10, 0
%%e:
%endmacro

; Fail with <name> unless condition %1 holds.
%macro CHECK 2
    j%+1 %%ok
    mov esi, %%s
    jmp fail32
%%s: db %2, 0
%%ok:
%endmacro

putc32:                       ; AL to COM1 once LSR.THRE is set
    push edx
    push eax
    mov dx, COM1 + 5
.w:
    in al, dx
    test al, 0x20
    jz .w
    pop eax
    mov dx, COM1
    out dx, al
    pop edx
    ret

puts32:                       ; NUL-terminated string at ESI
    push eax
    push esi
.n:
    lodsb
    test al, al
    jz .d
    call putc32
    jmp .n
.d:
    pop esi
    pop eax
    ret

hex32:                        ; EAX as 8 hex digits
    push ecx
    push eax
    mov ecx, 8
.l:
    rol eax, 4
    push eax
    and al, 0x0f
    add al, '0'
    cmp al, '9'
    jbe .digit
    add al, 'a' - '0' - 10
.digit:
    call putc32
    pop eax
    loop .l
    pop eax
    pop ecx
    ret

; "pmode: FAIL <ESI> a=<EAX> b=<EBX> c=<ECX>", then halt.
fail32:
    push eax
    mov ax, KDATA
    mov ds, ax
    push esi
    mov esi, s_fail
    call puts32
    pop esi
    call puts32
    mov esi, s_a
    call puts32
    pop eax
    call hex32
    mov esi, s_b
    call puts32
    mov eax, ebx
    call hex32
    mov esi, s_c
    call puts32
    mov eax, ecx
    call hex32
    mov esi, s_crlf
    call puts32
halt32:
    cli
    hlt
    jmp halt32

s_fail: db "pmode: FAIL ", 0
s_a:    db " a=", 0
s_b:    db " b=", 0
s_c:    db " c=", 0
s_crlf: db 13, 10, 0

; ---------------------------------------------------------------- protected mode
pm32:
    mov ax, KDATA
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov fs, ax
    mov gs, ax
    mov esp, KSTACK

    ; the IDT: exceptions 0-31 report and halt, except #GP and #PF; INT 80h a DPL-3 trap gate
    mov edi, IDT
    xor eax, eax
    mov ecx, 256 * 2
    rep stosd
    xor ecx, ecx
.exc:
    lea eax, [exc_stubs + ecx * 8]
    mov edx, 0x8e00           ; P, DPL 0, 32-bit interrupt gate
    call set_gate
    inc ecx
    cmp ecx, 32
    jb .exc
    mov ecx, 13
    mov eax, gp_handler
    call set_gate
    mov ecx, 14
    mov eax, pf_handler
    call set_gate
    mov ecx, 0x80
    mov eax, syscall_handler
    mov edx, 0xef00           ; P, DPL 3, 32-bit trap gate
    call set_gate
    lidt [idtr]

    mov ax, cs
    cmp ax, KCODE
    CHECK e, "cs after the far jump"
    sgdt [scratch]
    mov ax, [scratch]
    mov ebx, [scratch + 2]
    cmp ax, gdt_end - gdt - 1
    CHECK e, "sgdt limit"
    cmp ebx, gdt
    CHECK e, "sgdt base"
    sidt [scratch]
    mov ax, [scratch]
    mov ebx, [scratch + 2]
    cmp ax, 256 * 8 - 1
    CHECK e, "sidt limit"
    cmp ebx, IDT
    CHECK e, "sidt base"
    mov ax, TSS1_SEL
    ltr ax
    xor eax, eax
    str ax
    cmp eax, TSS1_SEL
    CHECK e, "str after ltr"
    mov al, [gdt + TSS1_SEL + 5]
    cmp al, 0x8b              ; LTR marks the TSS busy (type 11)
    CHECK e, "ltr busy bit"
    OK "protected mode"

    ; ------------------------------------------------------------ paging
    mov eax, 1
    cpuid
    mov eax, edx
    test eax, 1 << 3
    CHECK nz, "cpuid pse"
    test eax, 1 << 0
    CHECK nz, "cpuid fpu"

    mov edi, PT0              ; identity map 0-4 MiB, supervisor R/W
    mov eax, 0x003
    mov ecx, 1024
.pt:
    stosd
    add eax, 0x1000
    loop .pt
    or dword [PT0 + (USER_PAGE >> 12) * 4], 4
    or dword [PT0 + (USER_STACK >> 12) * 4], 4
    mov dword [PT0 + (NP_PAGE >> 12) * 4], 0
    and dword [PT0 + (RO_PAGE >> 12) * 4], ~2
    mov edi, PD
    xor eax, eax
    mov ecx, 1024
    rep stosd
    mov dword [PD + 0], PT0 | 7              ; P, R/W, U: the PTEs decide U/S
    mov dword [PD + 4], 0x400000 | 0x83      ; 4-8 MiB identity, 4 MiB page (PS)
    mov dword [PD + (PSE_ALIAS >> 22) * 4], 0x400000 | 0x83
    mov dword [MAGIC_PHYS], MAGIC0
    mov dword [MAGIC_PHYS + 4], MAGIC1

    mov eax, cr4
    or eax, 1 << 4            ; PSE
    mov cr4, eax
    mov eax, PD
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80010000        ; PG, WP
    mov cr0, eax
    jmp .paged
.paged:
    mov eax, cr0
    and eax, 0x80010001
    cmp eax, 0x80010001
    CHECK e, "cr0 read back"
    mov eax, cr3
    cmp eax, PD
    CHECK e, "cr3 read back"
    mov eax, cr4
    test eax, 1 << 4
    CHECK nz, "cr4.pse read back"

    ; the same physical 4 MiB at linear 4 MiB and 8 MiB
    mov dword [0x400100], 0
    mov dword [PSE_ALIAS + 0x100], 0x5e5e1234
    mov eax, [0x400100]
    cmp eax, 0x5e5e1234
    CHECK e, "pse alias"
    mov eax, [PD + (PSE_ALIAS >> 22) * 4]
    and eax, 0x60
    cmp eax, 0x60             ; accessed and dirty set in the 4 MiB PDE (SDM 4.8)
    CHECK e, "pse pde accessed/dirty"
    OK "paging"

    ; ------------------------------------------------------------ #PF on a not-present page
    mov dword [pf_expect], 1
    mov ebx, 0x0badbad0
    mov eax, [NP_PAGE + 4]    ; faults; the handler maps the page; this re-executes
    cmp dword [pf_expect], 0
    CHECK e, "not-present #PF not taken"
    cmp eax, MAGIC1
    CHECK e, "value after #PF"
    test dword [PT0 + (NP_PAGE >> 12) * 4], 0x20
    CHECK nz, "pte accessed"
    mov dword [NP_PAGE + 8], 0xabcd0123
    mov eax, [MAGIC_PHYS + 8]
    cmp eax, 0xabcd0123
    CHECK e, "write through the new mapping"
    OK "page fault"

    ; a supervisor write to a read-only page faults with CR0.WP=1 (SDM 4.6)
    mov dword [pf_expect], 2
    mov dword [RO_PAGE + 0x10], 0x77665544
    cmp dword [pf_expect], 0
    CHECK e, "wp #PF not taken"
    mov eax, [RO_PAGE + 0x10]
    cmp eax, 0x77665544
    CHECK e, "value after wp #PF"
    test dword [PT0 + (RO_PAGE >> 12) * 4], 0x40
    CHECK nz, "pte dirty"
    OK "write protect"

    ; ------------------------------------------------------------ x87 FPU
    fninit
    fnstcw [fcw]
    movzx eax, word [fcw]
    cmp eax, 0x037f
    CHECK e, "fninit control word"
    fnstsw ax
    and eax, 0xffff
    CHECK z, "fninit status word"

    fldpi                     ; pi rounded to nearest in 64 bits: 4000 c90fdaa2 2168c235
    fstp tword [ft]
    mov esi, ft
    mov edi, x_pi
    mov ecx, 10
    repe cmpsb
    CHECK e, "fldpi bytes"

    fild dword [c_two]
    fsqrt
    fst qword [fq]
    mov eax, [fq]
    mov ebx, [fq + 4]
    cmp eax, 0x667f3bcd       ; sqrt(2) as a double: 3ff6a09e 667f3bcd
    CHECK e, "sqrt(2) low"
    cmp ebx, 0x3ff6a09e
    CHECK e, "sqrt(2) high"
    fimul dword [c_million]
    fistp dword [fi]
    mov eax, [fi]
    cmp eax, 1414214          ; 1414213.56 rounded to nearest
    CHECK e, "sqrt(2) * 1e6"

    fld1
    fidiv dword [c_three]
    fld st0
    fstp tword [ft]           ; 1/3: 3ffd aaaaaaaa aaaaaaab
    mov esi, ft
    mov edi, x_third
    mov ecx, 10
    repe cmpsb
    CHECK e, "1/3 bytes"
    fimul dword [c_three]     ; rounds to exactly 1
    fld1
    fcompp
    fnstsw ax
    and eax, 0x4500
    cmp eax, 0x4000           ; C3: equal
    CHECK e, "fcompp 1/3*3 = 1"

    fild dword [c_three]
    fild dword [c_two]
    fcompp                    ; 2 < 3: C0
    fnstsw ax
    mov ebx, eax
    and eax, 0x4500
    cmp eax, 0x0100
    CHECK e, "fcompp 2 < 3"
    mov eax, ebx
    sahf
    CHECK b, "sahf after fnstsw"
    fld qword [c_qnan]
    fld1
    fucompp                   ; unordered: C3 C2 C0, no invalid-operation flag for a QNaN
    fnstsw ax
    and eax, 0x4501
    cmp eax, 0x4500
    CHECK e, "fucompp unordered"

    fild dword [c_million]
    fidiv dword [c_seven]
    fistp dword [fi]
    mov eax, [fi]
    cmp eax, 142857
    CHECK e, "1000000 / 7"

    ; rounding control on -11/2 = -5.5 and 5/2 = 2.5 (SDM vol. 1 4.8.4)
    mov esi, rc_cases
.rc:
    fldcw [esi]
    fild dword [esi + 2]
    fidiv dword [c_two]
    fistp dword [fi]
    mov eax, [fi]
    mov ebx, [esi + 6]
    movzx ecx, word [esi]
    cmp eax, ebx
    CHECK e, "fistp rounding"
    add esi, 10
    cmp esi, rc_cases_end
    jb .rc

    ; precision control: single (PC=00) rounds the significand to 24 bits
    fldcw [cw_single]
    fld1
    fidiv dword [c_three]
    fstp tword [ft]
    fldcw [cw_default]
    mov esi, ft
    mov edi, x_third24
    mov ecx, 10
    repe cmpsb
    CHECK e, "1/3 in single precision"

    ; masked divide by zero: +infinity and ZE
    fnclex
    fld1
    fldz
    fdivp st1
    fnstsw ax
    test eax, 4
    CHECK nz, "divide-by-zero flag"
    fstp qword [fq]
    mov eax, [fq]
    mov ebx, [fq + 4]
    test eax, eax
    CHECK z, "1/0 low"
    cmp ebx, 0x7ff00000
    CHECK e, "1/0 = +inf"
    fnstsw ax
    and eax, 0x3800
    CHECK z, "fpu stack top back at 0"
    OK "fpu"

    ; ------------------------------------------------------------ ring 3
    mov [kern_esp], esp
    mov dword [pf_expect], 3
    mov ax, UDATA
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    push dword UDATA
    push dword USER_STACK + 0x1000
    push dword 0x00000002     ; IF=0, IOPL=0: CLI and HLT fault at CPL 3
    push dword UCODE
    push dword user_entry
    iretd

ring3_back:                   ; from the #GP handler, on the kernel stack again
    mov ax, KDATA
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ax, ss
    cmp ax, KDATA
    CHECK e, "ss from the tss"
    mov eax, [sys_count]
    cmp eax, 1
    CHECK e, "system call count"
    mov eax, [gate_count]
    cmp eax, 1
    CHECK e, "call gate count"
    mov eax, [pf_expect]
    test eax, eax
    CHECK z, "ring-3 #PF not taken"
    mov eax, [gp_count]
    cmp eax, 2
    CHECK e, "ring-3 #GP count"
    OK "ring 3"

    ; ------------------------------------------------------------ hardware task switch
    mov ebx, 0x11111111
    mov esi, 0x22222222
    mov edi, 0x33333333
    mov ebp, 0x44444444
    call TSS2_SEL:0
    cmp ebx, 0x11111111       ; restored from TSS1 by the IRET back
    CHECK e, "ebx after the task switch"
    cmp esi, 0x22222222
    CHECK e, "esi after the task switch"
    cmp edi, 0x33333333
    CHECK e, "edi after the task switch"
    cmp ebp, 0x44444444
    CHECK e, "ebp after the task switch"
    mov eax, [task2_ran]
    cmp eax, 1
    CHECK e, "task 2 ran once"
    xor eax, eax
    str ax
    cmp eax, TSS1_SEL
    CHECK e, "str back in task 1"
    movzx eax, word [tss2]
    cmp eax, TSS1_SEL
    CHECK e, "task 2 back link"
    mov al, [gdt + TSS2_SEL + 5]
    cmp al, 0x89              ; IRET left task 2 not busy
    CHECK e, "task 2 busy bit cleared"
    mov al, [gdt + TSS1_SEL + 5]
    cmp al, 0x8b
    CHECK e, "task 1 busy bit"
    pushfd
    pop eax
    test eax, 1 << 14
    CHECK z, "nt clear in task 1"
    mov eax, cr0
    test eax, 8               ; a task switch sets CR0.TS (SDM 2.5)
    CHECK nz, "cr0.ts after the task switch"
    clts
    fld1                      ; no #NM once TS is clear
    fistp dword [fi]
    mov eax, [fi]
    cmp eax, 1
    CHECK e, "fpu after clts"
    OK "task switch"

    mov esi, s_pass
    call puts32
    jmp halt32

s_pass: db "pmode: all tests passed", 13, 10, 0

; Task 2: ring 0, entered by the far CALL with registers, CR3 and LDTR from TSS2; NT set.
task2_entry:
    mov ecx, eax
    cmp eax, 0x7a5c0002       ; EAX from TSS2
    CHECK e, "task 2 eax from its tss"
    xor eax, eax
    str ax
    cmp eax, TSS2_SEL
    CHECK e, "str in task 2"
    xor eax, eax
    sldt ax
    cmp eax, LDT_SEL
    CHECK e, "ldtr in task 2"
    mov eax, cr3
    cmp eax, PD
    CHECK e, "cr3 in task 2"
    mov eax, esp
    cmp eax, TASK2_ESP
    CHECK e, "esp in task 2"
    pushfd
    pop eax
    test eax, 1 << 14
    CHECK nz, "nt in task 2"
    mov al, [gdt + TSS2_SEL + 5]
    cmp al, 0x8b
    CHECK e, "task 2 busy"
    mov al, [gdt + TSS1_SEL + 5]
    cmp al, 0x8b              ; CALL keeps the caller busy (SDM table 7-2)
    CHECK e, "task 1 busy during the call"
    mov ax, LDT_DATA
    mov fs, ax
    mov eax, [fs:0]
    cmp eax, MAGIC0
    CHECK e, "ldt data segment"
    inc dword [task2_ran]
    mov esi, s_task2
    call puts32
    xor ebx, ebx              ; clobbered here, restored from TSS1 in task 1
    xor esi, esi
    xor edi, edi
    xor ebp, ebp
    iretd                     ; NT: back to the task in the back link
    jmp task2_entry

s_task2: db "pmode: task 2 running", 13, 10, 0

; ECX = vector, EAX = handler, DX = type bits (P, DPL, type) for byte 5 of the gate.
set_gate:
    mov [IDT + ecx * 8], ax
    mov word [IDT + ecx * 8 + 2], KCODE
    mov [IDT + ecx * 8 + 4], dx
    shr eax, 16
    mov [IDT + ecx * 8 + 6], ax
    ret

; ------------------------------------------------------------ handlers

; Frame from ring 3: [ESP] error code, EIP, CS, EFLAGS, ESP, SS (SDM 6.12.1).
gp_handler:
    push eax
    push ds
    mov ax, KDATA
    mov ds, ax
    mov eax, [esp + 8]        ; error code
    cmp word [esp + 16], UCODE
    jne .bad
    test eax, eax
    jnz .bad
    mov eax, [esp + 12]
    cmp eax, user_cli
    je .cli
    cmp eax, user_hlt
    je .hlt
    jmp .bad
.cli:                         ; resume in ring 3 after the CLI
    inc dword [gp_count]
    mov dword [esp + 12], user_after_cli
    pop ds
    pop eax
    add esp, 4
    iretd
.hlt:                         ; done with ring 3: back to the kernel's stack
    inc dword [gp_count]
    mov esp, [kern_esp]
    jmp ring3_back
.bad:
    mov ebx, [esp + 12]       ; EIP
    movzx ecx, word [esp + 16] ; CS
    mov esi, s_gp
    jmp fail32

; #PF: CR2 and the error code (bit 0 P, 1 W/R, 2 U/S) against what the test armed (SDM 4.7).
pf_handler:
    push eax
    push ebx
    push ds
    mov ax, KDATA
    mov ds, ax
    mov ebx, cr2
    mov eax, [esp + 12]       ; error code
    cmp dword [pf_expect], 1
    je .np
    cmp dword [pf_expect], 2
    je .wp
    cmp dword [pf_expect], 3
    je .user
    jmp .bad
.np:
    cmp ebx, NP_PAGE + 4
    jne .bad
    cmp eax, 0                ; not present, read, supervisor
    jne .bad
    mov dword [PT0 + (NP_PAGE >> 12) * 4], MAGIC_PHYS | 3
    invlpg [NP_PAGE]
    jmp .done
.wp:
    cmp ebx, RO_PAGE + 0x10
    jne .bad
    cmp eax, 3                ; present, write, supervisor
    jne .bad
    or dword [PT0 + (RO_PAGE >> 12) * 4], 2
    invlpg [RO_PAGE]
    jmp .done
.user:
    cmp ebx, SUPER_ADDR
    jne .bad
    cmp eax, 5                ; present, read, user
    jne .bad
    cmp word [esp + 20], UCODE
    jne .bad
    cmp dword [esp + 16], user_read_super
    jne .bad
    mov dword [esp + 16], user_after_pf
.done:
    mov dword [pf_expect], 0
    pop ds
    pop ebx
    pop eax
    add esp, 4
    iretd
.bad:
    mov ecx, [esp + 16]       ; EIP
    mov esi, s_pf
    jmp fail32                ; a = error code, b = CR2, c = EIP

; INT 80h from ring 3 (trap gate, DPL 3): EAX=1 prints the string at EBX and returns its
; length; EAX=2 reports the ring-3 failure named by the string at EBX.
syscall_handler:
    push ds
    push edx
    push esi
    mov dx, KDATA
    mov ds, dx
    ; [ESP+12] EIP, +16 CS, +20 EFLAGS, +24 ESP, +28 SS
    cmp word [esp + 16], UCODE
    CHECK e, "system call cs"
    cmp word [esp + 28], UDATA
    CHECK e, "system call ss"
    lea edx, [esp + 32]
    cmp edx, ESP0             ; the stack came from TSS1.ESP0
    CHECK e, "system call stack"
    cmp eax, 1
    je .puts
    cmp eax, 2
    je .fail
    mov esi, s_sysno
    jmp fail32
.puts:
    mov esi, ebx
    call puts32
    mov edx, ebx
.len:
    cmp byte [edx], 0
    je .got
    inc edx
    jmp .len
.got:
    sub edx, ebx
    mov eax, edx
    inc dword [sys_count]
    pop esi
    pop edx
    pop ds
    iretd
.fail:
    mov esi, ebx
    jmp fail32

; Far CALL through the DPL-3 call gate: on the TSS1 ring-0 stack, [ESP] EIP, CS, ESP, SS.
call_gate_handler:
    push ds
    push esi
    mov si, KDATA
    mov ds, si
    cmp word [esp + 12], UCODE
    CHECK e, "call gate caller cs"
    cmp word [esp + 20], UDATA
    CHECK e, "call gate caller ss"
    mov si, cs
    cmp si, KCODE
    CHECK e, "call gate cs"
    inc dword [gate_count]
    mov esi, s_gate
    call puts32
    pop esi
    pop ds
    mov eax, 0xca11ca11
    retf

; Exceptions without their own handler: "pmode: FAIL exception" a=vector b=the next word
; (error code or EIP), c=the one after.
exc_common:
    pop eax
    pop ebx
    pop ecx
    mov esi, s_exc
    jmp fail32

    align 8
exc_stubs:
%assign v 0
%rep 32
    push byte v
    jmp near exc_common
    align 8
%assign v v + 1
%endrep

s_gp:    db "unexpected #GP (a=error code b=eip c=cs)", 0
s_pf:    db "unexpected #PF (a=error code b=cr2 c=eip)", 0
s_exc:   db "exception", 0
s_sysno: db "system call number", 0
s_gate:  db "pmode: call gate ok", 13, 10, 0

; ---------------------------------------------------------------- data
    align 8
gdt:
    GDT_KERNEL_FLAT
    GDT_USER_FLAT
    dw 0x67, ADDR(tss1) & 0xffff      ; TSS1: 32-bit available TSS (type 9)
    db (ADDR(tss1) >> 16) & 0xff, 0x89, 0, ADDR(tss1) >> 24
    dw 0x67, ADDR(tss2) & 0xffff      ; TSS2
    db (ADDR(tss2) >> 16) & 0xff, 0x89, 0, ADDR(tss2) >> 24
    dw ADDR(call_gate_handler) & 0xffff, KCODE   ; call gate: P, DPL 3, type 12, no parameters
    db 0, 0xec
    dw ADDR(call_gate_handler) >> 16
    dw ldt_end - ldt - 1, ADDR(ldt) & 0xffff      ; LDT: type 2
    db (ADDR(ldt) >> 16) & 0xff, 0x82, 0, ADDR(ldt) >> 24
gdt_end:

ldt:
    dq 0
    dw 0x0fff, MAGIC_PHYS & 0xffff    ; data, base MAGIC_PHYS, 4 KiB, DPL 0
    db MAGIC_PHYS >> 16, 0x92, 0x40, 0
ldt_end:

gdtr:   dw gdt_end - gdt - 1
        dd gdt
idtr:   dw 256 * 8 - 1
        dd IDT

; 32-bit TSS (SDM figure 7-2): back link, ESP0, SS0, ..., CR3 at 1Ch, EIP 20h, EFLAGS 24h,
; EAX-EDI 28h-44h, ES-GS 48h-5Ch, LDT 60h, I/O map base 66h (past the limit: no bitmap).
    align 4
tss1:
    dd 0, ESP0, KDATA, 0, 0, 0, 0
    dd PD                     ; CR3: loaded again when task 2 returns here
    times 16 dd 0             ; EIP, EFLAGS, EAX-EDI, ES-GS: saved by the task switch
    dd 0                      ; LDT
    dw 0, 0x68
tss2:
    dd 0, 0, 0, 0, 0, 0, 0
    dd PD, task2_entry, 0x00000002
    dd 0x7a5c0002, 0, 0, 0, TASK2_ESP, 0, 0, 0   ; EAX ECX EDX EBX ESP EBP ESI EDI
    dd KDATA, KCODE, KDATA, KDATA, 0, 0          ; ES CS SS DS FS GS
    dd LDT_SEL
    dw 0, 0x68

x_pi:      db 0x35, 0xc2, 0x68, 0x21, 0xa2, 0xda, 0x0f, 0xc9, 0x00, 0x40
x_third:   db 0xab, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xfd, 0x3f
x_third24: db 0x00, 0x00, 0x00, 0x00, 0x00, 0xab, 0xaa, 0xaa, 0xfd, 0x3f
c_two:     dd 2
c_three:   dd 3
c_seven:   dd 7
c_million: dd 1000000
c_qnan:    dq 0x7ff8000000000000
cw_single:  dw 0x007f
cw_default: dw 0x037f
rc_cases:                     ; control word, dividend, expected FISTP of dividend / 2
    dw 0x037f
    dd -11, -6                ; nearest: ties to even
    dw 0x037f
    dd 5, 2
    dw 0x077f
    dd -11, -6                ; down
    dw 0x0b7f
    dd -11, -5                ; up
    dw 0x0f7f
    dd -11, -5                ; toward zero
    dw 0x0f7f
    dd 5, 2
rc_cases_end:

    align 4
pf_expect:  dd 0
sys_count:  dd 0
gate_count: dd 0
gp_count:   dd 0
task2_ran:  dd 0
kern_esp:   dd 0
fcw:        dw 0
fi:         dd 0
fq:         dq 0
ft:         times 10 db 0
scratch:    times 8 db 0

%if $ - $$ > USER_PAGE - 0x7c00
  %error "the kernel part overlaps the user page"
%endif
    times USER_PAGE - 0x7c00 - ($ - $$) db 0

; ---------------------------------------------------------------- ring 3 (page USER_PAGE, U=1)
user_entry:
    mov ax, cs
    and ax, 3
    cmp ax, 3
    jne u_cpl
    push dword 0x5a5a1234     ; the ring-3 stack survives the system call
    mov eax, 1
    mov ebx, u_msg
    int 0x80
    cmp eax, u_msg_len
    jne u_sys
    pop ecx
    cmp ecx, 0x5a5a1234
    jne u_stack
    xor eax, eax
    call GATE_SEL:0           ; the offset is ignored: the gate gives it
    cmp eax, 0xca11ca11
    jne u_gate
user_read_super:
    mov eax, [SUPER_ADDR]     ; #PF, error code 5; the handler resumes at user_after_pf
    mov ebx, u_f_upf
    jmp ufail
user_after_pf:
user_cli:
    cli                       ; #GP(0); the handler resumes at user_after_cli
    mov ebx, u_f_cli
    jmp ufail
user_after_cli:
user_hlt:
    hlt                       ; #GP(0); the handler returns to the kernel
    mov ebx, u_f_hlt
    jmp ufail
u_cpl:
    mov ebx, u_f_cpl
    jmp ufail
u_sys:
    mov ebx, u_f_sys
    jmp ufail
u_stack:
    mov ebx, u_f_stack
    jmp ufail
u_gate:
    mov ebx, u_f_gate
ufail:
    mov eax, 2
    int 0x80
    jmp ufail

u_msg:      db "pmode: system call from ring 3 ok", 13, 10, 0
u_msg_len   equ $ - u_msg - 1
u_f_cpl:    db "ring 3: cpl is not 3", 0
u_f_sys:    db "ring 3: system call result", 0
u_f_stack:  db "ring 3: user stack", 0
u_f_gate:   db "ring 3: call gate result", 0
u_f_upf:    db "ring 3: read of a supervisor page did not fault", 0
u_f_cli:    db "ring 3: cli did not fault", 0
u_f_hlt:    db "ring 3: hlt did not fault", 0

%if $ - $$ > SECTORS * 512
  %error "the image is larger than SECTORS"
%endif
    times SECTORS * 512 - ($ - $$) db 0
