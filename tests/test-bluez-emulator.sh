#!/bin/sh
# The BlueZ emulator's own self-test (tests/bluez/test_emulator.py) against
# the real simulator: the emulator the BlueZ tests rely on behaves as
# documented in tests/bluez/README.md.
if ! /usr/bin/python3 -c 'import dbus, dbusmock, gi' 2>/dev/null || ! command -v dbus-daemon >/dev/null; then
	echo "SKIP: the BlueZ emulator needs python3-dbusmock, python3-dbus, python3-gi and dbus (scripts/deps)"
	exit 77
fi
exec /usr/bin/python3 "${top_srcdir:-.}/tests/bluez/test_emulator.py" "${top_builddir:-.}/tools/amulet-sim"
