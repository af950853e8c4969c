#!/bin/sh
# Memcheck over the tools end to end: a simulated band (under valgrind) is
# paired, synced, exported under a grant, verified, set up, updated and
# factory wiped by
# amulet (each run under valgrind). Any memcheck error or definite leak
# fails the run. Run by scripts/check; not part of make check (it is slow).
set -u
work_prefix=amu-valgrind
. "${top_srcdir:-.}/tests/sim-helpers.sh"

vg="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --track-fds=no"
lt="${top_builddir:-.}/libtool --mode=execute"
vhost() { # vhost WHAT ARGS...: amulet under memcheck
	what=$1
	shift
	$lt $vg "$b/amulet" --data-dir "$work/host" "$@" >"$work/out" 2>"$work/err"
	rc=$?
	if [ "$rc" = 99 ] || grep -q "== .*ERROR SUMMARY: [1-9]\|definitely lost: [1-9]" "$work/err"; then
		bad "$what: memcheck reported errors"; sed 's/^/    /' "$work/err" | head -40
	elif [ "$rc" != 0 ]; then
		bad "$what: exit $rc"; sed 's/^/    /' "$work/err" | head -20
	else
		ok "$what: clean under memcheck"
	fi
}

rm -f "$work/band.sock"
$lt $vg --log-file="$work/sim.vg" "$b/amulet-sim" --listen "$work/band.sock" --state "$work/band.state" \
	--days 1 --seed 5 --start 2026-11-01 >"$work/band.log" 2>&1 &
sim=$!
pids="$pids $sim"
for _ in $(seq 300); do grep -q listening "$work/band.log" 2>/dev/null && break; sleep 0.1; done
vhost "pair" pair "sim:$work/band.sock" --name band --yes
vhost "sync" sync band
vhost "data summary" data band --summary --from 2026-11-01 --to 2026-11-02
vhost "consent grant" --json consent grant band --categories heart_rate,steps --purpose p --recipient-name r --granularity hour --yes
grant=$(sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' "$work/out")
vhost "export" export band --grant "$grant" --format fhir --out "$work/export"
vhost "export verify" export verify "$work/export"
vhost "consent log --verify" consent log --verify
"$b/amulet-sim" make-update --out "$work/up.amupkg" --version 1.1.0 --sequence 2 --size 200000 \
	--changed-setting heart_rate_interval_s >/dev/null || bad "make-update"
vhost "settings" settings band heart_rate_interval_s=5
vhost "update" update band "$work/up.amupkg" --yes
vhost "update --check" update --check band
vhost "factory wipe" wipe band --factory --yes
kill "$sim" 2>/dev/null
wait "$sim" 2>/dev/null
if grep -q "ERROR SUMMARY: [1-9]\|definitely lost: [1-9]" "$work/sim.vg"; then
	bad "amulet-sim: memcheck reported errors"; head -40 "$work/sim.vg"
else
	ok "amulet-sim: clean under memcheck through pairing, sync, a firmware update and a factory reset"
fi
finish
