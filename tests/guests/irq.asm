; irq: a 512-byte boot sector for the interrupt-delivery test (tests/interrupts.test.ts).
; It programs the 8259A pair as a PC BIOS does (master vector base 0x08, slave 0x70,
; slave on IR2), unmasks only IRQ3, points IVT vector 0x0B at its handler, marks itself
; ready, then waits in `sti; hlt`. The handler counts in memory and sends the master a
; non-specific EOI. The test raises and lowers IRQ line 3 and reads the count.
; Build: nasm -f bin -o tests/guests/irq.img tests/guests/irq.asm

bits 16
org 0x7c00

COUNT   equ 0x0500              ; word: handler runs (free conventional memory)
READY   equ 0x0502              ; word: 0x1234 once the PIC is programmed
HALTS   equ 0x0504              ; word: times the idle loop went round
IRQ3_VECTOR equ 0x08 + 3

PIC1_CMD  equ 0x20
PIC1_DATA equ 0x21
PIC2_CMD  equ 0xa0
PIC2_DATA equ 0xa1

start:
    cli
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, 0x7c00
    mov word [COUNT], 0
    mov word [HALTS], 0
    mov word [IRQ3_VECTOR * 4], handler
    mov word [IRQ3_VECTOR * 4 + 2], 0

    ; ICW1: edge, cascade, ICW4 needed; ICW2: base; ICW3: slave on IR2 / slave ID 2; ICW4: 8086
    mov al, 0x11
    out PIC1_CMD, al
    out PIC2_CMD, al
    mov al, 0x08
    out PIC1_DATA, al
    mov al, 0x70
    out PIC2_DATA, al
    mov al, 0x04
    out PIC1_DATA, al
    mov al, 0x02
    out PIC2_DATA, al
    mov al, 0x01
    out PIC1_DATA, al
    out PIC2_DATA, al
    ; OCW1: only IRQ3 unmasked
    mov al, 0xf7
    out PIC1_DATA, al
    mov al, 0xff
    out PIC2_DATA, al

    mov word [READY], 0x1234
idle:
    inc word [HALTS]
    sti
    hlt
    jmp idle

handler:
    push ax
    inc word [cs:COUNT]
    mov al, 0x20                ; OCW2: non-specific EOI
    out PIC1_CMD, al
    pop ax
    iret

times 510 - ($ - $$) db 0
dw 0xaa55
