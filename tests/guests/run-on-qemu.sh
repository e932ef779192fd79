#!/usr/bin/env bash
# Boots a test guest image on qemu-system-i386 (TCG, 16 MiB, the image as the first IDE hard
# disk, COM1 to a file) and judges it: passes when COM1 shows "<guest>: all tests passed"
# and QEMU's monitor then reports the CPU halted (HLT=1) with EFLAGS.IF clear, as hvkit's
# "stop: halted" expects. Fails on "<guest>: FAIL", on a timeout, or if QEMU exits first.
# Usage: tests/guests/run-on-qemu.sh <image> [timeout seconds, default 30]
# Exit status: 0 pass, 1 fail, 77 skipped (qemu-system-i386 missing).
set -u
img=${1:?usage: run-on-qemu.sh <image> [timeout seconds]}
limit=${2:-30}
guest=$(basename "$img" .img)
qemu=${QEMU:-qemu-system-i386}

if ! command -v "$qemu" >/dev/null 2>&1; then
  echo "run-on-qemu: skipped: $qemu is not on PATH"
  exit 77
fi
[ -r "$img" ] || { echo "run-on-qemu: cannot read $img"; exit 1; }

tmp=$(mktemp -d)
serial=$tmp/serial.txt
monitor_out=$tmp/monitor.txt
mkfifo "$tmp/monitor.in"
: >"$serial"

# -snapshot: guest writes never reach the image file.
"$qemu" -accel tcg -m 16 -nographic -nodefaults -no-reboot -snapshot \
  -drive "file=$img,format=raw,if=ide,index=0" \
  -serial "file:$serial" -monitor stdio <"$tmp/monitor.in" >"$monitor_out" 2>&1 &
qpid=$!
exec 3>"$tmp/monitor.in"   # keeps QEMU's monitor stdin open until we say quit

status=timeout
deadline=$((SECONDS + limit))
while [ $SECONDS -lt $deadline ]; do
  if grep -q "$guest: all tests passed" "$serial"; then status=passed; break; fi
  if grep -q "$guest: FAIL" "$serial"; then sleep 0.2; status=failed; break; fi
  if ! kill -0 "$qpid" 2>/dev/null; then status=exited; break; fi
  sleep 0.1
done

halted=no
if kill -0 "$qpid" 2>/dev/null; then
  sleep 0.2
  echo "info registers" >&3
  sleep 0.5
  # "EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=1": IF is EFLAGS bit 9.
  line=$(grep -a -o 'EFL=[0-9a-f]* .*HLT=[01]' "$monitor_out" | tail -1)
  efl=$(printf '%s' "$line" | sed -n 's/^EFL=\([0-9a-f]*\).*/\1/p')
  if [ -n "$efl" ] && [ $((0x$efl & 0x200)) -eq 0 ] && printf '%s' "$line" | grep -q 'HLT=1'; then
    halted=yes
  fi
  echo "quit" >&3
fi
exec 3>&-
wait "$qpid" 2>/dev/null

echo "--- COM1 ($guest on $($qemu --version | head -1))"
tr -d '\r' <"$serial"
echo "---"
echo "cpu at the end: ${line:-unknown}"
rm -rf "$tmp"

if [ "$status" = passed ] && [ "$halted" = yes ]; then
  echo "run-on-qemu: PASS: $guest: all tests passed, halted with interrupts disabled"
  exit 0
fi
case $status in
  passed) echo "run-on-qemu: FAIL: all tests passed, but the CPU is not halted with IF=0" ;;
  failed) echo "run-on-qemu: FAIL: the guest reported a failure" ;;
  exited) echo "run-on-qemu: FAIL: QEMU exited before the final line" ;;
  *) echo "run-on-qemu: FAIL: no final line within ${limit}s" ;;
esac
exit 1
