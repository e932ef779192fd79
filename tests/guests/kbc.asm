; hvkit test guest: the keyboard controller's port 60h, polled (nasm -i tests/guests/ -f bin, one sector).
; Masks IRQ 1 at the master 8259A (so the BIOS's INT 09h does not take the bytes), then
; prints "kbc ready" and every byte read from port 60h while the i8042 status (port 64h)
; bit 0 says the output buffer is full, as "sc <byte>" (set-1 scancodes, translated by the
; i8042); after the break code of 'q' (90h), "bye" and a halt with interrupts off.
bits 16
org 0x7c00
%include "lib/boot.inc"

start:
    BOOT_ENTRY
    call init_com1
    in al, 0x21
    or al, 0x02               ; OCW1: mask IRQ 1
    out 0x21, al
    mov si, s_ready
    call puts
.poll:
    in al, 0x64
    test al, 0x01
    jz .poll
    in al, 0x60
    mov si, s_sc
    call puts
    call hex8
    call crlf
    cmp al, 0x90
    jne .poll
    mov si, s_bye
    call puts
.h:
    hlt
    jmp .h

%include "lib/com1.inc"

s_ready: db "kbc ready", 13, 10, 0
s_sc:    db "sc ", 0
s_bye:   db "bye", 13, 10, 0

    times 510 - ($ - $$) db 0
    dw 0xaa55
