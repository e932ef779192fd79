; hvkit test guest: the RTC through INT 1Ah (nasm -i tests/guests/ -f bin, a 512-byte boot sector).
; Prints "time HH:MM:SS" (AH=02h) and "date CCYY-MM-DD" (AH=04h) from the BCD the BIOS
; returns; "rtc FAILED" if a call sets CF. After a key, "bye", then a halt (IF=0).
bits 16
org 0x7c00
%include "lib/boot.inc"

start:
    BOOT_ENTRY
    call init_com1
    sti
    mov ah, 0x02
    int 0x1a
    jc fail
    mov si, s_time
    call puts
    mov al, ch
    call hex8
    mov al, ':'
    call com
    mov al, cl
    call hex8
    mov al, ':'
    call com
    mov al, dh
    call hex8
    call crlf
    mov ah, 0x04
    int 0x1a
    jc fail
    mov si, s_date
    call puts
    mov al, ch
    call hex8
    mov al, cl
    call hex8
    mov al, '-'
    call com
    mov al, dh
    call hex8
    mov al, '-'
    call com
    mov al, dl
    call hex8
    call crlf
    xor ah, ah
    int 0x16
    mov si, s_bye
    call puts
    jmp halt
    FAIL_AND_HALT

%include "lib/com1.inc"

s_time: db "time ", 0
s_date: db "date ", 0
s_bye:  db "bye", 13, 10, 0
s_fail: db "rtc FAILED", 13, 10, 0

    times 510 - ($ - $$) db 0
    dw 0xaa55
