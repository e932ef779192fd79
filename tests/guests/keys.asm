; hvkit test guest: the keyboard through INT 16h (nasm -i tests/guests/ -f bin, a 512-byte boot sector).
; Prints "keys ready", then for every key read with INT 16h AH=10h "key <AX>" (scancode,
; ASCII in hex) on COM1; on 'q', "bye" and a halt with interrupts off. Works whoever fills
; the BIOS ring: the console (realmode keyboard: console) or INT 09h from the i8042.
bits 16
org 0x7c00
%include "lib/boot.inc"

start:
    BOOT_ENTRY
    call init_com1
    sti
    mov si, s_ready
    call puts
.key:
    mov ah, 0x10
    int 0x16
    mov si, s_key
    call puts
    call hex16
    call crlf
    cmp al, 'q'
    jne .key
    mov si, s_bye
    call puts
    cli
.h:
    hlt
    jmp .h

%include "lib/com1.inc"

s_ready: db "keys ready", 13, 10, 0
s_key:   db "key ", 0
s_bye:   db "bye", 13, 10, 0

    times 510 - ($ - $$) db 0
    dw 0xaa55
