#!/bin/sh
# End-to-end pairing through the real tools: amulet (host) against amulet-sim
# (device), including a man in the middle, replayed, altered and dropped
# records, and the lockout that survives a simulator restart.
set -u
work_prefix=amu-pair
. "${top_srcdir:-.}/tests/sim-helpers.sh"

# ---- pair: both sides show the same six digits; the bond is stored
start_sim band
host h1 pair "sim:$work/band.sock" --name band --yes >"$work/pair.out" 2>"$work/pair.err"
expect_rc 0 $? "pair with a band"
host_code=$(sed -n 's/^code: \([0-9]\{6\}\)$/\1/p' "$work/pair.out")
sim_code=$(sed -n 's/^code: \([0-9]\{6\}\)$/\1/p' "$work/band.log")
if [ -n "$host_code" ] && [ "$host_code" = "$sim_code" ]; then ok "both sides show $host_code"; else bad "codes differ: host '$host_code' device '$sim_code'"; fi
expect_grep "heart_rate" "$work/pair.out" "the disclosure is shown before pairing"
expect_grep "without asking" "$work/pair.err" "--yes warns"
host h1 --json devices >"$work/devices.json"
if /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d)==1 and d[0]['name']=='band' and d[0]['disclosure']['support_end_date']=='2031-12-31'" "$work/devices.json"; then ok "devices --json lists the bond"; else bad "devices --json"; cat "$work/devices.json"; fi
ls -l "$work/h1/master.key" | grep -q '^-rw-------' && ok "master.key is 0600" || bad "master.key mode"

# ---- reconnect with the bonded keys, after a simulator restart too
host h1 ping band --count 5 --size 1000 >"$work/ping.out" 2>&1
expect_rc 0 $? "reconnect and ping"
stop_sim band
start_sim band --policy-version 2027-03
host h1 ping band >"$work/ping2.out" 2>&1
expect_rc 0 $? "reconnect after the device restarted"
expect_grep "privacy policy changed from version 2026-01 to 2027-03" "$work/ping2.out" "a changed privacy policy is reported at reconnect"

# ---- an owned device refuses a second host unless its owner opens pairing
host h2 pair "sim:$work/band.sock" --yes >"$work/second.out" 2>&1
expect_rc 5 $? "second host refused while the device is owned"
expect_grep "not in pairing mode" "$work/second.out" "the refusal says why"

# ---- a device that forgot us (factory reset) fails closed
stop_sim band
rm -rf "$work/band.state"
start_sim band
host h1 ping band >"$work/reset.out" 2>&1
expect_rc 4 $? "reconnect to a reset device fails closed"
expect_grep "does not know this host" "$work/reset.out" "the error explains the reset"
stop_sim band

# ---- declines: on the device, and on the host (answer n)
start_sim nodev --confirm no
host h3 pair "sim:$work/nodev.sock" --yes >"$work/decl1.out" 2>&1
expect_rc 3 $? "device user declines"
expect_grep "declined on the device" "$work/decl1.out" "host says the device declined"
stop_sim nodev
start_sim nohost
echo n | host h4 pair "sim:$work/nohost.sock" >"$work/decl2.out" 2>&1
expect_rc 3 $? "host user declines"
expect_grep "declined on the host" "$work/nohost.log" "device hears the host declined"
[ "$(host h4 --json devices)" = "[]" ] && ok "no bond kept after a decline" || bad "bond kept after decline"
stop_sim nohost

# ---- man in the middle: the two sides see different codes; a decline fails it
start_sim real --confirm no
start_sim mitm --mitm "$work/real.sock"
host h5 pair "sim:$work/mitm.sock" --yes >"$work/mitm.out" 2>&1
expect_rc 3 $? "pairing through a man in the middle fails when the device declines"
host_code=$(sed -n 's/^code: \([0-9]\{6\}\)$/\1/p' "$work/mitm.out")
dev_code=$(sed -n 's/^code: \([0-9]\{6\}\)$/\1/p' "$work/real.log")
if [ -n "$host_code" ] && [ -n "$dev_code" ] && [ "$host_code" != "$dev_code" ]; then ok "MITM: host shows $host_code, device shows $dev_code"; else bad "MITM codes host '$host_code' device '$dev_code'"; cat "$work/mitm.log"; fi
stop_sim mitm
stop_sim real

# ---- hostile device: replayed, altered and dropped records end the session
for fault in replay tamper; do
	start_sim "f$fault"
	host "h$fault" pair "sim:$work/f$fault.sock" --name dev --yes >/dev/null 2>&1 || bad "pair for $fault"
	stop_sim "f$fault"
	start_sim "f$fault" "--$fault"
	host "h$fault" --json ping dev --count 3 >"$work/$fault.json" 2>"$work/$fault.err"
	expect_rc 4 $? "$fault is detected"
	stop_sim "f$fault"
done
expect_grep '"code":"replayed"' "$work/replay.json" "replay reports error code replayed"
expect_grep '"code":"tampered"' "$work/tamper.json" "tamper reports error code tampered"
start_sim fdrop
host hdrop pair "sim:$work/fdrop.sock" --name dev --yes >/dev/null 2>&1 || bad "pair for drop"
stop_sim fdrop
start_sim fdrop --drop-after 2
host hdrop --json ping dev --count 50 --size 2000 >"$work/drop.json" 2>&1
expect_rc 7 $? "a dropped link is reported"
expect_grep '"code":"disconnected"' "$work/drop.json" "drop reports error code disconnected"
stop_sim fdrop

# ---- notifications: a pairing, and support ending soon (from the disclosure)
soon=$(date -u -d '+30 days' +%Y-%m-%d)
start_sim ending --support-end "$soon"
host hend pair "sim:$work/ending.sock" --name ending --yes >"$work/ending.out" 2>&1
expect_grep "Notice: ending was paired with this host" "$work/ending.out" "a new pairing is announced"
host hend ping ending >"$work/ending-ping.out" 2>&1
expect_grep "Notice: ending's support ends on $soon" "$work/ending-ping.out" "support ending within 90 days is announced at connection"
stop_sim ending

# ---- a device's text cannot drive the owner's terminal
start_sim evil --model "$(printf 'Band\033[2J\033]0;owned\007X')" --policy-version "$(printf '1\033[31m')"
host hevil pair "sim:$work/evil.sock" --name evil --yes >"$work/evil.out" 2>&1
expect_rc 0 $? "pair with a device whose model name holds escape sequences"
if grep -q "$(printf '\033')" "$work/evil.out" || grep -q "$(printf '\007')" "$work/evil.out"; then bad "escape bytes reached the terminal"; else ok "no escape byte reaches the terminal"; fi
expect_grep 'Band?\[2J?\]0;owned?X' "$work/evil.out" "control characters are shown as ?"
host hevil info evil >"$work/evil-info.out" 2>&1
if grep -q "$(printf '\033')" "$work/evil-info.out"; then bad "escape bytes in amulet info"; else ok "amulet info shows the stored disclosure without escape bytes"; fi
stop_sim evil

# ---- lockout: 3 rejected pairings lock the device, across a restart
start_sim lock --confirm no
for i in 1 2 3; do
	host "hl$i" pair "sim:$work/lock.sock" --yes >/dev/null 2>&1
	[ $? = 3 ] || bad "rejected pairing $i"
done
stop_sim lock
start_sim lock --confirm yes
host hl4 pair "sim:$work/lock.sock" --yes >"$work/lock.out" 2>&1
expect_rc 5 $? "the 4th pairing is refused after a restart"
expect_grep "try again in" "$work/lock.out" "the lockout says when to retry"
stop_sim lock
# the host rate-limits too: a device with a 1 ms lockout, so only the host's own back-off stops the 4th try
start_sim lock2 --confirm no --lockout-base 1
for i in 1 2 3; do host hl5 pair "sim:$work/lock2.sock" --yes >/dev/null 2>&1; done
host hl5 pair "sim:$work/lock2.sock" --yes >"$work/hostlock.out" 2>&1
expect_rc 5 $? "the host itself backs off after 3 failures"
expect_grep "this host waits" "$work/hostlock.out" "the host says it backs off"
stop_sim lock2

# --json output stays valid JSON whatever a name or path holds: a device
# named with a quote, a backslash and a tab, and a key file path with a quote
odd=$(printf 'my "band" \\ one\ttwo')
start_sim odd
host hj pair "sim:$work/odd.sock" --name "$odd" --yes >/dev/null 2>&1
expect_rc 0 $? "pair a device named with a quote, a backslash and a tab"
json_names() { # json_names WHAT ARGS...: amulet --json ARGS on hj parses, and names the device exactly
	what=$1
	shift
	host hj --json "$@" >"$work/odd.json" 2>"$work/odd.err"
	if "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); assert d.get('name') == sys.argv[2], d" "$work/odd.json" "$odd" 2>"$work/json.err"; then
		ok "$what --json: valid JSON naming the device"
	else
		bad "$what --json:"; sed 's/^/    /' "$work/odd.json" "$work/json.err"
	fi
}
json_names ping ping "$odd" --count 1
json_names "update --policy" update --policy security "$odd"
json_names "update --auto" update --auto "$odd"
host hj --json export keygen --out "$work/key \"q\"" >"$work/odd.json" 2>&1
json_check "$work/odd.json" "d['public_key'].endswith('key \"q\".pub')" "export keygen --json: a path with quotes"
json_names unpair unpair "$odd"
stop_sim odd

finish
