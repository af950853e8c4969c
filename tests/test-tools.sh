#!/bin/sh
# The tools answer --help and --version, and reject unknown options with exit 2.
set -eu
b="${top_builddir:-.}/tools"
fail() { echo "FAIL: $*"; exit 1; }

out=$("$b/amulet" --version) || fail "amulet --version exited $?"
[ "$out" = "amulet $(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"/\1/p' "${top_builddir:-.}/config.h")" ] || fail "amulet --version printed '$out'"
"$b/amulet" --help | grep -q '^Usage: amulet' || fail "amulet --help"
"$b/amulet-sim" --version | grep -q '^amulet-sim ' || fail "amulet-sim --version"
"$b/amulet-sim" --help | grep -q '^Usage: amulet-sim' || fail "amulet-sim --help"
set +e
"$b/amulet" --no-such-option 2>/tmp/amu-tools-err.$$; rc=$?
set -e
[ "$rc" = 2 ] || fail "unknown option exit $rc, expected 2"
grep -q "no-such-option" /tmp/amu-tools-err.$$ || fail "unknown option not named in the error"
rm -f /tmp/amu-tools-err.$$
echo "PASS: tools answer --help/--version"
