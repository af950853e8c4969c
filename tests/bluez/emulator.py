#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
'''Starts and stops the BlueZ emulator: a private dbus-daemon with the
amulet_bluez dbusmock template on it as org.bluez.

    emulator.py start DIR [--exit-with PID]
    emulator.py stop DIR
    emulator.py ctl DIR METHOD [ARG...]

start writes DIR/bus.conf, DIR/env (DBUS_SYSTEM_BUS_ADDRESS=...), DIR/pids and
DIR/bluez.log (the emulator's log), and prints the bus address. With
--exit-with, both processes stop by themselves once PID is gone.
'''

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, 'amulet_bluez.py')
PYTHON = '/usr/bin/python3'
MOCK_IFACE = 'org.freedesktop.DBus.Mock'
START_TIMEOUT_S = 10

BUS_CONF = '''<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <keep_umask/>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
'''


def die(message):
    sys.stderr.write(f'emulator.py: {message}\n')
    sys.exit(1)


def paths(directory):
    directory = os.path.abspath(directory)
    return {
        'dir': directory,
        'socket': os.path.join(directory, 'system_bus_socket'),
        'conf': os.path.join(directory, 'bus.conf'),
        'env': os.path.join(directory, 'env'),
        'pids': os.path.join(directory, 'pids'),
        'log': os.path.join(directory, 'bluez.log'),
    }


def alive(pid, marker):
    '''Whether pid is still one of ours: running (not a zombie) and started
    with marker (the directory) on its command line, so a recycled pid is
    never signalled.'''
    try:
        with open(f'/proc/{pid}/stat', encoding='utf-8') as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            cmdline = f.read().decode('utf-8', 'replace')
    except (OSError, IndexError):
        return False
    return state not in ('Z', 'X') and marker in cmdline


def read_pids(p):
    pids = {}
    try:
        with open(p['pids'], encoding='utf-8') as f:
            for line in f:
                name, _, value = line.strip().partition('=')
                if value.isdigit():
                    pids[name] = int(value)
    except FileNotFoundError:
        pass
    return pids


def stop_pid(pid, marker):
    if not alive(pid, marker):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(200):
        try:
            os.waitpid(pid, os.WNOHANG)  # when it is our child (start failed)
        except ChildProcessError:
            pass
        if not alive(pid, marker):
            return
        time.sleep(0.01)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop(directory):
    p = paths(directory)
    pids = read_pids(p)
    # the mock first, so it does not log the bus going away as an error
    for name in ('dbusmock', 'dbus_daemon'):
        if name in pids:
            stop_pid(pids[name], p['dir'])
    for name in ('socket', 'pids', 'env'):
        try:
            os.unlink(p[name])
        except FileNotFoundError:
            pass


def wait_ready(address, mock):
    '''Until org.bluez answers (dbusmock loads the template before it serves
    any call).'''
    import dbus  # pylint: disable=import-outside-toplevel

    deadline = time.monotonic() + START_TIMEOUT_S
    bus = None
    while time.monotonic() < deadline:
        if mock.poll() is not None:
            return False
        try:
            if bus is None:
                bus = dbus.bus.BusConnection(address)
            if bus.name_has_owner('org.bluez'):
                obj = bus.get_object('org.bluez', '/', introspect=False)
                obj.GetManagedObjects(dbus_interface='org.freedesktop.DBus.ObjectManager', timeout=5)
                bus.close()
                return True
        except dbus.exceptions.DBusException:
            pass
        time.sleep(0.02)
    return False


def start(directory, exit_with):
    p = paths(directory)
    os.makedirs(p['dir'], exist_ok=True)
    if any(alive(pid, p['dir']) for pid in read_pids(p).values()):
        die(f'an emulator already runs in {p["dir"]}: stop it first (emulator.py stop {p["dir"]})')
    stop(directory)
    if len(p['socket'].encode()) > 100:
        die(f'{p["socket"]} is too long for a UNIX socket address: use a shorter directory')
    with open(p['conf'], 'w', encoding='utf-8') as f:
        f.write(BUS_CONF.format(socket=p['socket']))
    address = 'unix:path=' + p['socket']

    log = open(p['log'], 'ab')  # pylint: disable=consider-using-with
    daemon = subprocess.Popen(['dbus-daemon', '--nofork', '--nopidfile', '--nosyslog', '--config-file=' + p['conf']],
                              stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    for _ in range(500):
        if os.path.exists(p['socket']) or daemon.poll() is not None:
            break
        time.sleep(0.01)
    if daemon.poll() is not None or not os.path.exists(p['socket']):
        stop_pid(daemon.pid, p['dir'])
        die(f'dbus-daemon did not start; see {p["log"]}')

    parameters = json.dumps({'bus_pid': daemon.pid, 'bus_socket': p['socket'], 'exit_with': exit_with})
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address, PYTHONUNBUFFERED='1')
    mock = subprocess.Popen([PYTHON, '-m', 'dbusmock', '--system', '--template', TEMPLATE, '-p', parameters],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True,
                            cwd=p['dir'])
    with open(p['pids'], 'w', encoding='utf-8') as f:
        f.write(f'dbus_daemon={daemon.pid}\ndbusmock={mock.pid}\n')
    if not wait_ready(address, mock):
        stop(directory)
        die(f'the emulator did not come up on {address}; see {p["log"]}')
    with open(p['env'], 'w', encoding='utf-8') as f:
        f.write(f'DBUS_SYSTEM_BUS_ADDRESS={address}\n')
    print(address)


def ctl(directory, method, args):
    import dbus  # pylint: disable=import-outside-toplevel

    p = paths(directory)
    bus = dbus.bus.BusConnection('unix:path=' + p['socket'])
    obj = bus.get_object('org.bluez', '/', introspect=False)
    xml = obj.Introspect(dbus_interface='org.freedesktop.DBus.Introspectable')
    node = ElementTree.fromstring(xml).find(f"./interface[@name='{MOCK_IFACE}']/method[@name='{method}']")
    if node is None:
        die(f'the emulator has no control method {method}')
    types = [arg.get('type') for arg in node.findall('arg') if arg.get('direction', 'in') == 'in']
    if len(types) != len(args):
        die(f'{method} takes {len(types)} arguments ({"".join(types)}), not {len(args)}')
    converted = []
    for kind, text in zip(types, args):
        if kind in ('s', 'o'):
            converted.append(text)
        elif kind == 'b':
            if text not in ('true', 'false'):
                die(f'"{text}" is not a boolean (true or false)')
            converted.append(text == 'true')
        elif kind in ('y', 'n', 'q', 'i', 'u', 'x', 't'):
            converted.append(int(text, 0))
        else:
            die(f'{method}: arguments of type {kind} cannot be given on the command line')
    try:
        reply = obj.get_dbus_method(method, MOCK_IFACE)(*converted, signature=''.join(types))
    except dbus.exceptions.DBusException as e:
        die(f'{method}: {e.get_dbus_name()}: {e.get_dbus_message()}')
    if reply is not None:
        if isinstance(reply, dict):
            for key, value in reply.items():
                print(f'{key}={value}')
        else:
            print(reply)


def main(argv):
    if len(argv) < 3 or argv[1] not in ('start', 'stop', 'ctl'):
        die('usage: emulator.py start DIR [--exit-with PID] | stop DIR | ctl DIR METHOD [ARG...]')
    command, directory = argv[1], argv[2]
    if command == 'start':
        exit_with = 0
        if len(argv) == 5 and argv[3] == '--exit-with' and argv[4].isdigit():
            exit_with = int(argv[4])
        elif len(argv) != 3:
            die('usage: emulator.py start DIR [--exit-with PID]')
        start(directory, exit_with)
    elif command == 'stop':
        if len(argv) != 3:
            die('usage: emulator.py stop DIR')
        stop(directory)
    else:
        if len(argv) < 4:
            die('usage: emulator.py ctl DIR METHOD [ARG...]')
        ctl(directory, argv[3], argv[4:])


if __name__ == '__main__':
    main(sys.argv)
