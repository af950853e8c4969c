#!/bin/sh
# End-to-end consent and export through the real tools: amulet (host) with a
# watch and a toy from amulet-sim. Default deny, grants and their impact
# text, exports that hold exactly what the grant allows (checked against
# 'amulet data' with independent readers: Python's csv, json, jsonschema
# and ElementTree, and xmllint), signed manifests and what verify catches,
# revocation, expiry, the toy's guardian, sealed exports, and a consent
# ledger edited behind the tool's back with the sqlite3 CLI.
set -u
work_prefix=amu-consent
. "${top_srcdir:-.}/tests/sim-helpers.sh"

src=${top_srcdir:-.}
PY=/usr/bin/python3
export TZ=UTC
START=2026-11-01
FROM=2026-11-01T06:00:00Z
TO=2026-11-01T18:00:00Z

# An independent reader of the exports: Python's standard library only
# (and jsonschema), nothing shared with the C code.
cat >"$work/check.py" <<'PY'
import calendar, csv, json, os, sys, time
import xml.etree.ElementTree as ET
from decimal import Decimal
from fractions import Fraction

STAGES = ["awake", "light", "deep", "rem"]
KINDS = [None, "button", "voice_clip", "play_session", "story"]  # AmuToyEventKind starts at 1
# per category: (JSON name, CSV column, scale of the stored integer or the keyword list)
FIELDS = {
    "heart_rate": [("bpm", "bpm", 1)],
    "steps": [("steps", "steps", 1)],
    "spo2": [("spo2_percent", "spo2_percent", 10)],
    "sleep_stage": [("stage", "stage", STAGES)],
    "skin_temp": [("celsius", "skin_temp_celsius", 100)],
    "respiratory_rate": [("breaths_per_min", "breaths_per_min", 10)],
    "location": [("latitude", "latitude_deg", 10**7), ("longitude", "longitude_deg", 10**7),
                 ("elevation_m", "elevation_m", 100)],
    "battery": [("percent", "battery_percent", 1)],
    "toy_event": [("kind", "kind", KINDS), ("duration_ms", "duration_ms", 1), ("item", "item", 1)],
}
HOUR = 3600 * 1000


def fail(message):
    print(message)
    sys.exit(1)


def to_ms(text):
    if len(text) != 24 or text[-1] != "Z" or text[19] != ".":
        fail("not a UTC time with milliseconds: %r" % text)
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(text[20:23])


def to_int(value, scale):
    """an exported value as the stored integer; fails unless it converts exactly"""
    if isinstance(scale, list):
        return scale.index(value)
    exact = Decimal(str(value)) * scale
    if exact != exact.to_integral_value():
        fail("%r is not a whole multiple of 1/%d" % (value, scale))
    return int(exact)


def store(prefix, category):
    """what 'amulet data --csv' printed: [(timestamp_ms, [values])]"""
    rows = []
    with open("%s-%s.csv" % (prefix, category), newline="") as f:
        reader = csv.reader(f)
        if next(reader) != ["timestamp_ms", "category", "value1", "value2", "value3"]:
            fail("unexpected header from amulet data")
        for r in reader:
            if r[1] != category:
                fail("amulet data --category %s printed %s" % (category, r))
            rows.append((int(r[0]), [int(v) for v in r[2:2 + len(FIELDS[category])]]))
    return rows


def same(what, got, want):
    if len(got) != len(want):
        fail("%s: %d exported, %d stored" % (what, len(got), len(want)))
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            fail("%s: record %d is %s, stored %s" % (what, i, g, w))


def manifest(directory):
    with open(os.path.join(directory, "manifest.json")) as f:
        return json.load(f)


def check_manifest(directory, counts, files):
    m = manifest(directory)
    declared = m["export"]["samples"]
    want = {c: n for c, n in counts.items() if n > 0}
    if declared != want or m["export"]["total"] != sum(want.values()):
        fail("manifest declares %s (total %s), the files hold %s" % (declared, m["export"]["total"], want))
    present = set(os.listdir(directory))
    if present != set(files) | {"manifest.json", "manifest.sig"}:
        fail("export holds %s, expected %s" % (sorted(present), sorted(files)))
    listed = sorted(f["name"] for f in m["files"])
    if listed != sorted(files):
        fail("manifest lists %s" % listed)


def cmd_csv(directory, prefix, categories):
    counts, files = {}, []
    for c in categories.split(","):
        want = store(prefix, c)
        path = os.path.join(directory, c + ".csv")
        if not want:
            if os.path.exists(path):
                fail("%s exists with nothing stored" % path)
            counts[c] = 0
            continue
        with open(path, "rb") as f:
            raw = f.read()
        if raw.count(b"\n") != raw.count(b"\r\n"):
            fail("%s: lines do not end in CRLF (RFC 4180)" % path)
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        header = ["time_utc"] + [field[1] for field in FIELDS[c]]
        if rows[0] != header:
            fail("%s: header %s, expected %s" % (path, rows[0], header))
        got = [(to_ms(r[0]), [to_int(v, field[2]) for v, field in zip(r[1:], FIELDS[c])]) for r in rows[1:]]
        same(c, got, want)
        counts[c] = len(got)
        files.append(c + ".csv")
    check_manifest(directory, counts, files)
    print(", ".join("%s %d" % kv for kv in counts.items()))


def cmd_json(directory, prefix, categories, schema_path, grant_id):
    path = os.path.join(directory, "samples.json")
    with open(path) as f:
        doc = json.load(f, parse_float=Decimal)
    if doc["grant_id"] != grant_id or doc["granularity"] != "raw":
        fail("samples.json names grant %s at %s" % (doc["grant_id"], doc["granularity"]))
    by_category = {}
    for s in doc["samples"]:
        c = s["category"]
        by_category.setdefault(c, []).append((to_ms(s["time"]), [to_int(s[field[0]], field[2]) for field in FIELDS[c]]))
    wanted = categories.split(",")
    extra = set(by_category) - set(wanted)
    if extra:
        fail("samples.json holds categories not granted: %s" % sorted(extra))
    counts = {}
    for c in wanted:
        got = by_category.get(c, [])
        same(c, got, store(prefix, c))
        counts[c] = len(got)
    check_manifest(directory, counts, ["samples.json"])
    import jsonschema
    with open(schema_path) as f:
        schema = json.load(f)
    with open(path) as f:
        jsonschema.Draft7Validator(schema).validate(json.load(f))
    print(", ".join("%s %d" % kv for kv in counts.items()) + "; valid against the schema")


def cmd_hour(directory, prefix):
    """heart rate: the hour's mean; steps: the hour's sum; every time on the hour"""
    counts = {}
    for c, combine in (("heart_rate", "mean"), ("steps", "sum")):
        buckets = {}
        for t, values in store(prefix, c):
            buckets.setdefault(t - t % HOUR, []).append(values[0])
        with open(os.path.join(directory, c + ".csv"), newline="") as f:
            rows = list(csv.reader(f))
        if rows[0] != ["time_utc", "end_utc", FIELDS[c][0][1]]:
            fail("%s.csv: header %s" % (c, rows[0]))
        got = {}
        for r in rows[1:]:
            t, end = to_ms(r[0]), to_ms(r[1])
            if t % HOUR != 0 or end != t + HOUR:
                fail("%s.csv: %s to %s is not one whole hour" % (c, r[0], r[1]))
            got[t] = int(r[2])
        if sorted(got) != sorted(buckets):
            fail("%s: hours %s exported, %s stored" % (c, len(got), len(buckets)))
        for t, values in buckets.items():
            if combine == "sum":
                if got[t] != sum(values):
                    fail("steps at %d: %d, the hour's sum is %d" % (t, got[t], sum(values)))
            elif abs(got[t] - Fraction(sum(values), len(values))) > Fraction(1, 2):
                fail("heart rate at %d: %d, the hour's mean is %.3f" % (t, got[t], sum(values) / len(values)))
        counts[c] = len(got)
    check_manifest(directory, counts, ["heart_rate.csv", "steps.csv"])
    print("%d hours of heart rate, %d of steps" % (counts["heart_rate"], counts["steps"]))


def round_away(value, step):
    q = (abs(value) + step // 2) // step * step
    return q if value >= 0 else -q


def cmd_gpx(path, prefix, decimals):
    decimals = int(decimals)
    step = 10 ** (7 - decimals)
    ns = {"g": "http://www.topografix.com/GPX/1/1"}
    points = ET.parse(path).getroot().findall(".//g:trkpt", ns)
    got = []
    for p in points:
        for name in ("lat", "lon"):
            text = p.get(name)
            whole, _, fraction = text.partition(".")
            if fraction.rstrip("0")[decimals:] != "":
                fail("%s=%s has more than %d decimals" % (name, text, decimals))
        got.append((to_ms(p.find("g:time", ns).text),
                    [to_int(p.get("lat"), 10**7), to_int(p.get("lon"), 10**7), to_int(p.find("g:ele", ns).text, 100)]))
    want = [(t, [round_away(v[0], step), round_away(v[1], step), v[2]]) for t, v in store(prefix, "location")]
    same("location", got, want)
    check_manifest(os.path.dirname(path), {"location": len(got)}, ["track.gpx"])
    print("%d points, rounded to %d decimals" % (len(got), decimals))


def cmd_fhir(path, prefix):
    with open(path) as f:
        bundle = json.load(f, parse_float=Decimal)
    if bundle["resourceType"] != "Bundle" or bundle["type"] != "collection":
        fail("not a collection Bundle: %s %s" % (bundle["resourceType"], bundle.get("type")))
    heart, steps = [], []
    for entry in bundle["entry"]:
        r = entry["resource"]
        if r["resourceType"] != "Observation" or entry["fullUrl"] != "urn:uuid:" + r["id"]:
            fail("malformed entry %s" % entry["fullUrl"])
        loinc = [c["code"] for c in r["code"]["coding"] if c["system"] == "http://loinc.org"]
        q = r["valueQuantity"]
        if loinc == ["8867-4"]:
            if q["system"] != "http://unitsofmeasure.org" or q["code"] != "/min":
                fail("heart rate in %s %s" % (q["system"], q["code"]))
            heart.append((to_ms(r["effectiveDateTime"]), [int(q["value"])]))
        elif loinc == ["55423-8"]:
            steps.append((to_ms(r["effectivePeriod"]["start"]), [int(q["value"])]))
        else:
            fail("unexpected LOINC %s" % loinc)
    same("heart_rate", heart, store(prefix, "heart_rate"))
    same("steps", steps, store(prefix, "steps"))
    check_manifest(os.path.dirname(path), {"heart_rate": len(heart), "steps": len(steps)}, ["bundle.json"])
    print("%d heart rate (LOINC 8867-4, /min) and %d steps observations" % (len(heart), len(steps)))


def cmd_toy(path, prefix):
    with open(path) as f:
        doc = json.load(f)
    got = [(to_ms(s["time"]), [to_int(s[field[0]], field[2]) for field in FIELDS["toy_event"]]) for s in doc["samples"]]
    same("toy_event", got, store(prefix, "toy_event"))
    print("%d toy events" % len(got))


def cmd_flip_digit(path, line):
    """changes the last digit of line @line (1-based), keeping the file's size"""
    with open(path, "rb") as f:
        lines = f.read().split(b"\r\n")
    text = bytearray(lines[int(line) - 1])
    for i in range(len(text) - 1, -1, -1):
        if 48 <= text[i] <= 57:
            text[i] = 48 + (text[i] - 48 + 1) % 10
            break
    lines[int(line) - 1] = bytes(text)
    with open(path, "wb") as f:
        f.write(b"\r\n".join(lines))


def cmd_field(path, *keys):
    """prints a field of a JSON file (or of stdin, for '-')"""
    value = json.load(sys.stdin if path == "-" else open(path))
    for key in keys:
        value = value[key]
    print(value)


globals()["cmd_" + sys.argv[1].replace("-", "_")](*sys.argv[2:])
PY
check() { "$PY" "$work/check.py" "$@"; }

# run WHAT... : amulet on the host directory h; rc, $work/out, $work/err
run() {
	host h "$@" >"$work/out" 2>"$work/err"
	rc=$?
}
# grant DIR ARGS...: grant with --yes, the id in $gid
grant() {
	dir=$1
	shift
	gid=$(host "$dir" --json consent grant "$@" --yes 2>"$work/grant.err" | check field - id 2>/dev/null)
	if [ -z "$gid" ]; then bad "grant $*"; sed 's/^/    /' "$work/grant.err"; fi
}
# stored NAME CATEGORY [FROM TO]: what the store holds, as amulet data prints it
stored() {
	host h data "$1" --csv --from "${3:-$FROM}" --to "${4:-$TO}" --category "$2" >"$work/store-$2.csv"
}
# checked WHAT COMMAND...: a python check passes, its summary in the PASS line
checked() {
	what=$1
	shift
	if check "$@" >"$work/check.out" 2>&1; then ok "$what: $(tail -1 "$work/check.out")"; else bad "$what:"; sed 's/^/    /' "$work/check.out"; fi
}
no_path() { # no_path PATH WHAT
	if [ -e "$1" ]; then bad "$2: $1 exists"; ls -la "$1" | sed 's/^/    /'; else ok "$2"; fi
}
# flip_byte FILE OFFSET: changes one byte in place
flip_byte() {
	old=$(dd if="$1" bs=1 skip="$2" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
	printf "\\$(printf %03o $(((old + 1) % 256)))" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}
# flip_hex POS: stdin's hex string with its digit at POS (1-based) changed
flip_hex() {
	awk -v p="$1" '{ c = substr($0, p, 1); printf "%s%s%s", substr($0, 1, p - 1), (c == "0" ? "1" : "0"), substr($0, p + 1) }'
}

# ---- a watch (with location) with two days of data and a toy, on one host
start_sim watch --profile watch --days 2 --seed 5 --start $START
start_sim toy --profile toy --days 1 --seed 6 --start $START
for name in watch toy; do
	host h pair "sim:$work/$name.sock" --name $name --yes >"$work/pair.out" 2>&1 || { bad "pair the $name"; cat "$work/pair.out"; }
	host h sync $name >"$work/sync.out" 2>&1 || { bad "sync the $name"; cat "$work/sync.out"; }
	stop_sim $name
done
for c in heart_rate steps location; do stored watch $c; done
# heart rate and steps over the range, as the raw grant below will export them
n_raw=$(($(wc -l <"$work/store-heart_rate.csv") + $(wc -l <"$work/store-steps.csv") - 2))

# ---- default deny: no grant, no export, and the attempt is logged
run export watch --grant 0123456789abcdef --format csv --out "$work/e-none"
expect_rc 8 $rc "an export under a made-up grant is denied"
expect_grep "nothing leaves without a grant" "$work/err" "the refusal says nothing leaves without a grant"
no_path "$work/e-none" "a denied export writes nothing"
run consent access
expect_grep "refused *grant 0123456789abcdef: no grant with id" "$work/out" "consent access lists the refusal"

# ---- granting: the impact text, --json, and declining
host h --json consent grant watch --categories heart_rate,steps --purpose "cardiology review" \
	--recipient-name "Dr. Lee" --from $FROM --to $TO --granularity raw --yes >"$work/grant.json" 2>"$work/impact.txt"
expect_rc 0 $? "grant heart rate and steps over 06:00-18:00, raw"
g_raw=$(check field "$work/grant.json" id)
if [ -n "$g_raw" ]; then ok "grant --json names the grant's id ($g_raw)"; else bad "grant --json has no id"; cat "$work/grant.json"; fi
expect_grep 'let "Dr. Lee" receive data from your device "watch"' "$work/impact.txt" "the impact text names the recipient and device"
expect_grep "^  - heart_rate$" "$work/impact.txt" "the impact text lists heart_rate"
expect_grep "^  - steps$" "$work/impact.txt" "the impact text lists steps"
expect_grep "for this purpose: cardiology review" "$work/impact.txt" "the impact text names the purpose"
expect_grep "If you decline, Dr. Lee gets nothing from this device; syncing, your own data" "$work/impact.txt" "the impact text says what declining costs"
echo n | host h consent grant watch --categories location --purpose "ads" --recipient-name "Declined Co" >"$work/out" 2>"$work/err"
expect_rc 3 $? "declining at the prompt"
expect_grep "Grant this? \[y/N\]" "$work/err" "without --yes the owner is asked"
expect_grep "Not granted: nothing will leave this host for Declined Co" "$work/err" "declining says nothing will leave"
run consent list
if grep -q "Declined Co" "$work/out"; then bad "a declined grant was recorded"; cat "$work/out"; else ok "a declined grant is not recorded"; fi

# ---- a raw CSV export holds exactly the granted samples
run export watch --grant "$g_raw" --format csv --out "$work/e-csv"
expect_rc 0 $rc "export csv under the grant"
checked "CSV rows equal the store's, per category, and the manifest's counts" csv "$work/e-csv" "$work/store" heart_rate,steps
run export verify "$work/e-csv"
expect_rc 0 $rc "export verify passes on the CSV export"
expect_grep "^verified: .* match grant $g_raw" "$work/out" "verify says what it checked"

# ---- JSON: every watch category, values converted back, and the schema
grant h watch --categories heart_rate,steps,spo2,skin_temp,respiratory_rate,sleep_stage,location,battery \
	--purpose "research" --recipient-name "Sleep Lab" --from $FROM --to $TO
g_json=$gid
for c in spo2 skin_temp respiratory_rate sleep_stage battery; do stored watch $c; done
run export watch --grant "$g_json" --format json --out "$work/e-json"
expect_rc 0 $rc "export json under the grant"
checked "samples.json equals the store per category and validates against docs/export-schema.json" \
	json "$work/e-json" "$work/store" heart_rate,steps,spo2,skin_temp,respiratory_rate,sleep_stage,location,battery \
	"$src/docs/export-schema.json" "$g_json"
run export verify "$work/e-json"
expect_rc 0 $rc "export verify passes on the JSON export"

# ---- hour granularity: means for heart rate, sums for steps
grant h watch --categories heart_rate,steps --purpose "weekly summary" --recipient-name "Coach" \
	--from $FROM --to $TO --granularity hour
run export watch --grant "$gid" --format csv --out "$work/e-hour"
expect_rc 0 $rc "export csv at hour granularity"
checked "hourly: on the hour, heart rate the hour's mean, steps its sum" hour "$work/e-hour" "$work/store"
run export verify "$work/e-hour"
expect_rc 0 $rc "export verify passes on the hourly export"

# A range that does not start on the hour: the export may not label data
# before the range it was granted for, and must verify.
grant h watch --categories heart_rate --purpose "afternoon" --recipient-name "Coach" \
	--from 2026-11-01T06:30:00Z --to $TO --granularity hour
run export watch --grant "$gid" --format csv --out "$work/e-hour-unaligned"
expect_rc 0 $rc "export at hour granularity of a range starting 06:30"
first=$(sed -n 2p "$work/e-hour-unaligned/heart_rate.csv" | cut -d, -f1)
if expr "$first" \< 2026-11-01T06:30:00.000Z >/dev/null; then
	bad "the first hourly record is labelled $first, before the granted range (06:30)"
else
	ok "no hourly record is labelled before the granted range"
fi
run export verify "$work/e-hour-unaligned"
expect_rc 0 $rc "export verify passes on an hourly export of a range starting 06:30"

# ---- GPX: location only, rounded as granted, valid GPX 1.1
grant h watch --categories location --purpose "route" --recipient-name "Club" --from $FROM --to $TO --location-decimals 3
run export watch --grant "$gid" --format gpx --out "$work/e-gpx"
expect_rc 0 $rc "export gpx under a grant with location"
if xmllint --noout --schema "$src/tests/gpx-1.1.xsd" "$work/e-gpx/track.gpx" >"$work/xmllint.out" 2>&1; then
	ok "track.gpx validates against the GPX 1.1 schema"
else
	bad "track.gpx is not valid GPX 1.1:"; head -5 "$work/xmllint.out"
fi
checked "GPX points are the store's fixes rounded to 3 decimals" gpx "$work/e-gpx/track.gpx" "$work/store" 3
run export verify "$work/e-gpx"
expect_rc 0 $rc "export verify passes on the GPX export"
run export watch --grant "$g_raw" --format gpx --out "$work/e-gpx-denied"
expect_rc 8 $rc "GPX under a grant without location is denied"
expect_grep "does not include location" "$work/err" "the refusal says the grant has no location"
no_path "$work/e-gpx-denied" "the denied GPX export writes nothing"

# ---- FHIR
run export watch --grant "$g_raw" --format fhir --out "$work/e-fhir"
expect_rc 0 $rc "export fhir under the grant"
checked "bundle.json: a Bundle of the store's heart rate and steps" fhir "$work/e-fhir/bundle.json" "$work/store"
run export verify "$work/e-fhir"
expect_rc 0 $rc "export verify passes on the FHIR export"

# ---- an export killed part way (SIGKILL once bundle.json passes 4 MiB, so
# its writing thread is running) leaves nothing verify accepts, no access
# entry, and a ledger that still verifies
entries_before=$(sqlite3 "$work/h/amulet.db" "SELECT count(*) FROM consent_ledger")
"$PY" - "$b/amulet" "$work/h" "$g_raw" "$work/e-killed" >"$work/kill.out" 2>&1 <<'KILL'
import os, signal, subprocess, sys, time
amulet, data_dir, grant, out = sys.argv[1:5]
p = subprocess.Popen([amulet, "--data-dir", data_dir, "export", "watch", "--grant", grant,
                      "--format", "fhir", "--out", out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
path = os.path.join(out, "bundle.json")
deadline = time.monotonic() + 30
size = 0
while time.monotonic() < deadline and p.poll() is None:
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        size = 0
    if size >= 4 << 20:
        os.kill(p.pid, signal.SIGKILL)
        break
p.wait()
print("killed at %d bytes" % size if p.returncode == -signal.SIGKILL else "exited %d first" % p.returncode)
KILL
if grep -q "^killed at" "$work/kill.out"; then ok "export killed part way: $(cat "$work/kill.out")"; else bad "the export was not killed part way: $(cat "$work/kill.out")"; fi
run export verify "$work/e-killed"
if [ "$rc" != 0 ]; then ok "verify refuses the killed export (exit $rc): $(head -1 "$work/err")"; else bad "verify accepted a killed export"; fi
entries_after=$(sqlite3 "$work/h/amulet.db" "SELECT count(*) FROM consent_ledger")
[ "$entries_after" = "$entries_before" ] && ok "the killed export left no access entry ($entries_after entries)" || bad "ledger went from $entries_before to $entries_after entries"
run consent log --verify
expect_rc 0 $rc "consent log --verify after the killed export"
run export watch --grant "$g_raw" --format fhir --out "$work/e-killed"
expect_rc 1 $rc "export into the killed export's directory is refused"
expect_grep "not empty" "$work/err" "the refusal says the directory is not empty"
run export watch --grant "$g_raw" --format fhir --out "$work/e-after-kill"
expect_rc 0 $rc "the same export into a new directory"
run export verify "$work/e-after-kill"
expect_rc 0 $rc "verify passes on it"
if "$PY" -c "import json,sys; a,b=(json.load(open(f))['entry'] for f in sys.argv[1:]); assert a == b and a" "$work/e-fhir/bundle.json" "$work/e-after-kill/bundle.json"; then ok "its entries are those of the export made before the kill"; else bad "its entries differ from the export made before the kill"; fi

# ---- Ctrl-C during an export (SIGINT past 4 MiB): exit 130, the directory
# removed, no access entry, the message says so
entries_before=$(sqlite3 "$work/h/amulet.db" "SELECT count(*) FROM consent_ledger")
"$PY" - "$b/amulet" "$work/h" "$g_raw" "$work/e-interrupted" >"$work/int.out" 2>&1 <<'INT'
import os, signal, subprocess, sys, time
amulet, data_dir, grant, out = sys.argv[1:5]
p = subprocess.Popen([amulet, "--data-dir", data_dir, "export", "watch", "--grant", grant,
                      "--format", "fhir", "--out", out], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
path = os.path.join(out, "bundle.json")
deadline = time.monotonic() + 30
sent = False
while time.monotonic() < deadline and p.poll() is None:
    try:
        if os.stat(path).st_size >= 4 << 20:
            os.kill(p.pid, signal.SIGINT)
            sent = True
            break
    except FileNotFoundError:
        pass
err = p.communicate()[1].decode()
print("exit %d%s: %s" % (p.returncode, "" if sent else " (no SIGINT sent)", err.strip()))
INT
expect_grep "^exit 130: " "$work/int.out" "Ctrl-C during an export exits 130"
expect_grep "interrupted: nothing was exported" "$work/int.out" "the message says nothing was exported"
no_path "$work/e-interrupted" "what the interrupted export wrote is removed"
entries_after=$(sqlite3 "$work/h/amulet.db" "SELECT count(*) FROM consent_ledger")
[ "$entries_after" = "$entries_before" ] && ok "the interrupted export left no access entry" || bad "ledger went from $entries_before to $entries_after entries"

# ---- verify catches edits, additions and another owner's signature
cp -a "$work/e-csv" "$work/t-digit"
check flip-digit "$work/t-digit/heart_rate.csv" 100
run export verify "$work/t-digit"
expect_rc 4 $rc "verify: one digit changed in a CSV row"
expect_grep "heart_rate.csv was altered" "$work/err" "verify names the altered file"
cp -a "$work/e-csv" "$work/t-manifest"
sed -i 's/\("heart_rate" : \)\([0-9]\)/\11\2/' "$work/t-manifest/manifest.json"
if cmp -s "$work/e-csv/manifest.json" "$work/t-manifest/manifest.json"; then bad "the manifest edit did not apply"; fi
run export verify "$work/t-manifest"
expect_rc 4 $rc "verify: a count edited in manifest.json"
expect_grep "signature does not verify" "$work/err" "verify says the manifest's signature fails"
cp -a "$work/e-csv" "$work/t-extra"
echo "2026-11-01T07:00:00.000Z,61" >"$work/t-extra/extra.csv"
run export verify "$work/t-extra"
expect_rc 4 $rc "verify: a file added to the export"
expect_grep "extra.csv is not listed" "$work/err" "verify names the added file"
check field "$work/e-csv/manifest.json" owner_public_key >"$work/owner.pub"
run export verify "$work/e-csv" --owner-key "$work/owner.pub"
expect_rc 0 $rc "verify --owner-key with the owner's key"
# another owner: a second host with its own device and grant
start_sim band --profile band --days 1 --seed 9 --start $START
host h2 pair "sim:$work/band.sock" --name band --yes >/dev/null 2>&1 || bad "pair a band with a second host"
host h2 sync band >/dev/null 2>&1 || bad "sync the band"
stop_sim band
grant h2 band --categories steps --purpose "step contest" --recipient-name "Club" --from $FROM --to $TO
host h2 export band --grant "$gid" --format csv --out "$work/e-other" >/dev/null 2>&1 || bad "export on the second host"
host h2 export verify "$work/e-other" >/dev/null 2>&1 || bad "the second owner's export verifies on its own"
run export verify "$work/e-other" --owner-key "$work/owner.pub"
expect_rc 4 $rc "verify --owner-key: an export signed by another owner"
expect_grep "another owner key" "$work/err" "verify says another owner signed it"

# ---- revocation
run consent revoke "$g_raw"
expect_rc 0 $rc "revoke the grant"
expect_grep "cannot be recalled" "$work/out" "revoking says copies already sent cannot be recalled"
run export watch --grant "$g_raw" --format csv --out "$work/e-revoked"
expect_rc 8 $rc "export under a revoked grant is denied"
expect_grep "grant $g_raw was revoked" "$work/err" "the refusal says the grant was revoked"
no_path "$work/e-revoked" "the refused export writes nothing"
run consent access
expect_grep "revoke *grant $g_raw" "$work/out" "the access log shows the revocation"
expect_grep "refused *grant $g_raw: grant $g_raw was revoked" "$work/out" "the access log shows the refusal after it"
expect_grep "export *grant $g_raw: $n_raw samples as csv" "$work/out" "the access log shows the earlier export"
run consent list
expect_grep "^$g_raw  revoked" "$work/out" "consent list shows the grant as revoked"
run consent revoke "$g_raw"
if [ "$rc" != 0 ]; then ok "revoking twice fails (exit $rc)"; else bad "revoking twice succeeded"; fi
expect_grep "already revoked" "$work/err" "the second revocation says it is already revoked"

# ---- expiry
expires=$(date -u -d '+3 seconds' +%Y-%m-%dT%H:%M:%SZ)
grant h watch --categories steps --purpose "one-off" --recipient-name "Coach" --from $FROM --to $TO --expires "$expires"
g_exp=$gid
run export watch --grant "$g_exp" --format csv --out "$work/e-before"
expect_rc 0 $rc "export before the grant expires"
until_s=$(date -u -d "$expires" +%s)
while [ "$(date -u +%s)" -le "$until_s" ]; do sleep 0.2; done
run export watch --grant "$g_exp" --format csv --out "$work/e-after"
expect_rc 8 $rc "export after the grant expired is denied"
expect_grep "grant $g_exp expired" "$work/err" "the refusal says the grant expired"
no_path "$work/e-after" "the expired grant's export writes nothing"

# ---- the toy: a guardian must approve
host h --json consent grant toy --categories toy_event --purpose "play report" --recipient-name "Toy Maker" --yes >"$work/out" 2>"$work/err"
expect_rc 8 $? "a grant for the toy without a guardian is denied"
expect_grep "a parent or guardian must approve" "$work/err" "the refusal names the guardian requirement"
run consent list
if grep -q "Toy Maker" "$work/out"; then bad "the toy grant without a guardian was recorded"; else ok "no grant is recorded without the guardian"; fi
grant h toy --categories toy_event --purpose "play report" --recipient-name "Toy Maker" --guardian "Sam (parent)"
stored toy toy_event 2026-11-01T00:00:00Z 2026-11-02T00:00:00Z
run export toy --grant "$gid" --format json --out "$work/e-toy"
expect_rc 0 $rc "the toy's export with the guardian's approval"
expect_grep '"guardian" : "Sam (parent)"' "$work/e-toy/manifest.json" "the manifest records the guardian"
checked "the toy's export holds its events" toy "$work/e-toy/samples.json" "$work/store"
run export watch --grant "$gid" --format json --out "$work/e-toy-watch"
expect_rc 8 $rc "the toy's grant does not export the watch"
expect_grep "is for another device" "$work/err" "the refusal says the grant is for another device"

# ---- sealed exports
run export keygen --out "$work/recipient"
expect_rc 0 $rc "export keygen for the recipient"
run export keygen --out "$work/stranger"
expect_rc 0 $rc "export keygen for a stranger"
if [ -s "$work/recipient.pub" ] && [ -s "$work/stranger" ] && ls -l "$work/recipient" | grep -q '^-rw-------'; then
	ok "export keygen writes a 0600 secret key and a public key"
else
	bad "export keygen files"; ls -l "$work"/recipient* "$work"/stranger*
fi
grant h watch --categories heart_rate,steps --purpose "second opinion" --recipient-name "Dr. Roe" \
	--recipient-key "$work/recipient.pub" --from $FROM --to $TO
g_key=$gid
run export watch --grant "$g_key" --format csv --out "$work/sealed" --seal-to "$work/recipient.pub"
expect_rc 0 $rc "export sealed to the recipient"
if grep -q "2026-11-01T06:00:01.000Z" "$work/sealed"; then bad "the sealed file holds a sample time in the clear"; else ok "the sealed file holds no sample in the clear"; fi
run export watch --grant "$g_key" --format csv --out "$work/sealed-stranger" --seal-to "$work/stranger.pub"
expect_rc 8 $rc "sealing to another key than the grant names is denied"
expect_grep "names another recipient key" "$work/err" "the refusal says the grant names another key"
no_path "$work/sealed-stranger" "nothing is sealed to the other key"
run export open "$work/sealed" --key "$work/stranger" --out "$work/open-stranger"
expect_rc 4 $rc "the stranger's key does not open it"
expect_grep "not sealed to this key" "$work/err" "the failure says it was sealed to someone else"
if [ -n "$(ls -A "$work/open-stranger" 2>/dev/null)" ]; then bad "the stranger got files"; else ok "the stranger gets no files"; fi
run export open "$work/sealed" --key "$work/recipient" --out "$work/opened"
expect_rc 0 $rc "the recipient opens it"
if [ "$(ls "$work/opened" | tr '\n' ' ')" = "heart_rate.csv manifest.json manifest.sig steps.csv " ]; then ok "the opened export holds the data files and the signed manifest"; else bad "opened: $(ls "$work/opened")"; fi
expect_grep "^2026-11-01T06:00:01.000Z," "$work/opened/heart_rate.csv" "the opened data holds the sample kept out of the sealed file"
checked "the opened export equals the store" csv "$work/opened" "$work/store" heart_rate,steps
run export verify "$work/opened"
expect_rc 0 $rc "export verify passes on the opened export"
run export verify "$work/sealed" --key "$work/recipient"
expect_rc 0 $rc "export verify FILE --key checks the sealed file directly"
expect_grep "^verified: $n_raw records" "$work/out" "verify of the sealed file counts its records"
sealed_size=$(stat -c %s "$work/sealed" 2>/dev/null || echo 2000)
cp "$work/sealed" "$work/sealed-flipped"
flip_byte "$work/sealed-flipped" $((sealed_size / 2))
run export open "$work/sealed-flipped" --key "$work/recipient" --out "$work/open-flipped"
expect_rc 4 $rc "a byte flipped in the sealed file: open fails"
expect_grep "fails to authenticate: it was altered" "$work/err" "open says the file was altered"
if [ -e "$work/open-flipped/manifest.json" ]; then bad "a failed open left a manifest"; else ok "a failed open leaves no manifest to verify"; fi
head -c $((sealed_size - 1000)) "$work/sealed" >"$work/sealed-cut"
run export open "$work/sealed-cut" --key "$work/recipient" --out "$work/open-cut"
expect_rc 4 $rc "a truncated sealed file: open fails"
expect_grep "cut off" "$work/err" "open says the file was cut off"
mkdir "$work/tmp"
TMPDIR="$work/tmp" host h export verify "$work/sealed-flipped" --key "$work/recipient" >"$work/out" 2>"$work/err"
expect_rc 4 $? "export verify FILE --key on the altered sealed file fails"
left=$(find "$work/tmp" -type f | head -3)
if [ -z "$left" ]; then ok "verify of an altered sealed file leaves no decrypted data behind"; else bad "verify of an altered sealed file left decrypted data in \$TMPDIR: $(echo $left)"; fi

# ---- the consent ledger edited with the sqlite3 CLI, one copy per case
db=amulet.db
ledger_case() { # ledger_case NAME SQL: a copy of the host dir with SQL applied to its database
	rm -rf "$work/$1"
	cp -a "$work/h" "$work/$1"
	sqlite3 "$work/$1/$db" "$2" || bad "$1: sqlite3 failed"
}
ledger_broken() { # ledger_broken NAME WHAT PATTERN
	host "$1" consent log --verify >"$work/out" 2>"$work/err"
	expect_rc 4 $? "$2: consent log --verify"
	expect_grep "$3" "$work/err" "$2: the failure names the entry"
	host "$1" export watch --grant "$g_json" --format csv --out "$work/$1-export" >/dev/null 2>"$work/err"
	expect_rc 4 $? "$2: exports are refused"
	no_path "$work/$1-export" "$2: nothing is exported"
}
run consent log --verify
expect_rc 0 $rc "consent log --verify on the untouched ledger"
n=$(sqlite3 "$work/h/$db" "SELECT count(*) FROM consent_ledger")
expect_grep "^Consent ledger: $n entries, hash chain and owner signatures verified." "$work/out" "the log says how many entries it verified"
last=$((n - 1))
sealed1=$(sqlite3 "$work/h/$db" "SELECT hex(sealed) FROM consent_ledger WHERE seq = 1" | flip_hex 81)
ledger_case l-sealed "UPDATE consent_ledger SET sealed = X'$sealed1' WHERE seq = 1"
ledger_broken l-sealed "a byte of entry 1's seal flipped" "altered at entry 1: its sealed content was edited"
ledger_case l-last "DELETE FROM consent_ledger WHERE seq = $last"
ledger_broken l-last "the last entry deleted" "altered at entry $last: entries at its end were deleted"
ledger_case l-swap "UPDATE consent_ledger SET seq = -1 WHERE seq = 2; UPDATE consent_ledger SET seq = 2 WHERE seq = 3; UPDATE consent_ledger SET seq = 3 WHERE seq = -1"
ledger_broken l-swap "entries 2 and 3 swapped" "altered at entry 2"
ledger_case l-signature "UPDATE consent_ledger SET signature = (SELECT signature FROM consent_ledger WHERE seq = 1) WHERE seq = 4"
ledger_broken l-signature "entry 4's signature replaced by entry 1's" "entry 4 is not signed by this host's owner key"
ledger_case l-random-signature "UPDATE consent_ledger SET signature = randomblob(64) WHERE seq = 5"
ledger_broken l-random-signature "entry 5's signature replaced by random bytes" "entry 5 is not signed"
# Dropping a revocation: keep the sealed head record from before it, revoke,
# then put the old head back and delete the entries after it.
rm -rf "$work/l-rollback"
cp -a "$work/h" "$work/l-rollback"
old_head=$(sqlite3 "$work/l-rollback/$db" "SELECT hex(sealed) FROM records WHERE kind = 'ledger-head'")
host l-rollback consent revoke "$g_json" >/dev/null 2>&1 || bad "revoke in the rollback copy"
sqlite3 "$work/l-rollback/$db" "DELETE FROM consent_ledger WHERE seq > $last; UPDATE records SET sealed = X'$old_head' WHERE kind = 'ledger-head'"
host l-rollback consent log --verify >"$work/out" 2>"$work/err"
expect_rc 4 $? "a revocation dropped by restoring the older head record: consent log --verify"
host l-rollback export watch --grant "$g_json" --format csv --out "$work/l-rollback-export" >/dev/null 2>&1
rc=$?
if [ "$rc" != 0 ]; then ok "the grant revoked before the rollback stays unusable (exit $rc)"; else bad "after dropping its revocation, the revoked grant $g_json exported again"; fi

finish
