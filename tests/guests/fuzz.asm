; hvkit test guest: the port and MMIO fuzzer of the soak test (nasm -f bin, one sector).
; Runs forever with interrupts off (CLI: random PIC/PIT/RTC programming would otherwise
; vector into garbage). Each iteration draws three xorshift32 numbers (selector, value,
; address) and does one of:
;   3 in 4: a port access at a random port 0000h-FFFFh: IN or OUT, byte/word/dword;
;   1 in 4: an "MMIO" probe at FFFF:0010h-FFFF:FFFCh = 100000h-10FFFCh, which with the
;           soak machine's 1 MiB of RAM is not RAM and goes to the monitor's MMIO path:
;           a read, a write or a read-modify-write (XOR), byte/word/dword.
; No string I/O (INS/OUTS): the vmx and svm backends report it as an `unhandled` exit,
; which stops the run.
;
; Masked, because a reset request stops the run today (a full platform reset is a later
; issue), so the run would not last its minute:
;   - values written to port 92h have bit 0 (fast reset, on a 0->1 edge) cleared;
;   - values written to port 64h (i8042 command) in F0h-FFh (pulse output port; bit 0 low
;     pulses reset) become E0h-EFh, and D1h (write output port, whose bit 0 drives reset)
;     becomes D0h (read output port).
; The mask applies to the low byte of every size (word/dword accesses go whole to the
; device at the first port, which takes only bytes, but the guest does not rely on that).
; A20 may be toggled freely (port 92h bit 1, i8042 DDh/DFh): this code and its data live
; below 1 MiB. Before each MMIO probe the guest forces A20 on through port 92h (ALT_A20 is
; OR'ed with the i8042's A20 line), so a probe never wraps to the IVT at 0:0000h.
;
; The guest writes RAM only at its record, 7E00h-9FFFh, which the soak test reads:
;   7E00h dword  'FUZZ' once the record is initialised
;   7E04h dword  iterations
;   7E08h dword  MMIO probes
;   7E0Ch dword  port accesses
;   8000h 8 KiB  bitmap of ports accessed (bit p%8 of byte 8000h+p/8), by base port
bits 16
org 0x7c00
%include "lib/boot.inc"

REC       equ 0x7e00
ITER      equ REC + 4
PROBES    equ REC + 8
PORTOPS   equ REC + 12
BITMAP    equ 0x8000
REC_END   equ 0xa000

start:
    BOOT_ENTRY
    mov di, REC                   ; zero the record and the bitmap
    mov cx, (REC_END - REC) / 2
    xor ax, ax
    rep stosw
    mov dword [REC], 'FUZZ'
    mov ebp, 0x2545f491           ; xorshift32 state (never zero)

next:
    inc dword [ITER]
    call rand
    mov ecx, eax                  ; selector
    call rand
    mov ebx, eax                  ; value
    call rand
    mov dx, ax                    ; port or offset
    test cl, 3
    jz mmio

; ---- port access
    inc dword [PORTOPS]
    mov si, dx                    ; mark the port in the bitmap
    shr si, 3
    mov di, dx
    and di, 7
    mov al, [bitval + di]
    or [BITMAP + si], al
    cmp dx, 0x92
    jne .not92
    and bl, 0xfe                  ; no fast reset
.not92:
    cmp dx, 0x64
    jne .not64
    cmp bl, 0xd1
    jne .not_d1
    mov bl, 0xd0                  ; no output-port write
.not_d1:
    cmp bl, 0xf0
    jb .not64
    and bl, 0xef                  ; no output-port pulse
.not64:
    mov eax, ebx
    mov ch, cl
    shr ch, 2
    and ch, 3                     ; size: 0 byte, 1 word, 2 dword, 3 byte
    test cl, 0x10
    jnz .in
    cmp ch, 1
    je .outw
    cmp ch, 2
    je .outd
    out dx, al
    jmp next
.outw:
    out dx, ax
    jmp next
.outd:
    out dx, eax
    jmp next
.in:
    cmp ch, 1
    je .inw
    cmp ch, 2
    je .ind
    in al, dx
    jmp next
.inw:
    in ax, dx
    jmp next
.ind:
    in eax, dx
    jmp next

; ---- MMIO probe at FFFF:DI, DI in 0010h-FFFCh
mmio:
    inc dword [PROBES]
    in al, 0x92                   ; A20 on, no reset edge
    or al, 0x02
    and al, 0xfe
    out 0x92, al
    mov ax, 0xffff
    mov es, ax
    mov di, dx
    cmp di, 0x10
    jae .lo_ok
    or di, 0x10
.lo_ok:
    cmp di, 0xfffc                ; a dword must not cross the segment limit
    jbe .hi_ok
    mov di, 0xfffc
.hi_ok:
    mov ch, cl
    shr ch, 2
    and ch, 3                     ; size
    mov al, cl
    shr al, 5
    and al, 3                     ; 0 read, 1 write, 2 xor, 3 write
    cmp al, 0
    je .read
    cmp al, 2
    je .xor
    cmp ch, 1
    je .ww
    cmp ch, 2
    je .wd
    mov [es:di], bl
    jmp next
.ww:
    mov [es:di], bx
    jmp next
.wd:
    mov [es:di], ebx
    jmp next
.read:
    cmp ch, 1
    je .rw
    cmp ch, 2
    je .rd
    mov al, [es:di]
    jmp next
.rw:
    mov ax, [es:di]
    jmp next
.rd:
    mov eax, [es:di]
    jmp next
.xor:
    cmp ch, 1
    je .xw
    cmp ch, 2
    je .xd
    xor [es:di], bl
    jmp next
.xw:
    xor [es:di], bx
    jmp next
.xd:
    xor [es:di], ebx
    jmp next

; xorshift32 (Marsaglia 2003: 13, 17, 5) on EBP; the new state in EAX.
rand:
    mov eax, ebp
    shl eax, 13
    xor ebp, eax
    mov eax, ebp
    shr eax, 17
    xor ebp, eax
    mov eax, ebp
    shl eax, 5
    xor ebp, eax
    mov eax, ebp
    ret

bitval: db 1, 2, 4, 8, 16, 32, 64, 128

    times 510 - ($ - $$) db 0
    dw 0xaa55
