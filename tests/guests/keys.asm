; hvkit test guest: the keyboard through INT 16h (nasm -f bin, a 512-byte boot sector).
; Prints "keys ready", then for every key read with INT 16h AH=10h "key <AX>" (scancode,
; ASCII in hex) on COM1; on 'q', "bye" and a halt with interrupts off. Works whoever fills
; the BIOS ring: the console (realmode keyboard: console) or INT 09h from the i8042.
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

s_ready: db "keys ready", 13, 10, 0
s_key:   db "key ", 0
s_bye:   db "bye", 13, 10, 0

    times 510 - ($ - $$) db 0
    dw 0xaa55
