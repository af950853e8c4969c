#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
'''Self-test of the BlueZ emulator: drives it as a D-Bus client would, against
a real amulet-sim, and prints each check. Exit status 0 when all pass.

    test_emulator.py [PATH-TO-amulet-sim]

Without an argument the simulator is $AMULET_SIM, else the first
_build*/tools/amulet-sim of the source tree.
'''

import glob
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(os.path.dirname(HERE))
EMULATOR = os.path.join(HERE, 'emulator.py')
PYTHON = '/usr/bin/python3'

SERVICE_UUID = '6a4e0001-8c4d-4f6e-9d1a-616d756c6574'
RX_UUID = '6a4e0002-8c4d-4f6e-9d1a-616d756c6574'
TX_UUID = '6a4e0003-8c4d-4f6e-9d1a-616d756c6574'
MOCK = 'org.freedesktop.DBus.Mock'
OM = 'org.freedesktop.DBus.ObjectManager'
PROPS = 'org.freedesktop.DBus.Properties'
ADAPTER = 'org.bluez.Adapter1'
DEVICE = 'org.bluez.Device1'
CHRC = 'org.bluez.GattCharacteristic1'
AGENT_PATH = '/org/amulet/test/agent'
# the central's framer handshake: version 1, ATT MTU 517, window 8
HANDSHAKE = bytes([0x60, 0x01, 0x01, 0x05, 0x02, 0x08])
# safety net for waits on events that must happen; never a measurement
WAIT_S = 10

ADDR1 = 'AA:BB:CC:DD:EE:01'
ADDR2 = 'AA:BB:CC:DD:EE:02'
ADDR3 = 'AA:BB:CC:DD:EE:03'
ADDR4 = 'AA:BB:CC:DD:EE:04'
DEV1 = '/org/bluez/hci0/dev_AA_BB_CC_DD_EE_01'
DEV2 = '/org/bluez/hci0/dev_AA_BB_CC_DD_EE_02'
DEV3 = '/org/bluez/hci0/dev_AA_BB_CC_DD_EE_03'
DEV4 = '/org/bluez/hci0/dev_AA_BB_CC_DD_EE_04'


class CheckFailed(Exception):
    pass


def expect(condition, what):
    if not condition:
        raise CheckFailed(what)


class Agent(dbus.service.Object):
    '''An org.bluez.Agent1 whose answer the test chooses.'''

    def __init__(self, bus):
        super().__init__(bus, AGENT_PATH)
        self.answer = 'accept'
        self.requests = []
        self.cancels = 0
        self.pending = []

    @dbus.service.method('org.bluez.Agent1', in_signature='ou', out_signature='',
                         async_callbacks=('ok', 'err'))
    def RequestConfirmation(self, device, passkey, ok, err):
        self.requests.append((str(device), int(passkey)))
        if self.answer == 'accept':
            ok()
        elif self.answer == 'reject':
            err(dbus.exceptions.DBusException('no', name='org.bluez.Error.Rejected'))
        elif self.answer == 'cancel':
            err(dbus.exceptions.DBusException('no', name='org.bluez.Error.Canceled'))
        else:  # 'ignore': the user never answers
            self.pending.append((ok, err))

    @dbus.service.method('org.bluez.Agent1', in_signature='', out_signature='')
    def Cancel(self):
        self.cancels += 1

    @dbus.service.method('org.bluez.Agent1', in_signature='', out_signature='')
    def Release(self):
        pass


class Harness:  # pylint: disable=too-many-public-methods
    def __init__(self, sim_binary):
        self.sim_binary = sim_binary
        self.dir = tempfile.mkdtemp(prefix='amu-bz-', dir='/tmp')
        self.emu_dir = os.path.join(self.dir, 'emu')
        self.sim_socket = os.path.join(self.dir, 'sim.sock')
        self.advert = os.path.join(self.dir, 'advert.json')
        self.sim = None
        self.bus = None
        self.signals = []
        self.passed = 0
        self.failed = 0
        self.fds = []
        self.address = None
        self.agent = None
        self.acquired = None

    # plumbing

    def pump(self):
        ctx = GLib.MainContext.default()
        while ctx.iteration(False):
            pass

    def wait_for(self, predicate, what):
        deadline = time.monotonic() + WAIT_S
        # wakes the loop now and then, so the deadline is seen without events
        tick = GLib.timeout_add(100, lambda: True)
        try:
            while not predicate():
                if time.monotonic() > deadline:
                    raise CheckFailed(f'gave up waiting for {what}')
                GLib.MainContext.default().iteration(True)
        finally:
            GLib.source_remove(tick)

    def call(self, path, iface, method, *args, signature=None):
        '''A method call that lets the main loop run (the agent answers
        from it); returns the reply or raises its DBusException.'''
        result = {}
        self.bus.call_async('org.bluez', path, iface, method, signature, args,
                            lambda *r: result.setdefault('ok', r),
                            lambda e: result.setdefault('err', e), timeout=60)
        self.wait_for(lambda: result, f'the reply to {method}')
        if 'err' in result:
            raise result['err']
        reply = result['ok']
        return reply[0] if len(reply) == 1 else (reply if reply else None)

    def call_error(self, path, iface, method, *args, signature=None):
        try:
            self.call(path, iface, method, *args, signature=signature)
        except dbus.exceptions.DBusException as e:
            return e.get_dbus_name()
        raise CheckFailed(f'{method} succeeded but should have failed')

    def ctl(self, method, *args, signature=None):
        return self.call('/', MOCK, method, *args, signature=signature)

    def objects(self):
        return self.call('/', OM, 'GetManagedObjects')

    def prop(self, path, iface, name):
        return self.call(path, PROPS, 'Get', iface, name)

    def on_signal(self, *args, **kw):
        self.signals.append((kw['path'], kw['member'], args))

    def take(self, member, path=None):
        '''The signals seen since the last take() that match.'''
        self.pump()
        found = [s for s in self.signals if s[1] == member and (path is None or s[0] == path)]
        return found

    def prop_changes(self, path, iface):
        changes = {}
        for _, _, args in self.take('PropertiesChanged', path):
            if args[0] == iface:
                changes.update(args[1])
        return changes

    def counters(self, address):
        return {str(k): int(v) for k, v in self.ctl('GetCounters', address).items()}

    def write_advert(self, pairing_mode, profile):
        tmp = self.advert + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump({'pairing_mode': pairing_mode, 'profile': profile, 'model': 'Amulet Band',
                       'device_id': '00112233445566778899aabbccddeeff'}, f)
        os.rename(tmp, self.advert)

    def run(self, name, fn):
        self.signals.clear()
        try:
            fn()
        except (CheckFailed, dbus.exceptions.DBusException, OSError, AssertionError) as e:
            self.failed += 1
            print(f'FAIL {name}: {e}')
            return
        self.passed += 1
        print(f'ok   {name}')

    # setup and teardown

    def start(self):
        os.makedirs(os.path.join(self.dir, 'state'))
        log = open(os.path.join(self.dir, 'sim.log'), 'wb')  # pylint: disable=consider-using-with
        self.sim = subprocess.Popen([self.sim_binary, '--listen', self.sim_socket,
                                     '--state', os.path.join(self.dir, 'state'), '--profile', 'band'],
                                    stdout=log, stderr=log)
        deadline = time.monotonic() + WAIT_S
        while not os.path.exists(self.sim_socket):
            if self.sim.poll() is not None or time.monotonic() > deadline:
                raise CheckFailed('amulet-sim did not start; see ' + os.path.join(self.dir, 'sim.log'))
            time.sleep(0.01)
        out = subprocess.run([PYTHON, EMULATOR, 'start', self.emu_dir, '--exit-with', str(os.getpid())],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise CheckFailed('emulator.py start failed: ' + out.stderr)
        address = out.stdout.strip()
        self.address = address
        with open(os.path.join(self.emu_dir, 'env'), encoding='utf-8') as f:
            expect(f.read() == f'DBUS_SYSTEM_BUS_ADDRESS={address}\n', 'env holds the printed address')
        self.bus = dbus.bus.BusConnection(address, mainloop=dbus.mainloop.glib.DBusGMainLoop())
        self.bus.add_signal_receiver(self.on_signal, bus_name='org.bluez', path_keyword='path',
                                     member_keyword='member')
        self.agent = Agent(self.bus)

    def stop(self):
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        if self.bus is not None:
            self.bus.close()
        subprocess.run([PYTHON, EMULATOR, 'stop', self.emu_dir], check=False)
        if self.sim is not None and self.sim.poll() is None:
            self.sim.terminate()
            self.sim.wait()

    def emulator_pids(self):
        with open(os.path.join(self.emu_dir, 'pids'), encoding='utf-8') as f:
            return [int(line.split('=')[1]) for line in f if '=' in line]

    # checks

    def check_startup(self):
        objs = self.objects()
        expect('org.bluez.AgentManager1' in objs.get('/org/bluez', {}), '/org/bluez has AgentManager1')
        path = self.ctl('AddAdapter', 'hci0', 'amulet-host')
        expect(path == '/org/bluez/hci0', f'AddAdapter returned {path}')
        added = self.take('InterfacesAdded')
        expect(any(a[0] == '/org/bluez/hci0' and ADAPTER in a[1] for _, _, a in added), 'InterfacesAdded for hci0')
        expect(bool(self.prop('/org/bluez/hci0', ADAPTER, 'Powered')), 'hci0 is powered')
        # the control methods answer on /org/bluez too
        path = self.call('/org/bluez', MOCK, 'AddAmuletDevice', 'hci0', ADDR1, 'Amulet Band', self.sim_socket,
                         self.advert)
        expect(path == DEV1, f'AddAmuletDevice returned {path}')
        expect(DEV1 not in self.objects(), 'a device is not on the bus before discovery')

    def check_filter_validation(self):
        hci = '/org/bluez/hci0'
        sv = 'a{sv}'
        name = self.call_error(hci, ADAPTER, 'SetDiscoveryFilter', {'Transport': 'usb'}, signature=sv)
        expect(name == 'org.bluez.Error.InvalidArguments', f'Transport "usb" gave {name}')
        name = self.call_error(hci, ADAPTER, 'SetDiscoveryFilter',
                               {'UUIDs': dbus.Array([dbus.Int32(42)], signature='i')}, signature=sv)
        expect(name == 'org.bluez.Error.InvalidArguments', f'UUIDs of integers gave {name}')
        name = self.call_error(hci, ADAPTER, 'SetDiscoveryFilter', {'UUIDs': dbus.String(SERVICE_UUID)},
                               signature=sv)
        expect(name == 'org.bluez.Error.InvalidArguments', f'UUIDs as a plain string gave {name}')
        name = self.call_error(hci, ADAPTER, 'SetDiscoveryFilter', {'Color': 'red'}, signature=sv)
        expect(name == 'org.bluez.Error.InvalidArguments', f'an unknown key gave {name}')
        filters = [str(f) for f in self.call(hci, ADAPTER, 'GetDiscoveryFilters')]
        expect('Transport' in filters and 'UUIDs' in filters, f'GetDiscoveryFilters: {filters}')

    def check_filter_hides(self):
        hci = '/org/bluez/hci0'
        self.call(hci, ADAPTER, 'SetDiscoveryFilter',
                  {'Transport': 'le', 'UUIDs': dbus.Array(['180d'], signature='s')}, signature='a{sv}')
        self.call(hci, ADAPTER, 'StartDiscovery')
        self.wait_for(lambda: self.prop_changes(hci, ADAPTER).get('Discovering') is not None, 'Discovering')
        self.ctl('EmitAdvertisement', ADDR1)
        expect(not self.take('InterfacesAdded', '/'), 'a device outside the UUID filter stays hidden')
        self.call(hci, ADAPTER, 'StopDiscovery')
        expect(not bool(self.prop(hci, ADAPTER, 'Discovering')), 'Discovering false after StopDiscovery')
        name = self.call_error(hci, ADAPTER, 'StopDiscovery')
        expect(name == 'org.bluez.Error.Failed', f'a second StopDiscovery gave {name}')

    def check_discovery(self):
        hci = '/org/bluez/hci0'
        self.write_advert(False, 'watch')
        self.call(hci, ADAPTER, 'SetDiscoveryFilter',
                  {'Transport': 'le', 'UUIDs': dbus.Array([SERVICE_UUID.upper()], signature='s')},
                  signature='a{sv}')
        self.call(hci, ADAPTER, 'StartDiscovery')
        name = self.call_error(hci, ADAPTER, 'StartDiscovery')
        expect(name == 'org.bluez.Error.InProgress', f'a second StartDiscovery gave {name}')
        self.wait_for(lambda: any(a[0] == DEV1 for _, _, a in self.take('InterfacesAdded')), 'the device to appear')
        props = [a[1] for _, _, a in self.take('InterfacesAdded') if a[0] == DEV1][0][DEVICE]
        expect(-70 <= int(props['RSSI']) <= -50, f'RSSI {props["RSSI"]}')
        expect(SERVICE_UUID in [str(u) for u in props['UUIDs']], 'UUIDs holds the Amulet service')
        data = [int(b) for b in props['ServiceData'][SERVICE_UUID]]
        expect(data == [0x00, 2], f'ServiceData from the advertise file (not pairing, watch): {data}')
        expect(str(props['AddressType']) == 'random' and str(props['Address']) == ADDR1, 'address')
        expect(not props['Connected'] and not props['Paired'], 'neither connected nor paired')
        expect(str(props['Adapter']) == hci, 'Adapter')
        expect(DEV1 in self.objects(), 'GetManagedObjects lists the device')

    def check_advert_update(self):
        self.write_advert(True, 'band')
        self.ctl('EmitAdvertisement', ADDR1)
        changes = self.prop_changes(DEV1, DEVICE)
        expect('ServiceData' in changes, 'ServiceData changed with the advertise file')
        data = [int(b) for b in changes['ServiceData'][SERVICE_UUID]]
        expect(data == [0x01, 1], f'pairing mode, band: {data}')
        # a broken file falls back to SetAdvertisement values (default: pairing, band)
        with open(self.advert, 'w', encoding='utf-8') as f:
            f.write('{"pairing_mode": "maybe"')
        self.ctl('SetAdvertisement', ADDR1, False, 'toy')
        self.ctl('EmitAdvertisement', ADDR1)
        data = [int(b) for b in self.prop(DEV1, DEVICE, 'ServiceData')[SERVICE_UUID]]
        expect(data == [0x00, 3], f'unreadable file: SetAdvertisement values: {data}')
        self.write_advert(True, 'band')
        self.ctl('EmitAdvertisement', ADDR1)

    def check_no_advert_file(self):
        self.ctl('AddAmuletDevice', 'hci0', ADDR2, 'Amulet Two', self.sim_socket, '')
        self.wait_for(lambda: any(a[0] == DEV2 for _, _, a in self.take('InterfacesAdded')),
                      'a device added during discovery to appear')
        data = [int(b) for b in self.prop(DEV2, DEVICE, 'ServiceData')[SERVICE_UUID]]
        expect(data == [0x01, 1], f'default advertisement: {data}')
        self.ctl('SetAdvertisement', ADDR2, False, 'toy')
        changes = self.prop_changes(DEV2, DEVICE)
        expect([int(b) for b in changes['ServiceData'][SERVICE_UUID]] == [0x00, 3], 'SetAdvertisement')
        name = self.call_error('/', MOCK, 'SetAdvertisement', ADDR2, True, 'ring')
        expect(name == 'org.bluez.Mock.InvalidArguments', f'unknown profile gave {name}')

    def check_remove_during_discovery(self):
        self.ctl('RemoveAmuletDevice', ADDR2)
        removed = self.take('InterfacesRemoved')
        expect(any(a[0] == DEV2 and DEVICE in a[1] for _, _, a in removed), 'InterfacesRemoved for the device')
        expect(DEV2 not in self.objects(), 'the device is gone')
        name = self.call_error('/', MOCK, 'GetCounters', ADDR2)
        expect(name == 'org.bluez.Mock.NoSuchDevice', f'a removed device is unknown: {name}')

    def check_stop_discovery(self):
        hci = '/org/bluez/hci0'
        self.call(hci, ADAPTER, 'StopDiscovery')
        changes = self.prop_changes(hci, ADAPTER)
        expect(changes.get('Discovering') is not None and not changes['Discovering'], 'Discovering went false')
        invalidated = [a[2] for _, _, a in self.take('PropertiesChanged', DEV1)]
        expect(any('RSSI' in inv for inv in invalidated), 'RSSI invalidated when discovery stops')
        expect(DEV1 in self.objects(), 'the found device stays')

    def check_pair_no_agent(self):
        name = self.call_error(DEV1, DEVICE, 'Pair')
        expect(name == 'org.bluez.Error.AuthenticationFailed', f'Pair without an agent gave {name}')

    def check_agent_registration(self):
        am = '/org/bluez'
        name = self.call_error(am, 'org.bluez.AgentManager1', 'RegisterAgent', dbus.ObjectPath(AGENT_PATH), 'Telepathy')
        expect(name == 'org.bluez.Error.InvalidArguments', f'a bad capability gave {name}')
        self.call(am, 'org.bluez.AgentManager1', 'RegisterAgent', dbus.ObjectPath(AGENT_PATH), 'DisplayYesNo')
        name = self.call_error(am, 'org.bluez.AgentManager1', 'RegisterAgent', dbus.ObjectPath(AGENT_PATH),
                               'DisplayYesNo')
        expect(name == 'org.bluez.Error.AlreadyExists', f'a second RegisterAgent gave {name}')
        name = self.call_error(am, 'org.bluez.AgentManager1', 'RequestDefaultAgent', dbus.ObjectPath('/not/ours'))
        expect(name == 'org.bluez.Error.DoesNotExist', f'RequestDefaultAgent of an unknown agent gave {name}')
        self.call(am, 'org.bluez.AgentManager1', 'RequestDefaultAgent', dbus.ObjectPath(AGENT_PATH))

    def check_pair_reject(self):
        self.agent.answer = 'reject'
        name = self.call_error(DEV1, DEVICE, 'Pair')
        expect(name == 'org.bluez.Error.AuthenticationRejected', f'rejected pairing gave {name}')
        expect(len(self.agent.requests) == 1 and self.agent.requests[0][0] == DEV1, 'the agent was asked')
        passkey = int(self.ctl('GetLastPasskey', ADDR1))
        expect(self.agent.requests[0][1] == passkey and passkey <= 999999, 'the agent saw GetLastPasskey')
        expect(not bool(self.prop(DEV1, DEVICE, 'Paired')), 'not paired after a rejection')
        with open(os.path.join(self.emu_dir, 'bluez.log'), encoding='utf-8') as f:
            expect(f'passkey: {passkey:06d}' in f.read(), 'the passkey is in the emulator log')

    def check_pair_cancel_answer(self):
        self.agent.answer = 'cancel'
        name = self.call_error(DEV1, DEVICE, 'Pair')
        expect(name == 'org.bluez.Error.AuthenticationCanceled', f'canceled pairing gave {name}')

    def check_pair_result(self):
        self.agent.answer = 'accept'
        asked = len(self.agent.requests)
        self.ctl('SetPairingResult', ADDR1, 'org.bluez.Error.ConnectionAttemptFailed')
        name = self.call_error(DEV1, DEVICE, 'Pair')
        expect(name == 'org.bluez.Error.ConnectionAttemptFailed', f'SetPairingResult: {name}')
        expect(len(self.agent.requests) == asked, 'the agent was not asked')
        self.ctl('SetPairingResult', ADDR1, '')

    def check_pair_timeout(self):
        self.agent.answer = 'ignore'
        cancels = self.agent.cancels
        self.ctl('SetPairingTimeout', dbus.UInt32(1))
        name = self.call_error(DEV1, DEVICE, 'Pair')
        expect(name == 'org.bluez.Error.AuthenticationTimeout', f'unanswered pairing gave {name}')
        self.wait_for(lambda: self.agent.cancels == cancels + 1, 'the agent to be told Cancel')
        self.ctl('SetPairingTimeout', dbus.UInt32(30))

    def check_cancel_pairing(self):
        self.agent.answer = 'ignore'
        cancels = self.agent.cancels
        result = {}
        self.bus.call_async('org.bluez', DEV1, DEVICE, 'Pair', '', (), lambda: result.setdefault('ok', True),
                            lambda e: result.setdefault('err', e.get_dbus_name()))
        asked = len(self.agent.requests)
        self.wait_for(lambda: len(self.agent.requests) > asked - 1 and self.agent.pending, 'the agent request')
        self.call(DEV1, DEVICE, 'CancelPairing')
        self.wait_for(lambda: result, 'the Pair reply')
        expect(result.get('err') == 'org.bluez.Error.AuthenticationCanceled', f'CancelPairing: {result}')
        self.wait_for(lambda: self.agent.cancels == cancels + 1, 'the agent to be told Cancel')
        name = self.call_error(DEV1, DEVICE, 'CancelPairing')
        expect(name == 'org.bluez.Error.DoesNotExist', f'CancelPairing with nothing to cancel gave {name}')
        self.agent.pending.clear()

    def check_pair_accept(self):
        self.agent.answer = 'accept'
        self.call(DEV1, DEVICE, 'Pair')
        changes = self.prop_changes(DEV1, DEVICE)
        expect(changes.get('Paired') and changes.get('Bonded'), f'Paired and Bonded signalled: {changes}')
        expect(bool(self.prop(DEV1, DEVICE, 'Paired')), 'Paired')
        name = self.call_error(DEV1, DEVICE, 'Pair')
        expect(name == 'org.bluez.Error.AlreadyExists', f'Pair when paired gave {name}')
        expect(self.counters(ADDR1)['pairs'] == 8, f'pairs counted: {self.counters(ADDR1)}')

    def check_connect(self):
        self.call(DEV1, DEVICE, 'Connect')
        # Connect answers once the services are resolved, as bluetoothd does
        expect(bool(self.prop(DEV1, DEVICE, 'ServicesResolved')), 'ServicesResolved at the Connect reply')
        changes = [a[1] for _, _, a in self.take('PropertiesChanged', DEV1) if a[0] == DEVICE]
        order = [k for c in changes for k in c if k in ('Connected', 'ServicesResolved')]
        expect(order == ['Connected', 'ServicesResolved'], f'Connected before ServicesResolved: {order}')
        added = {str(a[0]): a[1] for _, _, a in self.take('InterfacesAdded')}
        service = DEV1 + '/service0010'
        rx, tx = service + '/char0011', service + '/char0013'
        expect(str(added[service]['org.bluez.GattService1']['UUID']) == SERVICE_UUID, 'service UUID')
        expect(bool(added[service]['org.bluez.GattService1']['Primary']), 'primary service')
        expect(str(added[rx][CHRC]['UUID']) == RX_UUID, 'RX UUID')
        expect([str(f) for f in added[rx][CHRC]['Flags']] == ['write-without-response'], 'RX flags')
        expect(str(added[tx][CHRC]['UUID']) == TX_UUID, 'TX UUID')
        expect([str(f) for f in added[tx][CHRC]['Flags']] == ['notify'], 'TX flags')
        expect(int(added[tx][CHRC]['MTU']) == 517, 'MTU 517')
        name = self.call_error(DEV1, DEVICE, 'Connect')
        expect(name == 'org.bluez.Error.AlreadyConnected', f'a second Connect gave {name}')

    def check_acquire(self):
        rx = DEV1 + '/service0010/char0011'
        tx = DEV1 + '/service0010/char0013'
        wfd, wmtu = self.call(rx, CHRC, 'AcquireWrite', {}, signature='a{sv}')
        wfd = wfd.take()
        self.fds.append(wfd)
        expect(int(wmtu) == 517, f'AcquireWrite MTU {wmtu}')
        expect(bool(self.prop(rx, CHRC, 'WriteAcquired')), 'WriteAcquired')
        name = self.call_error(rx, CHRC, 'AcquireWrite', {}, signature='a{sv}')
        expect(name == 'org.bluez.Error.NotPermitted', f'a second AcquireWrite gave {name}')
        name = self.call_error(rx, CHRC, 'WriteValue', dbus.ByteArray(b'\x01'), {}, signature='aya{sv}')
        expect(name == 'org.bluez.Error.NotPermitted', f'WriteValue while acquired gave {name}')
        name = self.call_error(rx, CHRC, 'AcquireNotify', {}, signature='a{sv}')
        expect(name == 'org.bluez.Error.NotSupported', f'AcquireNotify on RX gave {name}')
        nfd, nmtu = self.call(tx, CHRC, 'AcquireNotify', {}, signature='a{sv}')
        nfd = nfd.take()
        self.fds.append(nfd)
        expect(int(nmtu) == 517, f'AcquireNotify MTU {nmtu}')
        expect(bool(self.prop(tx, CHRC, 'NotifyAcquired')), 'NotifyAcquired')
        name = self.call_error(tx, CHRC, 'StartNotify')
        expect(name == 'org.bluez.Error.NotPermitted', f'StartNotify while acquired gave {name}')
        os.write(wfd, HANDSHAKE)
        ready, _, _ = select.select([nfd], [], [], WAIT_S)
        expect(ready, 'the simulator answered the handshake')
        answer = os.read(nfd, 600)
        expect(len(answer) == 5 and answer[:4] == bytes([0x20, 0x01, 0x05, 0x02]) and 1 <= answer[4] <= 8,
               f'handshake response {answer.hex()}')
        self.acquired = (wfd, nfd)

    def check_drop(self):
        wfd, nfd = self.acquired
        self.ctl('DropConnection', ADDR1)
        changes = self.prop_changes(DEV1, DEVICE)
        expect(changes.get('Connected') is not None and not changes['Connected'], 'Connected false')
        expect(changes.get('ServicesResolved') is not None and not changes['ServicesResolved'],
               'ServicesResolved false')
        removed = {str(a[0]) for _, _, a in self.take('InterfacesRemoved')}
        service = DEV1 + '/service0010'
        expect({service, service + '/char0011', service + '/char0013'} <= removed, f'GATT objects removed: {removed}')
        poller = select.poll()
        poller.register(nfd, select.POLLIN)
        events = poller.poll(WAIT_S * 1000)
        expect(events and events[0][1] & select.POLLHUP, f'the notify fd sees HUP: {events}')
        expect(os.read(nfd, 600) == b'', 'the notify fd reads EOF')
        try:
            os.write(wfd, HANDSHAKE)
            raise CheckFailed('writing to the write fd after the drop succeeded')
        except (BrokenPipeError, ConnectionResetError):
            pass
        c = self.counters(ADDR1)
        expect(c['connects'] == 1 and c['acquire_write'] == 1 and c['acquire_notify'] == 1 and c['write_value'] == 0,
               f'counters {c}')
        name = self.call_error('/', MOCK, 'DropConnection', ADDR1)
        expect(name == 'org.bluez.Mock.NotConnected', f'DropConnection when not connected gave {name}')

    def check_fallback(self):
        self.ctl('SetAcquireSupported', ADDR1, False)
        self.call(DEV1, DEVICE, 'Connect')
        rx = DEV1 + '/service0010/char0011'
        tx = DEV1 + '/service0010/char0013'
        name = self.call_error(rx, CHRC, 'AcquireWrite', {}, signature='a{sv}')
        expect(name == 'org.bluez.Error.NotSupported', f'AcquireWrite when unsupported gave {name}')
        name = self.call_error(tx, CHRC, 'AcquireNotify', {}, signature='a{sv}')
        expect(name == 'org.bluez.Error.NotSupported', f'AcquireNotify when unsupported gave {name}')
        self.call(tx, CHRC, 'StartNotify')
        expect(bool(self.prop(tx, CHRC, 'Notifying')), 'Notifying')
        name = self.call_error(rx, CHRC, 'WriteValue', dbus.ByteArray(b'\x00' * 515), {'type': 'command'},
                               signature='aya{sv}')
        expect(name == 'org.bluez.Error.InvalidValueLength', f'515 bytes at MTU 517 gave {name}')
        name = self.call_error(rx, CHRC, 'WriteValue', dbus.ByteArray(HANDSHAKE), {'type': 'request'},
                               signature='aya{sv}')
        expect(name == 'org.bluez.Error.NotSupported', f'a write request gave {name}')
        self.call(rx, CHRC, 'WriteValue', dbus.ByteArray(HANDSHAKE), {'type': 'command'}, signature='aya{sv}')
        self.wait_for(lambda: 'Value' in self.prop_changes(tx, CHRC), 'a notification')
        value = bytes(self.prop_changes(tx, CHRC)['Value'])
        expect(value[:4] == bytes([0x20, 0x01, 0x05, 0x02]), f'notified handshake response {value.hex()}')
        c = self.counters(ADDR1)
        expect(c['write_value'] == 1 and c['start_notify'] == 1 and c['acquire_write'] == 1, f'counters {c}')

    def check_sim_closes(self):
        rx = DEV1 + '/service0010/char0011'
        # a handshake once open is a framing error: the simulator hangs up
        self.call(rx, CHRC, 'WriteValue', dbus.ByteArray(HANDSHAKE), {}, signature='aya{sv}')
        self.wait_for(lambda: self.prop_changes(DEV1, DEVICE).get('Connected') is not None, 'the link to drop')
        expect(not bool(self.prop(DEV1, DEVICE, 'Connected')), 'Connected false after the simulator hung up')
        expect(DEV1 + '/service0010' not in self.objects(), 'GATT objects gone')

    def check_sim_closes_acquired(self):
        self.ctl('SetAcquireSupported', ADDR1, True)
        self.call(DEV1, DEVICE, 'Connect')
        self.signals.clear()
        rx = DEV1 + '/service0010/char0011'
        wfd, _ = self.call(rx, CHRC, 'AcquireWrite', {}, signature='a{sv}')
        wfd = wfd.take()
        self.fds.append(wfd)
        os.write(wfd, bytes([0x10, 0x00, 0x00]))  # an unknown flag: the simulator hangs up
        self.wait_for(lambda: self.prop_changes(DEV1, DEVICE).get('Connected') is not None, 'the link to drop')
        expect(not bool(self.prop(DEV1, DEVICE, 'Connected')), 'Connected false after the simulator hung up')

    def check_disconnect(self):
        self.call(DEV1, DEVICE, 'Connect')
        self.signals.clear()
        self.call(DEV1, DEVICE, 'Disconnect')
        changes = self.prop_changes(DEV1, DEVICE)
        expect(changes.get('Connected') is not None and not changes['Connected'], 'Connected false')
        name = self.call_error(DEV1, DEVICE, 'Disconnect')
        expect(name == 'org.bluez.Error.NotConnected', f'Disconnect when not connected gave {name}')
        expect(self.counters(ADDR1)['connects'] == 4, 'four connections made')

    def check_remove_connected(self):
        self.call(DEV1, DEVICE, 'Connect')
        tx = DEV1 + '/service0010/char0013'
        nfd, _ = self.call(tx, CHRC, 'AcquireNotify', {}, signature='a{sv}')
        nfd = nfd.take()
        self.fds.append(nfd)
        self.ctl('RemoveAmuletDevice', ADDR1)
        removed = {str(a[0]) for _, _, a in self.take('InterfacesRemoved')}
        expect(DEV1 in removed and tx in removed, f'device and GATT objects removed: {removed}')
        ready, _, _ = select.select([nfd], [], [], WAIT_S)
        expect(ready and os.read(nfd, 600) == b'', 'the acquired fd reads EOF')
        expect(DEV1 not in self.objects(), 'the device is gone')

    def check_connect_fails(self):
        hci = '/org/bluez/hci0'
        self.ctl('AddAmuletDevice', 'hci0', ADDR3, 'Gone', os.path.join(self.dir, 'nothing.sock'), '')
        self.call(hci, ADAPTER, 'SetDiscoveryFilter', {}, signature='a{sv}')
        self.call(hci, ADAPTER, 'StartDiscovery')
        self.wait_for(lambda: any(a[0] == DEV3 for _, _, a in self.take('InterfacesAdded')), 'the device to appear')
        self.call(hci, ADAPTER, 'StopDiscovery')
        try:
            self.call(DEV3, DEVICE, 'Connect')
            raise CheckFailed('Connect to a simulator that is not there succeeded')
        except dbus.exceptions.DBusException as e:
            expect(e.get_dbus_name() == 'org.bluez.Error.Failed' and
                   'le-connection-abort-by-local' in e.get_dbus_message(), f'Connect failure: {e}')
        expect(not bool(self.prop(DEV3, DEVICE, 'Connected')), 'not connected')

    def check_remove_device(self):
        hci = '/org/bluez/hci0'
        self.call(hci, ADAPTER, 'RemoveDevice', dbus.ObjectPath(DEV3))
        expect(any(a[0] == DEV3 for _, _, a in self.take('InterfacesRemoved')), 'RemoveDevice removes it')
        name = self.call_error(hci, ADAPTER, 'RemoveDevice', dbus.ObjectPath(DEV3))
        expect(name == 'org.bluez.Error.DoesNotExist', f'RemoveDevice of a removed device gave {name}')

    def check_discovery_ends_with_client(self):
        '''bluetoothd ends the discovery session of a client that leaves.'''
        hci = '/org/bluez/hci0'
        other = dbus.bus.BusConnection(self.address)
        other.call_blocking('org.bluez', hci, ADAPTER, 'StartDiscovery', '', ())
        expect(bool(self.prop(hci, ADAPTER, 'Discovering')), 'the other client discovers')
        other.close()
        self.wait_for(lambda: self.prop_changes(hci, ADAPTER).get('Discovering', True) == 0, 'Discovering to end')

    def check_ctl(self):
        out = subprocess.run([PYTHON, EMULATOR, 'ctl', self.emu_dir, 'AddAmuletDevice', 'hci0', ADDR4, 'Ctl',
                              self.sim_socket, ''], capture_output=True, text=True, check=False)
        expect(out.returncode == 0 and out.stdout.strip() == DEV4, f'ctl AddAmuletDevice: {out.stdout}{out.stderr}')
        out = subprocess.run([PYTHON, EMULATOR, 'ctl', self.emu_dir, 'GetCounters', ADDR4],
                             capture_output=True, text=True, check=False)
        expect(out.returncode == 0 and 'connects=0' in out.stdout.split(), f'ctl GetCounters: {out.stdout}')
        out = subprocess.run([PYTHON, EMULATOR, 'ctl', self.emu_dir, 'DropConnection', ADDR4],
                             capture_output=True, text=True, check=False)
        expect(out.returncode == 1 and 'org.bluez.Mock.NotConnected' in out.stderr, f'ctl error: {out.stderr}')

    def check_stop(self):
        pids = self.emulator_pids()
        self.bus.close()
        self.bus = None
        for _ in range(2):  # stop is idempotent
            out = subprocess.run([PYTHON, EMULATOR, 'stop', self.emu_dir], capture_output=True, text=True,
                                 check=False)
            expect(out.returncode == 0, f'emulator.py stop: {out.stderr}')
        expect(not any(os.path.exists(f'/proc/{pid}') and not zombie(pid) for pid in pids),
               f'processes {pids} are gone')
        expect(not os.path.exists(os.path.join(self.emu_dir, 'system_bus_socket')), 'the bus socket is removed')

    def check_exit_with(self):
        '''A killed test run leaves no emulator behind.'''
        parent = subprocess.Popen(['sleep', '60'])  # pylint: disable=consider-using-with
        emu_dir = os.path.join(self.dir, 'emu2')
        out = subprocess.run([PYTHON, EMULATOR, 'start', emu_dir, '--exit-with', str(parent.pid)],
                             capture_output=True, text=True, check=False)
        expect(out.returncode == 0, f'second emulator: {out.stderr}')
        with open(os.path.join(emu_dir, 'pids'), encoding='utf-8') as f:
            pids = [int(line.split('=')[1]) for line in f if '=' in line]
        expect(all(os.path.exists(f'/proc/{pid}') for pid in pids), 'it runs')
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + WAIT_S
        while any(os.path.exists(f'/proc/{pid}') and not zombie(pid) for pid in pids):
            if time.monotonic() > deadline:
                subprocess.run([PYTHON, EMULATOR, 'stop', emu_dir], check=False)
                raise CheckFailed(f'processes {pids} outlived the process they were bound to')
            time.sleep(0.05)
        subprocess.run([PYTHON, EMULATOR, 'stop', emu_dir], check=False)


def zombie(pid):
    try:
        with open(f'/proc/{pid}/stat', encoding='utf-8') as f:
            return f.read().rsplit(')', 1)[1].split()[0] in ('Z', 'X')
    except OSError:
        return True


def find_sim(argv):
    if len(argv) > 1:
        return argv[1]
    if os.environ.get('AMULET_SIM'):
        return os.environ['AMULET_SIM']
    found = sorted(glob.glob(os.path.join(SRCDIR, '_build*', 'tools', 'amulet-sim')))
    if not found:
        sys.stderr.write('test_emulator.py: no amulet-sim: pass its path or set AMULET_SIM\n')
        sys.exit(1)
    return found[0]


def main(argv):
    h = Harness(find_sim(argv))
    print(f'simulator: {h.sim_binary}')
    checks = [
        ('start, adapter, device hidden before discovery', h.check_startup),
        ('SetDiscoveryFilter rejects bad Transport, UUIDs and keys', h.check_filter_validation),
        ('a UUID filter hides the device; StopDiscovery twice fails', h.check_filter_hides),
        ('discovery shows the device with RSSI and ServiceData from the file', h.check_discovery),
        ('the advertisement follows the file; a broken file falls back', h.check_advert_update),
        ('a device without a file advertises SetAdvertisement values', h.check_no_advert_file),
        ('RemoveAmuletDevice during discovery', h.check_remove_during_discovery),
        ('StopDiscovery invalidates RSSI', h.check_stop_discovery),
        ('Pair without an agent fails', h.check_pair_no_agent),
        ('AgentManager1 registration', h.check_agent_registration),
        ('Pair rejected by the agent', h.check_pair_reject),
        ('Pair canceled by the agent', h.check_pair_cancel_answer),
        ('SetPairingResult fails Pair without asking the agent', h.check_pair_result),
        ('Pair times out and cancels the agent', h.check_pair_timeout),
        ('CancelPairing', h.check_cancel_pairing),
        ('Pair accepted by the agent', h.check_pair_accept),
        ('Connect resolves the Amulet GATT service', h.check_connect),
        ('AcquireWrite/AcquireNotify carry the framer handshake', h.check_acquire),
        ('DropConnection: Connected false, objects removed, fds HUP', h.check_drop),
        ('fallback: WriteValue and StartNotify', h.check_fallback),
        ('the simulator hanging up disconnects', h.check_sim_closes),
        ('the simulator hanging up is seen while the fds are acquired', h.check_sim_closes_acquired),
        ('Disconnect', h.check_disconnect),
        ('RemoveAmuletDevice while connected', h.check_remove_connected),
        ('Connect to a missing simulator fails', h.check_connect_fails),
        ('Adapter1.RemoveDevice', h.check_remove_device),
        ('a client leaving ends its discovery', h.check_discovery_ends_with_client),
        ('emulator.py ctl', h.check_ctl),
        ('emulator.py stop', h.check_stop),
        ('--exit-with stops the emulator when its owner dies', h.check_exit_with),
    ]
    try:
        h.start()
        print('ok   emulator and amulet-sim started')
        for name, fn in checks:
            h.run(name, fn)
    except CheckFailed as e:
        print(f'FAIL setup: {e}')
        h.failed += 1
    finally:
        h.stop()
    print(f'{h.passed} passed, {h.failed} failed')
    if h.failed == 0:
        shutil.rmtree(h.dir, ignore_errors=True)
    else:
        print(f'logs kept in {h.dir}')
    return 0 if h.failed == 0 else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
