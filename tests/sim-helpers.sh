# Shared by the end-to-end shell tests: start and stop simulators, run the
# host tool with its own data directory, and count passes and failures.
# Source it after setting $work_prefix; it creates $work and cleans it up.
b="${top_builddir:-.}/tools"
work=$(mktemp -d "/tmp/${work_prefix:-amu-test}.XXXXXX")
pids=""
failures=0
passes=0
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

ok() { passes=$((passes + 1)); echo "PASS: $*"; }
bad() { failures=$((failures + 1)); echo "FAIL: $*"; }

# start_sim NAME [OPTIONS...]: a simulator on $work/NAME.sock with state in $work/NAME.state
start_sim() {
	name=$1
	shift
	rm -f "$work/$name.sock"
	"$b/amulet-sim" --listen "$work/$name.sock" --state "$work/$name.state" "$@" >"$work/$name.log" 2>&1 &
	pid=$!
	pids="$pids $pid"
	eval "sim_$name=$pid"
	for _ in $(seq 100); do
		[ -S "$work/$name.sock" ] && grep -q listening "$work/$name.log" && return 0
		sleep 0.1
	done
	echo "simulator $name did not start:"; cat "$work/$name.log"; exit 1
}
stop_sim() {
	eval "pid=\$sim_$1"
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}
host() { # host DIR ARGS...: run amulet with a data dir, 60 s at most
	dir=$1
	shift
	timeout 60 "$b/amulet" --data-dir "$work/$dir" "$@"
}
expect_rc() { # expect_rc WANT GOT WHAT
	if [ "$2" = "$1" ]; then ok "$3 (exit $2)"; else bad "$3: exit $2, expected $1"; fi
}
expect_grep() { # expect_grep PATTERN FILE WHAT
	if grep -q -- "$1" "$2"; then ok "$3"; else bad "$3: '$1' not in $2:"; sed 's/^/    /' "$2"; fi
}
PY=/usr/bin/python3
# run_host DIR ARGS...: amulet on host dir DIR; sets rc, $work/out and $work/err
run_host() {
	dir=$1
	shift
	host "$dir" "$@" >"$work/out" 2>"$work/err"
	rc=$?
}
json_check() { # json_check FILE EXPR WHAT: a Python expression over d, the parsed file
	if "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); assert $2, d" "$1" 2>"$work/json.err"; then
		ok "$3"
	else
		bad "$3"; sed 's/^/    /' "$1" "$work/json.err"
	fi
}
finish() {
	echo "$passes passed, $failures failed"
	[ "$failures" = 0 ]
}
