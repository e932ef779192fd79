; hvkit test guest: the keyboard controller's port 60h, polled (nasm -f bin, one sector).
; Masks IRQ 1 at the master 8259A (so the BIOS's INT 09h does not take the bytes), then
; prints "kbc ready" and every byte read from port 60h while the i8042 status (port 64h)
; bit 0 says the output buffer is full, as "sc <byte>" (set-1 scancodes, translated by the
; i8042); after the break code of 'q' (90h), "bye" and a halt with interrupts off.
bits 16
org 0x7c00

start:
    cli
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x7c00
    jmp 0x0000:.cs_ok
.cs_ok:
    cld
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

; ---- shared by the test guests (copied into each source: every guest assembles alone)
COM1      equ 0x3f8
init_com1:                    ; 9600 8N1, FIFOs on, no interrupts (we poll LSR)
    push ax
    push dx
    mov dx, COM1 + 1
    xor al, al
    out dx, al
    mov dx, COM1 + 3
    mov al, 0x80
    out dx, al
    mov dx, COM1
    mov al, 12
    out dx, al
    mov dx, COM1 + 1
    xor al, al
    out dx, al
    mov dx, COM1 + 3
    mov al, 0x03
    out dx, al
    mov dx, COM1 + 2
    mov al, 0x07
    out dx, al
    mov dx, COM1 + 4
    mov al, 0x03
    out dx, al
    pop dx
    pop ax
    ret

com:                          ; AL to COM1 once LSR.THRE (bit 5) is set
    push ax
    push dx
    mov ah, al
    mov dx, COM1 + 5
.wait:
    in al, dx
    test al, 0x20
    jz .wait
    mov al, ah
    mov dx, COM1
    out dx, al
    pop dx
    pop ax
    ret

puts:                         ; NUL-terminated DS:SI to COM1
    push ax
    push si
.next:
    lodsb
    test al, al
    jz .done
    call com
    jmp .next
.done:
    pop si
    pop ax
    ret

hex4:                         ; low nibble of AL as a hex digit to COM1
    push ax
    and al, 0x0f
    add al, '0'
    cmp al, '9'
    jbe .digit
    add al, 'a' - '0' - 10
.digit:
    call com
    pop ax
    ret

hex8:                         ; AL as two hex digits
    push ax
    push cx
    mov cl, 4
    ror al, cl
    call hex4
    rol al, cl
    call hex4
    pop cx
    pop ax
    ret

hex16:                        ; AX as four hex digits
    xchg al, ah
    call hex8
    xchg al, ah
    call hex8
    ret

crlf:
    push ax
    mov al, 13
    call com
    mov al, 10
    call com
    pop ax
    ret

space:
    push ax
    mov al, ' '
    call com
    pop ax
    ret

s_ready: db "kbc ready", 13, 10, 0
s_sc:    db "sc ", 0
s_bye:   db "bye", 13, 10, 0

    times 510 - ($ - $$) db 0
    dw 0xaa55
