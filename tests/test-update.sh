#!/bin/sh
# End-to-end signed firmware updates through the real tools (docs/update.md):
# packages built with amulet-sim make-update; every refusal before a byte is
# sent (bad signature, wrong class or vendor, older or equal sequence,
# corrupted or truncated payload, expired, too large); a valid update
# installed and confirmed with the settings unchanged; an upload cut by the
# link resumed where it stopped; an image that does not boot reverted; an
# install never confirmed reverted at the device's next reset, or confirmed
# by the next run; the auto-update policy; update --check; settings to review.
set -u
work_prefix=amu-update
. "${top_srcdir:-.}/tests/sim-helpers.sh"

sim="$b/amulet-sim"

run() { run_host h "$@"; } # amulet on host dir h; rc, $work/out, $work/err
refused() { # refused PACKAGE CODE EXIT WHAT: refused on the host, nothing sent
	before=$(grep -c "update offer" "$work/band.log")
	host h --json update band "$work/$1" --yes >"$work/out" 2>"$work/err"
	rc=$?
	expect_rc "$3" $rc "$4"
	json_check "$work/out" "d['error']['code'] == '$2'" "$4: error code $2"
	after=$(grep -c "update offer" "$work/band.log")
	if [ "$before" = "$after" ]; then ok "$4: nothing was offered to the device"; else bad "$4: the device saw an offer"; fi
}
mk() { # mk FILE ARGS...: a package
	out=$1
	shift
	"$sim" make-update --out "$work/$out" "$@" >"$work/mk.out" 2>&1 || { cat "$work/mk.out"; bad "make-update $out"; }
}
settings_of() { # the device's settings as sorted key=value lines
	host h --json settings band | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print("\n".join(f"{k}={v}" for k, v in sorted(d["settings"].items())))'
}
firmware_of() { host h --json settings band | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["firmware_version"], d["trial"], d["reverted_from"])'; }

start_sim band --profile band --setting heart_rate_interval_s=5 --setting display_name=Runner
host h pair "sim:$work/band.sock" --name band --yes >/dev/null 2>&1 || bad "pair band"
run info band
expect_grep "policy 'off'" "$work/out" "info: the update policy is shown, off by default"
expect_grep "Supported until" "$work/out" "info: the support end date is shown"

settings_of >"$work/settings.before"
expect_grep "heart_rate_interval_s=5" "$work/settings.before" "settings: the value set on the device is read back"
expect_grep "display_name=Runner" "$work/settings.before" "settings: the display name set on the device"
run update --check band
expect_grep "runs firmware 1.0.0 (sequence 1)" "$work/out" "check: a new band runs its factory image 1.0.0"
expect_grep "No update package" "$work/out" "check: no package known yet"

# ---- packages
mk good.amupkg --version 1.1.0 --sequence 2 --size 300000 --changes "Better sleep tracking." \
	--changed-setting heart_rate_interval_s
"$sim" make-update --keygen "$work/other.key" >/dev/null 2>&1 || bad "keygen"
mk badsig.amupkg --version 1.1.0 --sequence 2 --sign-key "$work/other.key"
mk watch.amupkg --version 1.1.0 --sequence 2 --class watch
mk vendor.amupkg --version 1.1.0 --sequence 2 --vendor someone-else
mk same.amupkg --version 1.0.1 --sequence 1
mk expired.amupkg --version 1.1.0 --sequence 2 --expires 2020-01-01
mk huge.amupkg --version 1.1.0 --sequence 2 --size 5000000
cp "$work/good.amupkg" "$work/corrupt.amupkg"
"$PY" - "$work/corrupt.amupkg" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-1000] ^= 0x40
open(p, "wb").write(b)
PY
head -c $(($(wc -c <"$work/good.amupkg") - 4096)) "$work/good.amupkg" >"$work/truncated.amupkg"

# ---- refusals, each with its own error, before anything is sent
refused badsig.amupkg bad-signature 4 "signed with another key"
refused watch.amupkg wrong-target 5 "a package for a watch"
refused vendor.amupkg wrong-target 5 "a package of another vendor"
refused same.amupkg rollback 5 "the sequence the device runs"
refused expired.amupkg expired 5 "an expired package"
refused corrupt.amupkg tampered 4 "a corrupted image"
refused truncated.amupkg tampered 4 "a truncated package"
grep -q "truncated" "$work/err" && ok "truncated: the message says so" || bad "truncated: $(cat "$work/err")"
refused huge.amupkg too-large 5 "an image larger than the device's slot"

# ---- the owner says no
printf 'n\n' | host h update band "$work/good.amupkg" >"$work/out" 2>"$work/err"
expect_rc 3 $? "declined at the prompt"
expect_grep "Better sleep tracking" "$work/err" "the prompt shows what changes"
expect_grep "1.1.0 (sequence 2)" "$work/err" "the prompt shows the version"
expect_grep "restarts once" "$work/err" "the prompt shows size and time"

# ---- a link drop in the middle of the upload resumes where it stopped
stop_sim band
start_sim band --drop-after 40
run update band "$work/good.amupkg" --yes
expect_rc 7 $rc "the link dropped in the middle of the upload"
stop_sim band
cp "$work/band.log" "$work/band-drop.log"
start_sim band
run --json update band "$work/good.amupkg" --yes
expect_rc 0 $rc "the update finishes on the next run"
json_check "$work/out" "d['installed'] and d['firmware_version'] == '1.1.0' and not d['trial']" \
	"the device runs 1.1.0, confirmed"
resumed=$(sed -n 's/.*update offer.*resuming at \([0-9]*\).*/\1/p' "$work/band.log" | tail -1)
if [ -n "$resumed" ] && [ "$resumed" -gt 0 ]; then ok "the upload resumed at byte $resumed, not 0"; else bad "no resumption in the device's log"; sed 's/^/    /' "$work/band.log"; fi
# the setting whose meaning changed is flagged until the owner looks at it
run ping band
expect_grep "heart_rate_interval_s" "$work/err" "the next connection asks to review the changed setting"
run settings band
expect_grep "firmware 1.1.0 changed what this means" "$work/out" "settings marks the changed setting"
run ping band
if grep -q "review" "$work/err"; then bad "still asked to review after settings was shown"; else ok "no review asked once the settings were shown"; fi

settings_of >"$work/settings.after"
if cmp -s "$work/settings.before" "$work/settings.after"; then ok "settings unchanged by the update"; else bad "settings changed:"; diff "$work/settings.before" "$work/settings.after"; fi


# ---- installing the same package again is a rollback
refused good.amupkg rollback 5 "the package the device already runs"

# ---- check: the host kept the package it installed
run update --check band
expect_grep "runs the newest package" "$work/out" "check: up to date after the install"
mk next.amupkg --version 1.2.0 --sequence 3
run --json update --check band "$work/next.amupkg"
json_check "$work/out" "d['up_to_date'] is False and d['newest'] == '1.2.0' and d['running'] == '1.1.0'" \
	"check: a newer package given is reported"

# ---- an image that does not boot: the device goes back at once
mk bootfail.amupkg --version 1.2.0 --sequence 3 --boot-fail
run update band "$work/bootfail.amupkg" --yes
expect_rc 5 $rc "an image that does not boot is reported"
expect_grep "could not run firmware 1.2.0 and went back to 1.1.0" "$work/err" "the error names both versions"
set -- $(firmware_of)
[ "$1" = 1.1.0 ] && [ "$2" = False ] && ok "the device is back on 1.1.0, not on trial" || bad "after a bad boot: $*"

# killed_at_reboot WHEN: on a fresh slow simulator, 'amulet update' of
# next.amupkg killed (SIGKILL) as the device reboots into it; waits until the
# device runs it on trial
killed_at_reboot() {
	stop_sim band
	start_sim band --link-rate 800000
	"$b/amulet" --data-dir "$work/h" update band "$work/next.amupkg" --yes >"$work/out" 2>"$work/err" &
	hpid=$!
	for _ in $(seq 300); do grep -q "rebooting" "$work/band.log" && break; sleep 0.05; done
	kill -9 $hpid 2>/dev/null
	wait $hpid 2>/dev/null
	grep -q "rebooting" "$work/band.log" && ok "$1: the host was killed as the device rebooted" || bad "$1: the device never rebooted"
	for _ in $(seq 100); do grep -q "on trial" "$work/band.log" && break; sleep 0.05; done
}

# ---- installed but never confirmed: the next reset goes back
killed_at_reboot "unconfirmed"
set -- $(firmware_of)
[ "$1" = 1.2.0 ] && [ "$2" = True ] && ok "the device runs 1.2.0 on trial, unconfirmed" || bad "after the kill: $*"
stop_sim band
start_sim band
set -- $(firmware_of)
[ "$1" = 1.1.0 ] && [ "$2" = False ] && ok "a reset without confirmation went back to 1.1.0" || bad "after the reset: $*"
expect_grep "never confirmed" "$work/band.log" "the device logged why it went back"

# ---- the same, but the next run confirms what the device runs on trial
killed_at_reboot "confirmed later"
offers=$(grep -c "update offer" "$work/band.log")
run --json update band "$work/next.amupkg" --yes
expect_rc 0 $rc "the next run confirms the image on trial"
json_check "$work/out" "d['firmware_version'] == '1.2.0' and not d['trial']" "the device keeps 1.2.0"
[ "$(grep -c "update offer" "$work/band.log")" = "$offers" ] && ok "nothing was uploaded again" || bad "the image was offered again"

# ---- the auto-update policy
mk feature.amupkg --version 1.3.0 --sequence 4
mk security.amupkg --version 1.3.1 --sequence 5 --security
run --json update --auto band "$work/feature.amupkg"
expect_rc 3 $rc "policy off: --auto installs nothing"
json_check "$work/out" "d['error']['code'] == 'rejected'" "policy off: refused as not approved"
run update --policy security band
expect_rc 0 $rc "the policy is set to security"
run info band
expect_grep "policy 'security'" "$work/out" "info shows the new policy"
run update --auto band "$work/feature.amupkg"
expect_rc 3 $rc "policy security: a feature update still waits for the owner"
run --json update --auto band "$work/security.amupkg"
expect_rc 0 $rc "policy security: a security fix installs without asking"
json_check "$work/out" "d['firmware_version'] == '1.3.1'" "the device runs the security fix"
run update --policy sometimes band
expect_rc 2 $rc "an unknown policy is a usage error"

# ---- settings
run settings band heart_rate_interval_s=0
expect_rc 2 $rc "a setting out of range is refused"
expect_grep "heart_rate_interval_s" "$work/err" "the refusal names the setting"
run settings band share_location=on
expect_rc 2 $rc "a setting the band does not have is refused"
run --json settings band heart_rate_interval_s=10 display_name=Trail
expect_rc 0 $rc "two settings changed at once"
json_check "$work/out" "d['settings']['heart_rate_interval_s'] == '10' and d['settings']['display_name'] == 'Trail'" \
	"the device reports the new values"
stop_sim band
start_sim band
run --json settings band
json_check "$work/out" "d['settings']['heart_rate_interval_s'] == '10'" "settings survive a restart of the device"

# ---- end of support (OTA 19): info warns when it is near or past
soon=$(date -u -d '+30 days' +%F)
start_sim soon --profile watch --support-end "$soon"
host h pair "sim:$work/soon.sock" --name soon --yes >/dev/null 2>&1 || bad "pair soon"
run info soon
expect_grep "Warning: .*support ends on $soon, in 3[01] days" "$work/out" "info warns that support ends in 30 days"
start_sim past --profile toy --support-end 2020-01-01
host h pair "sim:$work/past.sock" --name past --yes >/dev/null 2>&1 || bad "pair past"
run --json info past
json_check "$work/out" "'support ended on 2020-01-01' in d['support_warning']" "info --json says support ended"
run info band
if grep -q "Warning:" "$work/out"; then bad "a band supported until 2031 got a warning"; else ok "no warning years before the end"; fi

finish
