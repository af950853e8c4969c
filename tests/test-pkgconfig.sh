#!/bin/sh
# Installs into a scratch root and builds examples/ against the installed
# amulet-1.pc with nothing but pkg-config's answers, then runs the program.
set -eu
top_builddir=${top_builddir:-$(pwd)}
top_srcdir=${top_srcdir:-$(pwd)}
root="$top_builddir/tests/pkgconfig-root"
rm -rf "$root"
${MAKE:-make} -s -C "$top_builddir" install DESTDIR="$root" >/dev/null
libdir=$(sed -n 's/^libdir=//p' "$top_builddir/lib/amulet-1.pc")
prefix=$(sed -n 's/^prefix=//p' "$top_builddir/lib/amulet-1.pc")
libdir=$(echo "$libdir" | sed "s|\${exec_prefix}|$prefix|; s|\${prefix}|$prefix|")
pcdir="$root$libdir/pkgconfig"
[ -f "$pcdir/amulet-1.pc" ] || { echo "FAIL: amulet-1.pc not installed in $pcdir"; exit 1; }
# Point the installed file's prefix at the scratch root, as a relocated install
# would; the .pc files it requires (glib's) are found as usual.
mkdir -p "$root/pc"
sed "s|^prefix=.*|prefix=$root$prefix|" "$pcdir/amulet-1.pc" > "$root/pc/amulet-1.pc"
export PKG_CONFIG_PATH="$root/pc"
cflags=$(pkg-config --cflags amulet-1)
libs=$(pkg-config --libs amulet-1)
case "$cflags" in *"$root"*) ;; *) echo "FAIL: amulet-1.pc cflags do not point into the install: $cflags"; exit 1;; esac
out="$top_builddir/tests/pkgconfig-root/amu-example-info"
${CC:-cc} ${SAN_CFLAGS:-} -Wall -Wextra -Werror -o "$out" "$top_srcdir/examples/amu-example-info.c" $cflags $libs
LD_LIBRARY_PATH="$root$libdir" "$out" > "$out.log"
grep -q "^libamulet $(pkg-config --modversion amulet-1)\$" "$out.log" || { echo "FAIL: example printed:"; cat "$out.log"; exit 1; }
# Internal symbols must not leak out of the shared library.
if nm -D --defined-only "$root$libdir/libamulet.so" | awk '{print $3}' | grep -v '^amu_' | grep -v '^AMULET_' | grep -q .; then
	echo "FAIL: libamulet.so exports non-amu_ symbols:"
	nm -D --defined-only "$root$libdir/libamulet.so" | awk '{print $3}' | grep -v '^amu_' | head
	exit 1
fi
# A companion app's sync, through the installed library only, against a simulated band.
sync_out="$root/amu-example-sync"
${CC:-cc} ${SAN_CFLAGS:-} -Wall -Wextra -Werror -o "$sync_out" "$top_srcdir/examples/amu-example-sync.c" $cflags $libs
work=$(mktemp -d /tmp/amu-pkgconfig.XXXXXX)
"$top_builddir/tools/amulet-sim" --listen "$work/band.sock" --state "$work/band" --days 2 --seed 9 \
	--start 2026-11-01 >"$work/sim.log" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null; wait $sim 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q listening "$work/sim.log" 2>/dev/null && break; sleep 0.1; done
"$top_builddir/tools/amulet" --data-dir "$work/host" pair "sim:$work/band.sock" --name band --yes >/dev/null 2>&1 ||
	{ echo "FAIL: pairing for the sync example"; exit 1; }
LD_LIBRARY_PATH="$root$libdir" "$sync_out" "$work/host" band >"$sync_out.log" 2>&1 ||
	{ echo "FAIL: the sync example failed:"; cat "$sync_out.log"; exit 1; }
expected=$("$top_builddir/tools/amulet-sim" --days 2 --seed 9 --start 2026-11-01 --dump-csv | wc -l)
grep -q "^synced $expected samples" "$sync_out.log" || { echo "FAIL: the sync example printed:"; cat "$sync_out.log"; exit 1; }
[ "$(grep -c '^day 2026-11-0[12]: resting heart rate [0-9]' "$sync_out.log")" = 2 ] ||
	{ echo "FAIL: the sync example printed no day summaries:"; cat "$sync_out.log"; exit 1; }
echo "PASS: example built and ran through the installed amulet-1.pc"
echo "PASS: a companion app synced $expected samples through the installed library"
