; hvkit test guest: the INT 15h memory map (nasm -i tests/guests/ -f bin, a 512-byte boot sector).
; Asking for 24-byte entries, prints every E820h entry on COM1 as
; "e820 <base> <length> <type> <ECX returned> <extended attributes>" (hex), then whether
; ECX=19 is refused, the E801h, 88h and INT 12h answers, then "e820 done"; after a key,
; "bye", and a halt with interrupts off. tests/boot/e820.yaml expects the exact lines for 16 MiB.
bits 16
org 0x7c00
%include "lib/boot.inc"

start:
    BOOT_ENTRY
    call init_com1

    xor ebx, ebx              ; continuation value: 0 = first entry
.entry:
    mov di, buf
    mov dword [di + 20], 0xffffffff
    mov eax, 0xe820
    mov edx, 0x534d4150       ; 'SMAP'
    mov ecx, 24
    int 0x15
    jc .fail
    cmp eax, 0x534d4150
    jne .fail
    mov si, s_e820
    call puts
    mov eax, [buf + 4]
    call hex32
    mov eax, [buf]
    call hex32
    call space
    mov eax, [buf + 12]
    call hex32
    mov eax, [buf + 8]
    call hex32
    call space
    mov al, [buf + 16]
    call hex8
    call space
    mov al, cl                ; the size the BIOS wrote: 24 (18h) with the ACPI 3.0 attributes
    call hex8
    call space
    mov al, [buf + 20]
    call hex8
    call crlf
    test ebx, ebx
    jnz .entry

    ; A too-small buffer must fail with CF=1.
    mov eax, 0xe820
    mov edx, 0x534d4150
    mov ecx, 19
    xor ebx, ebx
    mov di, buf
    int 0x15
    mov si, s_small_ok
    jc .small
    mov si, s_small_bad
.small:
    call puts

    mov ax, 0xe801
    int 0x15
    jc .fail
    mov si, s_e801
    call puts
    call hex16
    call space
    mov ax, bx
    call hex16
    call crlf

    mov ah, 0x88
    int 0x15
    mov si, s_88
    call puts
    call hex16
    call crlf

    int 0x12
    mov si, s_12
    call puts
    call hex16
    call crlf

    mov si, s_done
    call puts
    xor ah, ah                ; wait for a key, so the harness sees every line before the stop
    int 0x16
    mov si, s_bye
    call puts
    jmp halt
.fail:
    mov si, s_fail
    call puts
halt:
    cli
.h:
    hlt
    jmp .h

hex32:                        ; EAX as eight hex digits
    ror eax, 16
    call hex16
    ror eax, 16
    call hex16
    ret

%include "lib/com1.inc"

s_e820:     db "e820 ", 0
s_small_ok: db "e820 ecx<20 refused", 13, 10, 0
s_small_bad: db "e820 bad", 13, 10, 0
s_e801:     db "e801 ", 0
s_88:       db "int15/88 ", 0
s_12:       db "int12 ", 0
s_done:     db "e820 done", 13, 10, 0
s_bye:      db "bye", 13, 10, 0
s_fail: equ s_small_bad

buf: equ 0x600

    times 510 - ($ - $$) db 0
    dw 0xaa55
