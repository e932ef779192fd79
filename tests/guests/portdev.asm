; portdev: a 512-byte boot sector for the out-of-tree plugin test
; (tests/fixtures/case-swap-plugin). It writes "PING" byte by byte to the
; case-swap device at port 0x7E0, reads four bytes back and prints them on
; COM1, then "\r\n", and halts with interrupts off.
; Build: nasm -f bin -o tests/guests/portdev.img tests/guests/portdev.asm

bits 16
org 0x7c00

COM1     equ 0x3f8
COM1_LCR equ COM1 + 3          ; line control (16550 datasheet, reg 3)
COM1_LSR equ COM1 + 5          ; line status; bit 5 THRE: transmit holding register empty
SWAP     equ 0x7e0

start:
    cli
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x7c00
    cld

    ; COM1: 115200 8N1 (divisor 1 with DLAB set, then 8 data bits, no parity, 1 stop)
    mov dx, COM1_LCR
    mov al, 0x80
    out dx, al
    mov dx, COM1
    mov al, 1
    out dx, al
    inc dx
    xor al, al
    out dx, al
    mov dx, COM1_LCR
    mov al, 0x03
    out dx, al

    ; "PING" into the device
    mov si, ping
    mov cx, 4
    mov dx, SWAP
.write:
    lodsb
    out dx, al
    loop .write

    ; four bytes back, out on COM1
    mov cx, 4
.read:
    mov dx, SWAP
    in al, dx
    call putc
    loop .read

    mov al, 13
    call putc
    mov al, 10
    call putc

.halt:
    cli
    hlt
    jmp .halt

; putc: AL to COM1 once the transmitter holding register is empty. Keeps all registers.
putc:
    push dx
    push ax
    mov dx, COM1_LSR
.wait:
    in al, dx
    test al, 0x20
    jz .wait
    pop ax
    mov dx, COM1
    out dx, al
    pop dx
    ret

ping: db "PING"

times 510 - ($ - $$) db 0
dw 0xaa55
