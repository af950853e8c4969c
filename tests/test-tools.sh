#!/bin/sh
# The tools answer --help and --version, and reject unknown options with exit 2.
set -eu
b="${top_builddir:-.}/tools"
fail() { echo "FAIL: $*"; exit 1; }

out=$("$b/amulet" --version) || fail "amulet --version exited $?"
[ "$out" = "amulet $(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"/\1/p' "${top_builddir:-.}/config.h")" ] || fail "amulet --version printed '$out'"
"$b/amulet" --help | grep -q '^Usage: amulet' || fail "amulet --help"
"$b/amulet-sim" --version | grep -q '^amulet-sim ' || fail "amulet-sim --version"
"$b/amulet-sim" --help | grep -q -- "--listen=PATH" || fail "amulet-sim --help lists --listen"
set +e
"$b/amulet" --no-such-option 2>/tmp/amu-tools-err.$$; rc=$?
set -e
[ "$rc" = 2 ] || fail "unknown option exit $rc, expected 2"
grep -q "no-such-option" /tmp/amu-tools-err.$$ || fail "unknown option not named in the error"
rm -f /tmp/amu-tools-err.$$
echo "PASS: tools answer --help/--version"
set +e
"$b/amulet-sim" --listen /tmp/x.sock --state /tmp/x --profile robot 2>/tmp/amu-tools-err.$$; rc=$?
set -e
[ "$rc" = 2 ] || fail "amulet-sim --profile robot exit $rc, expected 2"
grep -q "band, watch or toy" /tmp/amu-tools-err.$$ || fail "bad profile error does not list the choices"
rm -f /tmp/amu-tools-err.$$
echo "PASS: amulet-sim rejects a bad profile with the choices"
