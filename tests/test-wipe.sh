#!/bin/sh
# End-to-end wipe, factory reset, transfer and host reset through the real
# tools (docs/wipe.md): after a factory wipe no byte of the old keys, data or
# identity is left in any file on either side (searched for with Python,
# after showing each pattern was there before); the typed confirmation; a
# data wipe that keeps the host's copy, now and queued; a wipe queued for a
# lost device; a transfer to a new owner with an export first; transfers cut
# short before and after the device acted, and a device reset cut short; the
# host's own reset.
set -u
work_prefix=amu-wipe
. "${top_srcdir:-.}/tests/sim-helpers.sh"

START=2026-11-01

# scan.py DIR hex:HEX|text:TEXT: prints the files under DIR holding the bytes,
# exit 1 if none does (2: an empty pattern, which proves nothing). A long
# pattern is looked for as three 16-byte windows (start, middle, end), so a
# fragment left in a page also counts.
cat >"$work/scan.py" <<'PY'
import os, sys
root, spec = sys.argv[1], sys.argv[2]
kind, _, value = spec.partition(":")
data = value.encode() if kind == "text" else bytes.fromhex(value)
if not data:
    print("empty pattern")
    sys.exit(2)
pieces = [data[:16], data[len(data) // 2 - 8:len(data) // 2 + 8], data[-16:]] if len(data) > 48 else [data]
hits = []
for directory, _, files in os.walk(root):
    for name in files:
        path = os.path.join(directory, name)
        with open(path, "rb") as f:
            blob = f.read()
        if any(piece in blob for piece in pieces):
            hits.append(os.path.relpath(path, root))
print(" ".join(sorted(hits)))
sys.exit(0 if hits else 1)
PY
present() { # present DIR PATTERN WHAT: the search finds it
	hits=$("$PY" "$work/scan.py" "$1" "$2")
	if [ $? = 0 ]; then ok "$3 (in $hits)"; else bad "$3: not found in $1 ($hits)"; fi
}
gone() { # gone DIR PATTERN WHAT: no file under DIR holds it
	hits=$("$PY" "$work/scan.py" "$1" "$2")
	case $? in
	0) bad "$3: still in $hits" ;;
	1) ok "$3" ;;
	*) bad "$3: no pattern to look for ($hits)" ;;
	esac
}
file_hex() { od -An -tx1 -v "$1" | tr -d ' \n'; }
text_hex() { printf %s "$1" | od -An -tx1 -v | tr -d ' \n'; }
sql() { sqlite3 "$1" "$2"; } # sql DB QUERY
sim_id() { sed -n 's/.*(device id \([0-9a-f]*\), .*/\1/p' "$work/$1.log" | tail -1; }
run() { run_host "$@"; } # run DIR ARGS...: amulet on host dir DIR; rc, $work/out, $work/err
listed() { # listed DIR NAME: amulet devices names it
	host "$1" devices | grep -q "^$2 "
}
stored_count() { host "$1" data "$2" --csv --from 2026-10-01 --to 2027-01-01 | tail -n +2 | wc -l; }
# partly_synced SIM HOSTDIR SEED [NAME]: a band with a day of data, paired
# with HOSTDIR as NAME (default SIM), and a sync cut short: samples on the
# host and still on the device
partly_synced() {
	rm -rf "$work/$1.state" "$work/$2"
	start_sim "$1" --days 1 --seed "$3" --start $START
	host "$2" pair "sim:$work/$1.sock" --name "${4:-$1}" --yes >/dev/null 2>&1 || bad "pair $1"
	stop_sim "$1"
	start_sim "$1" --drop-after 60
	host "$2" sync "${4:-$1}" >/dev/null 2>&1
	expect_rc 7 $? "$1: a sync cut short by the link"
	stop_sim "$1"
	start_sim "$1"
	host_blocks=$(sql "$work/$2/amulet.db" "SELECT count(*) FROM sample_blocks")
	device_rows=$(sql "$work/$1.state/device.db" "SELECT count(*) FROM device_log")
	if [ "$host_blocks" -gt 0 ] && [ "$device_rows" -gt 0 ]; then
		ok "$1: $host_blocks sample blocks on the host, $device_rows log chunks still on the device"
	else
		bad "$1: the cut sync left $host_blocks blocks on the host and $device_rows log chunks on the device"
	fi
}

# ---- a factory wipe leaves nothing behind, on the device or the host
# the sim is "zebra"; the host knows it by a name to look for in its files
Z=zebra-wristband-77
partly_synced zebra h-z 7 $Z
old_id=$(sim_id zebra)
hostdb="$work/h-z/amulet.db"
devdb="$work/zebra.state/device.db"
p_block=hex:$(sql "$hostdb" "SELECT hex(sealed) FROM sample_blocks ORDER BY block_id LIMIT 1")
p_data_key=hex:$(sql "$hostdb" "SELECT hex(wrapped) FROM data_keys WHERE device_id = '$old_id'")
p_host_bond=hex:$(sql "$hostdb" "SELECT hex(sealed) FROM records WHERE kind = 'bond' AND id = '$old_id'")
p_log=hex:$(sql "$devdb" "SELECT hex(sealed) FROM device_log ORDER BY first_seq DESC LIMIT 1")
p_identity=hex:$(sql "$devdb" "SELECT hex(sealed) FROM records WHERE kind = 'identity'")
p_device_bond=hex:$(sql "$devdb" "SELECT hex(sealed) FROM records WHERE kind = 'bond' LIMIT 1")
p_device_master=hex:$(file_hex "$work/zebra.state/master.key")
p_host_master=hex:$(file_hex "$work/h-z/master.key")
# the search finds each pattern before the wipe: they are real and findable
present "$work/h-z" "$p_block" "before: a sealed sample block is in the host's files"
present "$work/h-z" "$p_data_key" "before: the device's wrapped data key is in the host's files"
present "$work/h-z" "$p_host_bond" "before: the host's bond record is in its files"
present "$work/h-z" "text:$old_id" "before: the device id is in the host's files"
present "$work/zebra.state" "$p_log" "before: a sealed log chunk is in the device's files"
present "$work/zebra.state" "$p_identity" "before: the device's identity record is in its files"
present "$work/zebra.state" "$p_device_bond" "before: the device's bond with the host is in its files"
present "$work/zebra.state" "$p_device_master" "before: the device's master key is in its files"
run h-z wipe $Z --factory --yes
expect_rc 0 $rc "wipe --factory"
expect_grep "^Notice: $Z was factory reset: no key, bond or data of yours is left on it; this host's copy is erased too.$" "$work/err" "a Notice says the device was reset and this host's copy erased"
expect_grep "factory reset: keys, bonds and data erased; new device id" "$work/zebra.log" "the device logs its factory reset"
new_id=$(sed -n 's/.*factory reset: .*new device id \([0-9a-f]*\).*/\1/p' "$work/zebra.log")
if [ -n "$new_id" ] && [ "$new_id" != "$old_id" ]; then ok "the device took a new id ($old_id -> $new_id)"; else bad "device id after the reset: '$new_id' (was $old_id)"; fi
if listed h-z $Z; then bad "the host still lists $Z"; else ok "the host no longer lists $Z"; fi
gone "$work/h-z" "$p_block" "no sealed sample block is left in the host's files"
gone "$work/h-z" "$p_data_key" "the wrapped data key is gone from the host's files"
gone "$work/h-z" "$p_host_bond" "the host's bond record is gone from its files"
gone "$work/h-z" "text:$Z" "the device's name is in none of the host's files"
gone "$work/h-z" "text:$old_id" "the old device id is in none of the host's files"
gone "$work/zebra.state" "$p_log" "no sealed log chunk is left in the device's files"
gone "$work/zebra.state" "$p_identity" "the old identity record is gone from the device's files"
gone "$work/zebra.state" "$p_device_bond" "the bond with the host is gone from the device's files"
gone "$work/zebra.state" "$p_device_master" "the old master key is gone from the device's files"
gone "$work/zebra.state" "text:$old_id" "the old device id (hex) is in none of the device's files"
gone "$work/zebra.state" "hex:$old_id" "the old device id (binary) is in none of the device's files"
no_marker=$(ls "$work/zebra.state")
case "$no_marker" in *reset-pending*) bad "the reset marker was left behind: $no_marker" ;; *) ok "the reset marker is gone ($(echo $no_marker))" ;; esac
# the control: the search does find what is still there
present "$work/h-z" "$p_host_master" "control: the search finds the host's own master key"
run h-z2 pair "sim:$work/zebra.sock" --name zebra --yes
expect_rc 0 $rc "the reset device is unowned: a new host pairs"
stop_sim zebra

# ---- the owner types the device's name to confirm
rm -rf "$work/conf.state" "$work/h-c"
start_sim conf --days 1 --seed 3 --start $START
host h-c pair "sim:$work/conf.sock" --name conf --yes >/dev/null 2>&1 || bad "pair conf"
run h-c wipe conf --factory --keep-local --yes
expect_rc 2 $rc "wipe --factory --keep-local is a usage error"
echo conf-typo | host h-c wipe conf >"$work/out" 2>"$work/err"
expect_rc 3 $? "wipe with the wrong name typed is rejected"
expect_grep "Type 'conf' to confirm" "$work/err" "wipe asks to type the device's name"
expect_grep "confirm: Not wiped.$" "$work/err" "wipe says nothing was wiped"
if grep -q "wiped" "$work/conf.log"; then bad "the device was wiped anyway"; cat "$work/conf.log"; else ok "the device heard no wipe"; fi
if listed h-c conf; then ok "the device is still listed"; else bad "the device is no longer listed"; fi
host h-c wipe conf </dev/null >/dev/null 2>&1
expect_rc 3 $? "wipe with nothing typed (end of input) is rejected"
host h-c --json sync conf >"$work/sync.json" 2>"$work/err"
expect_rc 0 $? "sync still works after the refused wipes"
day=$("$b/amulet-sim" --days 1 --seed 3 --start $START --dump-csv | wc -l)
json_check "$work/sync.json" "d['ok'] and d['samples'] == $day" "the sync gets all $day samples of the day: none was wiped"
stop_sim conf

# ---- a data wipe that keeps this host's copy (confirmed by typing the name)
partly_synced kl h-kl 5
before=$(stored_count h-kl kl)
p_kl_log=hex:$(sql "$work/kl.state/device.db" "SELECT hex(sealed) FROM device_log ORDER BY first_seq DESC LIMIT 1")
echo kl | host h-kl wipe kl --keep-local >"$work/out" 2>"$work/err"
expect_rc 0 $? "wipe --keep-local, confirmed by typing the name"
expect_grep "Notice: kl was wiped: its recorded data is erased; this host keeps its copy.$" "$work/err" "a Notice says the device was wiped and this host keeps its copy"
expect_grep "^wiped: every logged sample erased$" "$work/kl.log" "the device logs the wipe"
rows=$(sql "$work/kl.state/device.db" "SELECT count(*) FROM device_log")
if [ "$rows" = 0 ]; then ok "the device's log is empty"; else bad "the device's log still has $rows chunks"; fi
gone "$work/kl.state" "$p_kl_log" "no sealed log chunk is left in the device's files"
if listed h-kl kl; then ok "the host still lists the device"; else bad "the host no longer lists the device"; fi
after=$(stored_count h-kl kl)
if [ "$after" = "$before" ] && [ "$before" -gt 0 ]; then ok "the host still has its $after samples"; else bad "the host had $before samples, now $after"; fi
run h-kl sync kl
expect_rc 0 $rc "a sync after the wipe works (the bond is kept)"
expect_grep "^kl: 0 samples" "$work/out" "the sync finds no new samples"
# the owner erased them: no other host has them
if grep -q "taken by another host" "$work/out"; then bad "the sync after the wipe says the erased samples were taken by another host: $(cat "$work/out")"; else ok "the sync does not say another host took the erased samples"; fi
# a keep-local wipe queued for the next connection
stop_sim kl
run h-kl wipe kl --when-seen --keep-local --yes
expect_rc 0 $rc "wipe --when-seen --keep-local queues the wipe"
host h-kl devices >"$work/out"
expect_grep "^kl .*(wipe pending)$" "$work/out" "devices shows (wipe pending)"
start_sim kl
run h-kl sync kl
expect_grep "^wiped: every logged sample erased$" "$work/kl.log" "the next sync runs the queued wipe"
if listed h-kl kl; then ok "with --keep-local the device stays listed"; else bad "the device is gone after a --keep-local wipe"; fi
if grep -q "no longer available" "$work/err"; then bad "the sync says the device is gone, but it is still paired here: $(cat "$work/err")"; else ok "the sync does not say the device is gone"; fi
host h-kl devices >"$work/out"
if grep -q pending "$work/out"; then bad "still pending after it ran"; else ok "nothing is pending after it ran"; fi
run h-kl sync kl
expect_rc 0 $rc "the device syncs again afterwards"
stop_sim kl

# ---- a lost device: the wipe waits for its next connection
rm -rf "$work/lost.state" "$work/h-l"
start_sim lost --days 1 --seed 4 --start $START
host h-l pair "sim:$work/lost.sock" --name lost --yes >/dev/null 2>&1 || bad "pair lost"
stop_sim lost
run h-l wipe lost --yes
expect_rc 7 $rc "wipe of an unreachable device without --when-seen fails on the link"
expect_grep "nothing was wiped (--when-seen queues it)" "$work/err" "the error says nothing was wiped and how to queue it"
if host h-l devices | grep -q pending; then bad "a failed wipe was queued"; else ok "nothing is queued after it"; fi
run h-l wipe lost --when-seen --yes
expect_rc 0 $rc "wipe --when-seen queues the wipe"
expect_grep "^Notice: lost: wipe queued; it runs at the device's next connection" "$work/err" "a Notice says the wipe is queued"
host h-l devices >"$work/out"
expect_grep "^lost .*(wipe pending)$" "$work/out" "devices shows (wipe pending)"
host h-l --json devices >"$work/devices.json"
json_check "$work/devices.json" "[x['pending'] for x in d if x['name'] == 'lost'] == ['wipe']" "devices --json has \"pending\":\"wipe\""
start_sim lost
run h-l sync lost
expect_rc 6 $rc "the sync that meets the device runs the queued wipe instead"
expect_grep "queued" "$work/err" "the sync says the queued command ran"
expect_grep "^wiped: every logged sample erased$" "$work/lost.log" "the device logs the wipe"
rows=$(sql "$work/lost.state/device.db" "SELECT count(*) FROM device_log")
if [ "$rows" = 0 ]; then ok "the device's log is empty"; else bad "the device's log still has $rows chunks"; fi
if listed h-l lost; then bad "the host still lists the device"; else ok "the device is no longer listed"; fi
stop_sim lost

# ---- transfer: export first, then hand the device to a new owner
rm -rf "$work/tr.state" "$work/h-a" "$work/h-b"
start_sim tr --days 1 --seed 9 --start $START
tr_old_id=$(sim_id tr)
host h-a pair "sim:$work/tr.sock" --name tr --yes >/dev/null 2>&1 || bad "pair tr with host A"
host h-a sync tr >/dev/null 2>&1 || bad "sync tr on host A"
gid=$(host h-a --json consent grant tr --categories heart_rate,steps --purpose "training plan" --recipient-name Coach \
	--from 2026-11-01T06:00:00Z --to 2026-11-01T18:00:00Z --yes 2>/dev/null |
	"$PY" -c "import json,sys; print(json.load(sys.stdin)['id'])")
if [ -n "$gid" ]; then ok "host A granted heart rate and steps to a coach ($gid)"; else bad "consent grant on host A"; fi
run h-a transfer tr --export-grant "$gid" --yes
expect_rc 2 $rc "transfer --export-grant without --format and --out is a usage error"
run h-a transfer tr --export-grant 0123456789abcdef --format csv --out "$work/tr-none" --yes
expect_rc 8 $rc "transfer whose export is refused (no such grant)"
expect_grep "nothing was transferred" "$work/err" "the error says nothing was transferred"
if grep -q "^transfer" "$work/tr.log"; then bad "the device was transferred anyway"; else ok "the device heard no transfer"; fi
if listed h-a tr; then ok "host A still lists the device"; else bad "host A lost the device"; fi
run h-a transfer tr --export-grant "$gid" --format csv --out "$work/tr-export" --yes
expect_rc 0 $rc "transfer with an export first"
expect_grep "^Exported [1-9][0-9]* records to $work/tr-export first.$" "$work/err" "transfer says what it exported first"
expect_grep "^Notice: tr was handed over: it has a new identity, waits for its new owner, and nothing of yours is left on it or on this host.$" "$work/err" "a Notice says the device was handed over"
if [ -s "$work/tr-export/heart_rate.csv" ] && [ -s "$work/tr-export/manifest.json" ]; then ok "the export was written"; else bad "the export is missing"; ls -la "$work/tr-export"; fi
run h-a export verify "$work/tr-export"
expect_rc 0 $rc "the export made before the transfer verifies"
expect_grep "transfer: keys, bonds and data erased; new device id .*; open for a new owner to pair" "$work/tr.log" "the device logs the transfer and opens pairing"
if listed h-a tr; then bad "host A still lists the device"; else ok "host A no longer lists the device"; fi
run h-a consent list
expect_grep "^$gid  revoked" "$work/out" "host A's grant for the device is revoked"
run h-a consent log --verify
expect_rc 0 $rc "host A's consent ledger still verifies after the erase"
run h-b pair "sim:$work/tr.sock" --name tr --yes
expect_rc 0 $rc "host B pairs with the transferred device"
host h-b --json devices >"$work/devices.json"
json_check "$work/devices.json" "len(d) == 1 and d[0]['id'] != '$tr_old_id'" "host B sees a new device id"
host h-b --json sync tr >"$work/sync.json" 2>"$work/err"
expect_rc 0 $? "host B syncs"
json_check "$work/sync.json" "d['ok'] and d['samples'] == 0 and d['skipped'] == 0" "host B finds none of the old owner's samples"
run h-b consent list
expect_grep "^No grants: nothing may leave this host.$" "$work/out" "host B has no grants"
run h-b export tr --grant "$gid" --format csv --out "$work/tr-b-export"
expect_rc 8 $rc "host B cannot export under host A's grant"
if [ -e "$work/tr-b-export" ]; then bad "host B's refused export wrote $work/tr-b-export"; else ok "host B's refused export wrote nothing"; fi
stop_sim tr

# ---- a transfer cut short after the device acted: the receipt was lost
rm -rf "$work/ia.state" "$work/h-ia" "$work/h-ia2"
start_sim ia
host h-ia pair "sim:$work/ia.sock" --name ia --yes >/dev/null 2>&1 || bad "pair ia"
stop_sim ia
start_sim ia --drop-at-command after
run h-ia transfer ia --yes
expect_rc 7 $rc "transfer: the link drops before the receipt"
expect_grep "carried out the command, then dropped the link before the receipt" "$work/ia.log" "the device carried it out, then dropped the link"
host h-ia devices >"$work/out"
expect_grep "^ia .*(transfer pending)$" "$work/out" "devices shows (transfer pending)"
run h-ia sync ia
expect_rc 6 $rc "the next sync finds the device reset"
expect_grep "already carried out" "$work/err" "the sync says the device had already carried it out"
if listed h-ia ia; then bad "the host still lists the device"; else ok "the device is gone from the host"; fi
run h-ia2 pair "sim:$work/ia.sock" --name ia --yes
expect_rc 0 $rc "the device is unowned: a new host pairs"
stop_sim ia

# ---- a transfer cut short before the device acted: it runs at the next connection
rm -rf "$work/ib.state" "$work/h-ib" "$work/h-ib2"
start_sim ib
host h-ib pair "sim:$work/ib.sock" --name ib --yes >/dev/null 2>&1 || bad "pair ib"
stop_sim ib
start_sim ib --drop-at-command before
run h-ib transfer ib --yes
expect_rc 7 $rc "transfer: the link drops as the command arrives"
expect_grep "dropped the link as the owner command arrived, before acting on it" "$work/ib.log" "the device dropped the link before acting"
host h-ib devices >"$work/out"
expect_grep "^ib .*(transfer pending)$" "$work/out" "devices shows (transfer pending)"
stop_sim ib
start_sim ib
run h-ib sync ib
expect_rc 6 $rc "the next sync runs the queued transfer"
expect_grep "queued" "$work/err" "the sync says the queued command ran"
expect_grep "transfer: keys, bonds and data erased; new device id" "$work/ib.log" "the device logs the transfer"
if listed h-ib ib; then bad "the host still lists the device"; else ok "the device is gone from the host"; fi
run h-ib2 pair "sim:$work/ib.sock" --name ib --yes
expect_rc 0 $rc "the device is unowned: a new host pairs"

# ---- a factory reset cut short on the device is finished at its next start
ib_id=$(sim_id ib)
p_ib_master=hex:$(file_hex "$work/ib.state/master.key")
stop_sim ib
printf 'reset\n' >"$work/ib.state/reset-pending"
start_sim ib
ib_new_id=$(sim_id ib)
if [ -n "$ib_new_id" ] && [ "$ib_new_id" != "$ib_id" ]; then ok "the device comes up with a new id ($ib_new_id)"; else bad "device id after the cut-short reset: '$ib_new_id' (was $ib_id)"; fi
expect_grep "listening on .*, 0 bonds)" "$work/ib.log" "the device comes up with no bonds"
if [ -e "$work/ib.state/reset-pending" ]; then bad "the reset marker is still there"; else ok "the reset marker is gone"; fi
gone "$work/ib.state" "$p_ib_master" "the old master key is gone from the device's files"
run h-ib2 sync ib
expect_rc 4 $rc "the last owner's sync is refused: the device no longer knows it"
stop_sim ib

# ---- the host's own reset
rm -rf "$work/rr.state" "$work/h-r"
start_sim rr --days 1 --seed 2 --start $START
host h-r pair "sim:$work/rr.sock" --name rr --yes >/dev/null 2>&1 || bad "pair rr"
host h-r sync rr >/dev/null 2>&1 || bad "sync rr"
p_r_master=hex:$(file_hex "$work/h-r/master.key")
p_r_block=hex:$(sql "$work/h-r/amulet.db" "SELECT hex(sealed) FROM sample_blocks ORDER BY block_id LIMIT 1")
echo please | host h-r reset >"$work/out" 2>"$work/err"
expect_rc 3 $? "reset with the wrong word typed is rejected"
expect_grep "Type 'reset' to confirm" "$work/err" "reset asks to type 'reset'"
expect_grep "confirm: Not reset.$" "$work/err" "reset says nothing was reset"
if listed h-r rr; then ok "the device is still listed"; else bad "the device is gone after a refused reset"; fi
run h-r reset --yes
expect_rc 0 $rc "reset --yes"
expect_grep "^This host was reset: new identity, no devices, no data, no grants.$" "$work/out" "reset says what it did"
run h-r devices
expect_grep "^No paired devices" "$work/out" "no device is listed after the reset"
gone "$work/h-r" "$p_r_master" "the old master key is gone from the data dir"
gone "$work/h-r" "$p_r_block" "no sealed sample block is left in the data dir"
run h-r pair "sim:$work/rr.sock" --name rr --yes
expect_rc 5 $rc "the device refuses the host's new identity: it is owned by the old one"
expect_grep "owned" "$work/err" "the refusal says the device is owned"
stop_sim rr

finish
