#!/bin/sh
# End-to-end telemetry sync through the real tools: amulet (host) against
# amulet-sim (device) with generated data. Exactly once under faults: the
# link dropped after N datagrams for many N, the link dropped when an ack
# arrives (the host stored, the device never heard), and amulet itself
# killed mid-sync; after resuming, the host holds exactly the device's
# samples (count and SHA-256 of the sorted CSV).
set -u
work_prefix=amu-sync
. "${top_srcdir:-.}/tests/sim-helpers.sh"

START=2026-11-01
# the device's samples, as 'amulet data --csv' prints them, sorted
expected() { # expected PROFILE DAYS SEED
	"$b/amulet-sim" --profile "$1" --days "$2" --seed "$3" --start $START --dump-csv | sort >"$work/expected.csv"
}
stored() { # stored HOSTDIR NAME
	host "$1" data "$2" --csv --from 2026-10-01 --to 2027-01-01 | tail -n +2 | sort >"$work/stored.csv"
}
same_samples() { # same_samples WHAT: compares $work/expected.csv and $work/stored.csv
	want=$(wc -l <"$work/expected.csv")
	got=$(wc -l <"$work/stored.csv")
	if [ "$want" -gt 0 ] && cmp -s "$work/expected.csv" "$work/stored.csv"; then
		ok "$1: $got samples, sha256 $(sha256sum <"$work/stored.csv" | cut -c1-16) on both sides"
	else
		bad "$1: host has $got samples, device had $want ($(sha256sum <"$work/stored.csv" | cut -c1-16) vs $(sha256sum <"$work/expected.csv" | cut -c1-16))"
		diff "$work/expected.csv" "$work/stored.csv" | head -5
	fi
}
# pair_fresh NAME PROFILE SEED [SIM OPTIONS]: a fresh device with a day of data, paired to host dir h-NAME
pair_fresh() {
	name=$1 profile=$2 seed=$3
	shift 3
	rm -rf "$work/$name.state" "$work/h-$name"
	start_sim "$name" --profile "$profile" --days 1 --seed "$seed" --start $START "$@"
	host "h-$name" pair "sim:$work/$name.sock" --name "$name" --yes >/dev/null 2>&1 || bad "pair $name"
}
# sync_until_done HOSTDIR NAME: retries until a sync succeeds, echoes the number of attempts
sync_until_done() {
	for attempt in $(seq 80); do
		if host "$1" sync "$2" >>"$work/sync-attempts.out" 2>&1; then
			echo "$attempt"
			return 0
		fi
	done
	echo "never"
}

# ---- a plain sync: every sample once, then the device's log is empty
pair_fresh band band 7
expected band 1 7
host h-band sync band >"$work/sync1.out" 2>"$work/sync1.err"
expect_rc 0 $? "sync a day from a band"
expect_grep "^band: $(wc -l <"$work/expected.csv") samples" "$work/sync1.out" "the summary line counts every sample"
stored h-band band
same_samples "a plain sync"
# the device logs it when the last ack arrives, which may be just after amulet exits
for _ in $(seq 30); do grep -q "sync done" "$work/band.log" && break; sleep 0.1; done
expect_grep "sync done: every sample acked, log empty" "$work/band.log" "the device emptied its log once every batch was acked"
host h-band --json sync band >"$work/sync2.json"
if /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['ok'] and d['samples']==0, d" "$work/sync2.json"; then ok "a second sync finds nothing new"; else bad "second sync"; cat "$work/sync2.json"; fi
host h-band --json info band >"$work/info.json"
if /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); s=d['stored']; assert s['samples']['heart_rate']==86400 and s['next_seq']==$(wc -l <"$work/expected.csv") and d['disclosure']['retention'], d" "$work/info.json"; then ok "info --json: stored samples per category, the cursor and the device's retention"; else bad "info --json stored"; cat "$work/info.json"; fi
host h-band info band >"$work/info.out"
expect_grep "heart_rate  *86400 samples, kept 365 days" "$work/info.out" "info shows what is kept here and for how long"
host h-band --json data band --summary --from $START --to 2026-11-02 >"$work/summary.json"
if /usr/bin/python3 - "$work/summary.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d) == 1 and d[0]["date"] == "2026-11-01", d
day = d[0]
assert 40 <= day["resting_heart_rate"] <= 75, day
assert 1000 <= day["steps"] <= 40000, day
assert day["samples"] > 90000, day
PY
then ok "day summary: resting HR, steps and sample count are plausible"; else bad "day summary"; cat "$work/summary.json"; fi

# ---- a second host of the owner: what the first took is skipped, not asked for again
stop_sim band
start_sim band --pairing-mode
host h-band2 pair "sim:$work/band.sock" --name band --yes >/dev/null 2>&1 || bad "pair a second host"
host h-band2 --json sync band >"$work/second.json"
expect_rc 0 $? "a second host syncs a device the first one emptied"
if /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['ok'] and d['samples']==0 and d['skipped']==$(wc -l <"$work/expected.csv"), d" "$work/second.json"; then ok "the samples the first host took are reported as skipped"; else bad "second host skipped"; cat "$work/second.json"; fi
host h-band2 --json sync band >"$work/second2.json"
expect_rc 0 $? "the second host's next sync starts past them"
stop_sim band

# ---- the link dropped after N datagrams, for many N: resume, nothing lost or doubled
for n in 24 37 58 91 130 160; do
	pair_fresh "d$n" band 11
	stop_sim "d$n"
	start_sim "d$n" --drop-after "$n"
	attempts=$(sync_until_done "h-d$n" "d$n")
	expected band 1 11
	stored "h-d$n" "d$n"
	if [ "$attempts" = never ]; then bad "drop after $n datagrams: never finished"; continue; fi
	if [ "$attempts" -gt 1 ]; then ok "drop after $n datagrams: finished after $attempts syncs"; else bad "drop after $n: the link never dropped"; fi
	same_samples "drop after $n datagrams"
	stop_sim "d$n"
done

# ---- the link dropped just as the host's ack arrives: stored here, unacked there
for k in 1 4 9; do
	pair_fresh "a$k" watch 5
	stop_sim "a$k"
	start_sim "a$k" --drop-at-ack "$k"
	host "h-a$k" sync "a$k" >"$work/ack.out" 2>&1
	expect_rc 7 $? "ack $k lost: the sync reports the dropped link"
	host "h-a$k" sync "a$k" >"$work/ack2.out" 2>&1
	expect_rc 0 $? "ack $k lost: the next sync resumes"
	expected watch 1 5
	stored "h-a$k" "a$k"
	same_samples "ack $k lost"
	stop_sim "a$k"
done

# ---- amulet killed mid-sync (SIGKILL), on a slow link, at two moments
for delay in 0.4 1.1; do
	name="k${delay#0.}"
	name=$(echo "$name" | tr -d .)
	pair_fresh "$name" band 13
	stop_sim "$name"
	start_sim "$name" --link-rate 300000
	"$b/amulet" --data-dir "$work/h-$name" sync "$name" >/dev/null 2>&1 &
	victim=$!
	sleep "$delay"
	kill -9 "$victim" 2>/dev/null
	wait "$victim" 2>/dev/null
	host "h-$name" --json sync "$name" >"$work/kill.json" 2>&1
	expect_rc 0 $? "killed after ${delay}s: the next sync succeeds"
	if /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert 0 < d['samples'] < 91000, d" "$work/kill.json"; then ok "killed after ${delay}s: the killed sync had stored part of the data"; else bad "killed after ${delay}s: nothing was stored before the kill, or all of it"; cat "$work/kill.json"; fi
	expected band 1 13
	stored "h-$name" "$name"
	same_samples "killed after ${delay}s"
	stop_sim "$name"
done

# ---- three devices at once in one process
rm -rf "$work/multi"
for d in "mband band 21" "mwatch watch 22" "mtoy toy 23"; do
	set -- $d
	start_sim "$1" --profile "$2" --days 1 --seed "$3" --start $START
	host multi pair "sim:$work/$1.sock" --name "$1" --yes >/dev/null 2>&1 || bad "pair $1"
done
host multi --json sync --all >"$work/all.json"
expect_rc 0 $? "sync --all"
if /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d)==3 and all(x['ok'] and x['samples']>0 for x in d), d" "$work/all.json"; then ok "sync --all synced three devices"; else bad "sync --all"; cat "$work/all.json"; fi
for d in "mband band 21" "mwatch watch 22" "mtoy toy 23"; do
	set -- $d
	expected "$2" 1 "$3"
	stored multi "$1"
	same_samples "sync --all: $1 ($2)"
	stop_sim "$1"
done
if grep -q ',location,' "$work/stored.csv"; then bad "the toy has no location"; fi

# ---- a device clock two hours fast is measured and corrected
pair_fresh clock band 31 --clock-offset 7200000
host h-clock --json sync clock >"$work/clock.json"
if /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert abs(d['clock_offset_ms']-7200000) < 500, d" "$work/clock.json"; then ok "the clock offset is measured"; else bad "clock offset"; cat "$work/clock.json"; fi
expected band 1 31
stored h-clock clock
device_first=$(grep ',heart_rate,' "$work/expected.csv" | sort -n | head -1 | cut -d, -f1)
host_first=$(grep ',heart_rate,' "$work/stored.csv" | sort -n | head -1 | cut -d, -f1)
shift_ms=$((device_first - host_first))
if [ "$shift_ms" -gt 7199500 ] && [ "$shift_ms" -lt 7200500 ]; then ok "timestamps are corrected by the offset ($shift_ms ms)"; else bad "timestamps shifted by $shift_ms ms"; fi
stop_sim clock

# ---- retention: prune removes what is past its period, keeps the rest
rm -rf "$work/old.state" "$work/h-old"
start_sim old --days 1 --seed 3 --start 2025-06-01
host h-old pair "sim:$work/old.sock" --name old --yes >/dev/null 2>&1
host h-old sync old >/dev/null 2>&1 || bad "sync old data"
"$b/amulet-sim" --days 1 --seed 3 --start 2025-06-01 --dump-csv >"$work/old.csv"
steps=$(grep -c ',steps,' "$work/old.csv")
total=$(wc -l <"$work/old.csv")
host h-old --json data prune --dry-run >"$work/prune.json"
if /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['removed']==$total-$steps and d['dry_run'], d" "$work/prune.json"; then ok "prune --dry-run counts every sample but steps (kept 730 days)"; else bad "prune --dry-run"; cat "$work/prune.json"; fi
host h-old data prune >/dev/null
left=$(host h-old data old --csv --from 2025-01-01 --to 2026-12-31 | tail -n +2 | wc -l)
if [ "$left" = "$steps" ]; then ok "prune kept only the $steps step samples"; else bad "after prune $left samples remain, expected $steps"; fi
stop_sim old

# ---- usage errors say what is wrong
host h-band data band --category pulse >/dev/null 2>"$work/err1"
expect_rc 2 $? "an unknown category is a usage error"
expect_grep "heart_rate" "$work/err1" "the error lists the known categories"
host h-band data nosuch >/dev/null 2>&1
expect_rc 6 $? "an unknown device is not found"
host h-band data band --from yesterday >/dev/null 2>"$work/err2"
expect_rc 2 $? "a bad date is a usage error"
expect_grep "2026-11-27" "$work/err2" "the error shows a date that works"
host h-band sync >/dev/null 2>&1
expect_rc 2 $? "sync without a name is a usage error"

finish
