#!/bin/sh
# The whole flow through the BlueZ link, with the real tools, against the
# BlueZ emulator (tests/bluez: org.bluez on a private dbus-daemon, bridged to
# amulet-sim): scan (RSSI, pairing mode, a device that goes away during the
# scan), pair (the link-layer passkey through the agent, then Amulet's code),
# sync, a link dropped in the middle of a sync and resumed, the fallback when
# AcquireWrite/AcquireNotify are not supported, export, wipe; a passkey
# declined; no process left behind.
set -u
work_prefix=amu-bluez
. "${top_srcdir:-.}/tests/sim-helpers.sh"

src=${top_srcdir:-.}
emu="$src/tests/bluez/emulator.py"
START=2026-11-01
if ! "$PY" -c 'import dbus, dbusmock, gi' 2>/dev/null || ! command -v dbus-daemon >/dev/null; then
	echo "SKIP: the BlueZ emulator needs python3-dbusmock, python3-dbus, python3-gi and dbus (scripts/deps)"
	exit 77
fi

bus="$work/bus"
stop_all() {
	"$PY" "$emu" stop "$bus" >/dev/null 2>&1
	cleanup
}
trap stop_all EXIT INT TERM
"$PY" "$emu" start "$bus" --exit-with $$ >/dev/null || { bad "the emulator did not start"; exit 1; }
. "$bus/env"
export DBUS_SYSTEM_BUS_ADDRESS
ctl() { "$PY" "$emu" ctl "$bus" "$@"; }
run() { run_host h "$@"; } # amulet on host dir h; rc, $work/out, $work/err
counter() { # counter ADDRESS NAME: one of the emulator's call counters (lines NAME=N)
	n=$(ctl GetCounters "$1" | sed -n "s/^$2=//p")
	echo "${n:-0}"
}
same_samples() { # same_samples NAME PROFILE DAYS SEED WHAT: the host holds exactly the device's samples
	"$b/amulet-sim" --profile "$2" --days "$3" --seed "$4" --start $START --dump-csv | sort >"$work/expected.csv"
	host h data "$1" --csv --from 2026-10-01 --to 2027-01-01 | tail -n +2 | sort >"$work/stored.csv"
	want=$(wc -l <"$work/expected.csv")
	if [ "$want" -gt 0 ] && cmp -s "$work/expected.csv" "$work/stored.csv"; then
		ok "$5: $want samples, the same on both sides"
	else
		bad "$5: host has $(wc -l <"$work/stored.csv"), device had $want"
	fi
}

BAND=C4:2A:11:07:9B:30
GHOST=D0:0D:00:00:00:02
ctl AddAdapter hci0 amulet-test >/dev/null || bad "AddAdapter"
start_sim band --profile band --days 2 --seed 5 --start $START --advertise "$work/band.adv" --link-rate 300000
start_sim ghost --profile watch --advertise "$work/ghost.adv"
ctl AddAmuletDevice hci0 $BAND "Amulet Band" "$work/band.sock" "$work/band.adv" >/dev/null || bad "AddAmuletDevice band"
ctl AddAmuletDevice hci0 $GHOST "Amulet Ghost" "$work/ghost.sock" "$work/ghost.adv" >/dev/null || bad "AddAmuletDevice ghost"

# ---- scan: both devices, in pairing mode, with an RSSI; then one goes away during a scan
run --json scan --timeout 2
expect_rc 0 $rc "scan"
json_check "$work/out" "len(d) == 2 and all(x['pairing_mode'] and isinstance(x['rssi'], int) for x in d)" \
	"scan lists both devices in pairing mode with an RSSI"
json_check "$work/out" "[x['profile'] for x in d] == ['band', 'watch'] and d[0]['address'] == 'bluez:hci0/$BAND'" \
	"scan gives each address to pair with and the profile advertised"
host h --json scan --timeout 3 >"$work/scan2" 2>&1 &
spid=$!
sleep 1
ctl RemoveAmuletDevice $GHOST >/dev/null || bad "RemoveAmuletDevice"
wait $spid
json_check "$work/scan2" "[x['profile'] for x in d] == ['band']" "a device gone during the scan is left out"
run --json scan --timeout 1 --adapter hci7
expect_rc 6 $rc "scan on an adapter that does not exist"
expect_grep "hci7" "$work/err" "the error names the adapter"

# ---- pairing: the radio's passkey first, then Amulet's code; declined at the passkey
printf 'n\n' | host h pair "bluez:hci0/$BAND" --name band >"$work/out" 2>"$work/err"
expect_rc 3 $? "a passkey declined ends the pairing"
expect_grep "passkey: " "$work/out" "the passkey is shown before anything else"
if grep -q "^code: " "$work/out"; then bad "Amulet's handshake ran after a declined passkey"; else ok "no Amulet code after a declined passkey"; fi
run pair "bluez:hci0/$BAND" --name band --yes
expect_rc 0 $rc "pair over BlueZ"
passkey=$(sed -n 's/^passkey: \([0-9]*\)$/\1/p' "$work/out")
want=$(ctl GetLastPasskey $BAND | tr -dc 0-9)
if [ -n "$passkey" ] && [ "$passkey" -eq "$want" ]; then ok "the host showed the emulator's passkey $passkey"; else bad "passkey '$passkey', emulator '$want'"; fi
expect_grep "^code: [0-9]\{6\}$" "$work/out" "then Amulet's six-digit code"
expect_grep "paired with host" "$work/band.log" "the device bonded with the host"
[ "$(counter $BAND acquire_write)" -ge 1 ] && ok "the link used AcquireWrite" || bad "no AcquireWrite"
run --json scan --timeout 2
json_check "$work/out" "len(d) == 1 and not d[0]['pairing_mode'] and d[0]['paired']" \
	"after pairing the band no longer advertises pairing mode"

# ---- sync over the remembered link; the link drops in the middle and the next sync resumes
host h sync band >"$work/sync1" 2>&1 &
hpid=$!
sleep 1
ctl DropConnection $BAND >/dev/null || bad "DropConnection"
wait $hpid
expect_rc 7 $? "a sync whose radio link drops ends with a link error"
if grep -q "stored" "$work/sync1" || [ "$(sqlite3 "$work/h/amulet.db" 'SELECT count(*) FROM sample_blocks')" -gt 0 ]; then
	ok "part of the data arrived before the drop"
else
	bad "nothing arrived before the drop: the drop did not cut a sync"
fi
run sync band
expect_rc 0 $rc "the next sync finishes"
same_samples band band 2 5 "after a dropped link and a resumed sync"

# ---- AcquireWrite/AcquireNotify not supported: WriteValue and notifications instead
writes=$(counter $BAND write_value)
ctl SetAcquireSupported $BAND false >/dev/null || bad "SetAcquireSupported"
run ping band --count 3
expect_rc 0 $rc "pings over WriteValue and notifications"
[ "$(counter $BAND write_value)" -gt "$writes" ] && ok "the fallback used WriteValue" || bad "no WriteValue"
[ "$(counter $BAND start_notify)" -ge 1 ] && ok "the fallback used StartNotify" || bad "no StartNotify"
ctl SetAcquireSupported $BAND true >/dev/null

# ---- export and wipe
gid=$(host h --json consent grant band --categories heart_rate --purpose "coach" --recipient-name Coach \
	--from 2026-11-01T00:00:00Z --to 2026-11-03T00:00:00Z --yes 2>/dev/null |
	"$PY" -c "import json,sys; print(json.load(sys.stdin)['id'])")
[ -n "$gid" ] && ok "a grant for the band" || bad "consent grant"
run export band --grant "$gid" --format csv --out "$work/export"
expect_rc 0 $rc "export of data synced over BlueZ"
run export verify "$work/export"
expect_rc 0 $rc "the export verifies"
run wipe band --factory --yes
expect_rc 0 $rc "factory wipe over BlueZ"
[ "$rc" = 0 ] || sed 's/^/    /' "$work/err"
expect_grep "factory reset" "$work/band.log" "the device reset itself"
run devices
if grep -q "^band " "$work/out"; then bad "the host still lists the band"; else ok "the host forgot the band"; fi

# ---- nothing left behind
"$PY" "$emu" stop "$bus" >/dev/null 2>&1
sleep 0.2
if pgrep -f "$bus" >/dev/null; then bad "processes of the emulator are left: $(pgrep -af "$bus")"; else ok "the emulator stopped, no process left"; fi
finish
