; hvkit demo guest: a 512-byte boot sector (nasm -f bin).
; Greets through the BIOS teletype (INT 10h AH=0Eh) and then through COM1, echoes keys read
; with INT 16h AH=00h through the teletype, and on 'q' says "bye" through both and halts with
; interrupts off. Each line goes to one output at a time: both reach the same host console,
; so a character sent to both at once would show twice.
bits 16
org 0x7c00

COM1      equ 0x3f8          ; IBM PC/AT COM1 base
UART_THR  equ 0              ; DLAB=0, write
UART_DLL  equ 0              ; DLAB=1
UART_IER  equ 1              ; DLAB=0
UART_DLM  equ 1              ; DLAB=1
UART_FCR  equ 2
UART_LCR  equ 3
UART_MCR  equ 4
UART_LSR  equ 5
LCR_DLAB  equ 0x80
LCR_8N1   equ 0x03
LSR_THRE  equ 0x20
DIVISOR   equ 12             ; 115200 / 12 = 9600 baud

start:
    cli
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x7c00
    jmp 0x0000:.cs_ok        ; some BIOSes enter at 07C0:0000; make CS 0
.cs_ok:
    sti
    cld

    ; COM1: no interrupts (we poll), 9600 8N1, FIFOs on and cleared, DTR+RTS.
    mov dx, COM1 + UART_IER
    xor al, al
    out dx, al
    mov dx, COM1 + UART_LCR
    mov al, LCR_DLAB
    out dx, al
    mov dx, COM1 + UART_DLL
    mov al, DIVISOR & 0xff
    out dx, al
    mov dx, COM1 + UART_DLM
    mov al, DIVISOR >> 8
    out dx, al
    mov dx, COM1 + UART_LCR
    mov al, LCR_8N1
    out dx, al
    mov dx, COM1 + UART_FCR
    mov al, 0x07
    out dx, al
    mov dx, COM1 + UART_MCR
    mov al, 0x03
    out dx, al

    mov si, banner
    call puts_tty
    mov si, banner_com
    call puts_com

.key:
    xor ah, ah
    int 0x16                 ; AL = ASCII, AH = scancode
    cmp al, 'q'
    je .quit
    call tty
    cmp al, 0x0d             ; Enter: add a line feed
    jne .key
    mov al, 0x0a
    call tty
    jmp .key

.quit:
    mov si, bye
    call puts_tty
    mov si, bye
    call puts_com
    cli
.halt:
    hlt
    jmp .halt

; puts_tty / puts_com: print the NUL-terminated string at DS:SI.
puts_tty:
    lodsb
    test al, al
    jz .done
    call tty
    jmp puts_tty
.done:
    ret

puts_com:
    lodsb
    test al, al
    jz .done
    call com
    jmp puts_com
.done:
    ret

; tty: AL to the BIOS teletype. Preserves all registers.
tty:
    push ax
    push bx
    mov ah, 0x0e
    mov bh, 0                ; page 0 (BL, the graphics colour, is unused in text mode)
    int 0x10
    pop bx
    pop ax
    ret

; com: AL to COM1, polling LSR.THRE. Preserves all registers.
com:
    push ax
    push dx
    mov ah, al
    mov dx, COM1 + UART_LSR
.wait:
    in al, dx
    test al, LSR_THRE
    jz .wait
    mov al, ah
    mov dx, COM1 + UART_THR
    out dx, al
    pop dx
    pop ax
    ret

banner:     db "hvkit demo guest", 13, 10, 0
banner_com: db "hvkit demo guest on COM1", 13, 10, 0
bye:        db "bye", 13, 10, 0

    times 510 - ($ - $$) db 0
    dw 0xaa55
