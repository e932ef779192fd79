; hvkit test guest: timer interrupts (nasm -f bin, a 512-byte boot sector).
; Needs the BIOS's PIC/PIT set-up (IRQ 0 at vector 08h, 18.2 Hz) and interrupt delivery.
; 1. INT 15h/86h waits 200 ms; the BDA tick count (0040:006C) must advance by >= 3 ticks:
;    "wait ok" on COM1.
; 2. Hooks INT 1Ch (which the BIOS's INT 08h calls every tick), waits with sti; hlt until
;    the hook counted 18 ticks; the BDA count must have moved as far: "ticks ok" on COM1
;    and the BIOS teletype.
; After a key, "bye", then a halt with interrupts off.
bits 16
org 0x7c00
%include "lib/boot.inc"

BDA_TICKS equ 0x46c

start:
    BOOT_ENTRY
    call init_com1
    sti

    mov ebx, [BDA_TICKS]
    mov ah, 0x86
    mov cx, 0x0003            ; CX:DX = 200000 us
    mov dx, 0x0d40
    int 0x15
    jc fail
    mov eax, [BDA_TICKS]
    sub eax, ebx
    cmp eax, 3
    jb fail
    mov si, s_wait
    call puts

    cli
    mov word [0x1c * 4], tick_hook
    mov word [0x1c * 4 + 2], 0
    mov ebx, [BDA_TICKS]
    sti
.wait:
    hlt
    cmp word [count], 18
    jb .wait
    mov eax, [BDA_TICKS]
    sub eax, ebx
    cmp eax, 18
    jb fail
    mov si, s_ok
    call puts
    call tty_puts

    xor ah, ah
    int 0x16
    mov si, s_bye
    call puts
    jmp halt
    FAIL_AND_HALT

tick_hook:
    inc word [cs:count]
    iret

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

tty_puts:                     ; NUL-terminated DS:SI to the BIOS teletype
    push ax
    push bx
    push si
.next:
    lodsb
    test al, al
    jz .done
    mov ah, 0x0e
    xor bx, bx
    int 0x10
    jmp .next
.done:
    pop si
    pop bx
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

count:  dw 0
s_wait: db "wait ok", 13, 10, 0
s_ok:   db "ticks ok", 13, 10, 0
s_bye:  db "bye", 13, 10, 0
s_fail: db "timer FAILED", 13, 10, 0

    times 510 - ($ - $$) db 0
    dw 0xaa55
