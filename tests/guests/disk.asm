; hvkit test guest: INT 13h on a hard disk (nasm -i tests/guests/ -f bin). A 64-sector (32 KiB) image,
; 1 cylinder x 16 heads x 63 sectors by the BIOS's geometry: the boot sector loads LBA 1-2
; (the rest of the code) to 0000:7E00; byte i of data sector n (LBA 3-5) is (37n + i*i/8) & 0FFh.
; On COM1: "chs <sum>" (02h read of LBA 3-4; sum = rol(sum, 1) + byte, 16 bits), "lba <sum> same" (42h read
; of the same sectors, compared), "w1 ok" (03h CHS write to LBA 7, read back with 42h),
; "w2 ok" (43h write to LBA 9, read back with 02h), "edd <AH> <BX> <CX>" (41h),
; "sect <n>" (48h total sectors), "err <AH> <count>" (42h past the end: CF=1, 0 blocks),
; "disk done"; after a key "bye", then a halt with interrupts off. Writes go to the BIOS's
; copy-on-write overlay: the image file never changes.
bits 16
org 0x7c00
%include "lib/boot.inc"

BUF1 equ 0x1000
BUF2 equ 0x2000
PAT  equ 0x3000
BACK equ 0x3400

start:
    BOOT_ENTRY
    mov [drive], dl
    mov ax, 0x0202            ; the code in LBA 1-2 (C0 H0 S2-3) to 7E00
    mov cx, 0x0002
    xor dh, dh
    mov bx, main
    int 0x13
    jc .stuck
    jmp main
.stuck:
    cli
    hlt
    jmp .stuck

drive:  db 0
    times 510 - ($ - $$) db 0
    dw 0xaa55

main:
    call init_com1

    ; CHS read: C0 H0 S4-5 = LBA 3-4
    mov ax, 0x0202
    mov cx, 0x0004
    xor dh, dh
    mov dl, [drive]
    mov bx, BUF1
    int 0x13
    jc fail
    mov si, s_chs
    call puts
    mov si, BUF1
    call sum1k
    call crlf

    ; LBA read of the same sectors
    mov word [dap + 2], 2
    mov word [dap + 4], BUF2
    mov dword [dap + 8], 3
    mov ah, 0x42
    call edd
    jc fail
    mov si, s_lba
    call puts
    mov si, BUF2
    call sum1k
    mov si, BUF1
    mov di, BUF2
    mov cx, 1024
    repe cmpsb
    jne fail
    mov si, s_same
    call puts

    ; a pattern sector
    mov di, PAT
    xor cx, cx
.pat:
    mov al, cl
    xor al, 0x5a
    stosb
    inc cx
    cmp cx, 512
    jne .pat

    ; CHS write to S8 (LBA 7), read back by LBA
    mov ax, 0x0301
    mov cx, 0x0008
    xor dh, dh
    mov dl, [drive]
    mov bx, PAT
    int 0x13
    jc fail
    mov word [dap + 2], 1
    mov word [dap + 4], BACK
    mov dword [dap + 8], 7
    mov ah, 0x42
    call edd
    jc fail
    call same512
    mov si, s_w1
    call puts

    ; LBA write to LBA 9 (no verify), read back by CHS S10
    mov word [dap + 2], 1
    mov word [dap + 4], PAT
    mov dword [dap + 8], 9
    mov ax, 0x4300
    call edd
    jc fail
    mov ax, 0x0201
    mov cx, 0x000a
    xor dh, dh
    mov dl, [drive]
    mov bx, BACK
    int 0x13
    jc fail
    call same512
    mov si, s_w2
    call puts

    ; EDD installation check
    mov ah, 0x41
    mov bx, 0x55aa
    mov dl, [drive]
    int 0x13
    jc fail
    mov si, s_edd
    call puts
    mov al, ah
    call hex8
    call space
    mov ax, bx
    call hex16
    call space
    mov ax, cx
    call hex16
    call crlf

    ; drive parameters: the caller's buffer says 1Eh bytes
    mov si, BACK
    mov word [si], 0x1e
    mov ah, 0x48
    mov dl, [drive]
    int 0x13
    jc fail
    mov si, s_sect
    call puts
    mov ax, [BACK + 16]
    call hex16
    call crlf

    ; past the end: CF=1, AH=01h, the packet's count says 0 blocks done
    mov word [dap + 2], 1
    mov dword [dap + 8], 0x1000
    mov ah, 0x42
    call edd
    jnc fail
    mov si, s_err
    call puts
    mov al, ah
    call hex8
    call space
    mov ax, [dap + 2]
    call hex16
    call crlf

    mov si, s_done
    call puts
    xor ah, ah
    int 0x16
    mov si, s_bye
    call puts
    jmp halt

    FAIL_AND_HALT

edd:                          ; INT 13h AH (AL) with the packet at DS:SI
    mov si, dap
    mov dl, [drive]
    int 0x13
    ret

same512:                      ; PAT and BACK equal, else fail
    mov si, PAT
    mov di, BACK
    mov cx, 512
    repe cmpsb
    jne fail
    ret

sum1k:                        ; prints the checksum of 1024 bytes at DS:SI: s = rol(s, 1) + byte
    xor bx, bx
    mov cx, 1024
    xor ah, ah
.add:
    lodsb
    rol bx, 1
    add bx, ax
    loop .add
    mov ax, bx
    jmp hex16

%include "lib/com1.inc"

s_chs:  db "chs ", 0
s_lba:  db "lba ", 0
s_same: db " same", 13, 10, 0
s_w1:   db "w1 ok", 13, 10, 0
s_w2:   db "w2 ok", 13, 10, 0
s_edd:  db "edd ", 0
s_sect: db "sect ", 0
s_err:  db "err ", 0
s_done: db "disk done", 13, 10, 0
s_bye:  db "bye", 13, 10, 0
s_fail: db "disk FAILED", 13, 10, 0

align 4
dap:    db 0x10, 0
        dw 0, 0, 0
        dd 0, 0

    times 3 * 512 - ($ - $$) db 0

; data sectors LBA 3-5, then zeros to 64 sectors
%assign n 3
%rep 3
  %assign i 0
  %rep 512
    db (n * 37 + ((i * i) >> 3)) & 0xff
    %assign i i + 1
  %endrep
  %assign n n + 1
%endrep
    times 64 * 512 - ($ - $$) db 0
