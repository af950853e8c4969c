# SPDX-License-Identifier: LGPL-2.1-or-later
'''python3-dbusmock template: an org.bluez that reaches amulet-sim devices

Load it with
    python3 -m dbusmock --system --template tests/bluez/amulet_bluez.py
on a private system bus (tests/bluez/emulator.py does that). It implements the
part of bluetoothd's D-Bus API that Amulet uses (AgentManager1, Adapter1,
Device1, GattService1, GattCharacteristic1 and the ObjectManager on /) and
carries GATT traffic to a running amulet-sim over its UNIX SOCK_SEQPACKET
socket, one datagram per ATT write or notification.

Control methods (org.freedesktop.DBus.Mock, on / and on /org/bluez) are
described in tests/bluez/README.md.
'''

import json
import os
import random
import re
import socket

import dbus
import dbus.service
from gi.repository import GLib

from dbusmock import OBJECT_MANAGER_IFACE, mockobject

# -- constants shared with the C side ---------------------------------------

AMULET_SERVICE_UUID = '6a4e0001-8c4d-4f6e-9d1a-616d756c6574'
AMULET_RX_UUID = '6a4e0002-8c4d-4f6e-9d1a-616d756c6574'  # host -> device
AMULET_TX_UUID = '6a4e0003-8c4d-4f6e-9d1a-616d756c6574'  # device -> host
ADVERT_FLAG_PAIRING_MODE = 0x01
PROFILES = {'band': 1, 'watch': 2, 'toy': 3}
ATT_MTU_DEFAULT = 517
ATT_MTU_MIN = 23
ATT_OVERHEAD = 3

# -- dbusmock template settings ---------------------------------------------

BUS_NAME = 'org.bluez'
MAIN_OBJ = '/'
SYSTEM_BUS = True
IS_OBJECT_MANAGER = True

MOCK_IFACE = mockobject.MOCK_IFACE
BLUEZ_PATH = '/org/bluez'
AGENT_MANAGER_IFACE = 'org.bluez.AgentManager1'
AGENT_IFACE = 'org.bluez.Agent1'
ADAPTER_IFACE = 'org.bluez.Adapter1'
DEVICE_IFACE = 'org.bluez.Device1'
SERVICE_IFACE = 'org.bluez.GattService1'
CHRC_IFACE = 'org.bluez.GattCharacteristic1'

# the timings of a real link, scaled down for tests
RESOLVE_DELAY_MS = 30
SCAN_DELAY_MS = 10
ADVERT_INTERVAL_MS = 1000
PAIRING_TIMEOUT_S = 30
RSSI_RANGE = (-70, -50)

DISCOVERY_FILTER_KEYS = ['UUIDs', 'RSSI', 'Pathloss', 'Transport', 'DuplicateData', 'Discoverable', 'Pattern']
CAPABILITIES = ['', 'DisplayOnly', 'DisplayYesNo', 'KeyboardOnly', 'NoInputNoOutput', 'KeyboardDisplay']
COUNTERS = ['connects', 'disconnects', 'acquire_write', 'acquire_notify', 'write_value', 'start_notify', 'pairs']

BASE_UUID_SUFFIX = '-0000-1000-8000-00805f9b34fb'

# -- state --------------------------------------------------------------------

adapters = {}  # 'hci0' -> Adapter
devices = {}  # 'AA:BB:CC:DD:EE:FF' -> AmuletDevice
agents = {}  # unique bus name -> agent object path
default_agent = []  # [unique bus name] of the default agent, or empty
owner_watches = {}  # unique bus name -> signal match
pairing_timeout_s = [PAIRING_TIMEOUT_S]


def _error(name, message):
    return dbus.exceptions.DBusException(message, name=name)


def _bluez_error(kind, message):
    return _error('org.bluez.Error.' + kind, message)


def _mock_error(kind, message):
    return _error('org.bluez.Mock.' + kind, message)


def _root():
    return mockobject.objects['/']


def _bus():
    return _root().connection


def _log(message):
    _root().log(message)


def _emit_added(path, interfaces):
    _root().EmitSignal(OBJECT_MANAGER_IFACE, 'InterfacesAdded', 'oa{sa{sv}}',
                       [dbus.ObjectPath(path), interfaces])


def _emit_removed(path, interfaces):
    _root().EmitSignal(OBJECT_MANAGER_IFACE, 'InterfacesRemoved', 'oas',
                       [dbus.ObjectPath(path), dbus.Array(interfaces, signature='s')])


def _set_props(path, iface, changes, invalidated=()):
    '''Update properties and emit one PropertiesChanged for what changed.'''
    obj = mockobject.objects.get(path)
    if obj is None:
        return
    props = obj.props.setdefault(iface, {})
    changed = {}
    for name, value in changes.items():
        if name in props and props[name] == value and type(props[name]) is type(value):
            continue
        props[name] = value
        changed[name] = value
    gone = [name for name in invalidated if name in props]
    for name in gone:
        del props[name]
    if not changed and not gone:
        return
    obj.EmitSignal(dbus.PROPERTIES_IFACE, 'PropertiesChanged', 'sa{sv}as',
                   [iface, dbus.Dictionary(changed, signature='sv'), dbus.Array(gone, signature='s')])


def _add_object(path, iface, props, methods):
    '''Export an object whose methods are dbus-python methods (so they may
    take sender_keyword and async_callbacks, which dbusmock's own AddMethod
    cannot).'''
    _root().AddObject(path, iface, props, [])
    obj = mockobject.objects[path]
    for fn in methods:
        obj.methods.setdefault(fn._dbus_interface, {})[fn.__name__] = (
            fn._dbus_in_signature, fn._dbus_out_signature, '', fn)
    return obj


def _remove_object(path, interfaces):
    if path not in mockobject.objects:
        return
    _root().RemoveObject(path)
    _emit_removed(path, interfaces)


def _full_uuid(value):
    text = str(value).lower()
    if re.fullmatch(r'[0-9a-f]{4}', text):
        return '0000' + text + BASE_UUID_SUFFIX
    if re.fullmatch(r'[0-9a-f]{8}', text):
        return text + BASE_UUID_SUFFIX
    if re.fullmatch(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', text):
        return text
    return None


def _watch_owner(name):
    '''Forget a client's agent and discovery session when it leaves the bus,
    as bluetoothd does.'''
    if name in owner_watches:
        return

    def changed(_name, _old, new):
        if new:
            return
        match = owner_watches.pop(name, None)
        if match is not None:
            match.remove()
        agents.pop(name, None)
        if default_agent and default_agent[0] == name:
            default_agent.clear()
        for adapter in adapters.values():
            adapter.forget_client(name)
        # as bluetoothd: a client's notification session ends when it leaves the bus
        for device in devices.values():
            if device.notifying and getattr(device, 'notify_client', None) == name:
                device.notifying = False
                device._set_watch(False)  # pylint: disable=protected-access
                if device.gatt:
                    _set_props(device.tx_path, CHRC_IFACE, {'Notifying': dbus.Boolean(False, variant_level=1)})
                _log(f'{device.address}: notifications of {name} stopped: it left the bus')

    owner_watches[name] = _bus().add_signal_receiver(
        changed, signal_name='NameOwnerChanged', dbus_interface='org.freedesktop.DBus',
        bus_name='org.freedesktop.DBus', path='/org/freedesktop/DBus', arg0=name)


# -- adapters -----------------------------------------------------------------


class Adapter:
    def __init__(self, name, path):
        self.name = name
        self.path = path
        self.filters = {}  # client -> {'uuids': [...], 'rssi': n, 'transport': s}
        self.discovering = set()  # clients with a discovery session
        self.advert_timer = 0

    def forget_client(self, client):
        self.filters.pop(client, None)
        if client in self.discovering:
            self.discovering.discard(client)
            self.discovery_changed()

    def accepts(self, device):
        '''Whether some running discovery session would report the device.'''
        for client in self.discovering:
            filt = self.filters.get(client)
            if filt is None:
                return True
            if filt.get('transport') == 'bredr':
                continue
            if filt.get('uuids') and AMULET_SERVICE_UUID not in filt['uuids']:
                continue
            if filt.get('rssi') is not None and device.rssi < filt['rssi']:
                continue
            return True
        return False

    def discovery_changed(self):
        running = bool(self.discovering)
        was_running = bool(mockobject.objects[self.path].props[ADAPTER_IFACE]['Discovering'])
        if running == was_running:
            return
        _set_props(self.path, ADAPTER_IFACE, {'Discovering': dbus.Boolean(running, variant_level=1)})
        if running:
            self.advert_timer = GLib.timeout_add(ADVERT_INTERVAL_MS, self._advert_tick)
            GLib.timeout_add(SCAN_DELAY_MS, self._scan_once)
        else:
            if self.advert_timer:
                GLib.source_remove(self.advert_timer)
                self.advert_timer = 0
            # bluetoothd drops the RSSI of what it found once discovery stops
            for device in devices.values():
                if device.adapter is self and device.visible:
                    _set_props(device.path, DEVICE_IFACE, {}, ['RSSI'])

    def scan(self):
        '''Every device of this adapter advertises once.'''
        if not self.discovering:
            return
        for device in list(devices.values()):
            if device.adapter is self:
                device.advertise()

    def _scan_once(self):
        self.scan()
        return False

    def _advert_tick(self):
        self.scan()
        return True


class AdapterMethods:
    @dbus.service.method(ADAPTER_IFACE, in_signature='', out_signature='', sender_keyword='sender')
    def StartDiscovery(self, sender=None):
        adapter = adapters[self.path.rsplit('/', 1)[1]]
        if sender in adapter.discovering:
            raise _bluez_error('InProgress', 'Operation already in progress')
        _watch_owner(sender)
        adapter.discovering.add(sender)
        adapter.discovery_changed()
        # a new session with another filter may reveal more devices
        GLib.timeout_add(SCAN_DELAY_MS, adapter._scan_once)

    @dbus.service.method(ADAPTER_IFACE, in_signature='', out_signature='', sender_keyword='sender')
    def StopDiscovery(self, sender=None):
        adapter = adapters[self.path.rsplit('/', 1)[1]]
        if sender not in adapter.discovering:
            raise _bluez_error('Failed', 'No discovery started')
        adapter.discovering.discard(sender)
        adapter.discovery_changed()

    @dbus.service.method(ADAPTER_IFACE, in_signature='a{sv}', out_signature='', sender_keyword='sender')
    def SetDiscoveryFilter(self, properties, sender=None):
        adapter = adapters[self.path.rsplit('/', 1)[1]]
        filt = {}
        for key, value in properties.items():
            if key not in DISCOVERY_FILTER_KEYS:
                raise _bluez_error('InvalidArguments', f'Invalid arguments in method call: unknown filter key {key}')
            if key == 'Transport':
                if not isinstance(value, str) or value not in ('auto', 'le', 'bredr'):
                    raise _bluez_error('InvalidArguments',
                                       'Invalid arguments in method call: Transport must be "auto", "le" or "bredr"')
                filt['transport'] = str(value)
            elif key == 'UUIDs':
                if not isinstance(value, dbus.Array) or not all(isinstance(u, str) for u in value):
                    raise _bluez_error('InvalidArguments',
                                       'Invalid arguments in method call: UUIDs must be an array of strings')
                uuids = [_full_uuid(u) for u in value]
                if None in uuids:
                    raise _bluez_error('InvalidArguments', 'Invalid arguments in method call: UUIDs holds a malformed UUID')
                filt['uuids'] = uuids
            elif key == 'RSSI':
                if not isinstance(value, dbus.Int16):
                    raise _bluez_error('InvalidArguments', 'Invalid arguments in method call: RSSI must be an int16')
                filt['rssi'] = int(value)
            elif key == 'Pathloss':
                if not isinstance(value, dbus.UInt16):
                    raise _bluez_error('InvalidArguments', 'Invalid arguments in method call: Pathloss must be a uint16')
                filt['pathloss'] = int(value)
            elif key in ('DuplicateData', 'Discoverable'):
                if not isinstance(value, dbus.Boolean):
                    raise _bluez_error('InvalidArguments', f'Invalid arguments in method call: {key} must be a boolean')
            elif key == 'Pattern':
                if not isinstance(value, str):
                    raise _bluez_error('InvalidArguments', 'Invalid arguments in method call: Pattern must be a string')
        if 'rssi' in filt and 'pathloss' in filt:
            raise _bluez_error('InvalidArguments', 'Invalid arguments in method call: RSSI and Pathloss exclude each other')
        _watch_owner(sender)
        if filt or properties:
            adapter.filters[sender] = filt
        else:
            adapter.filters.pop(sender, None)

    @dbus.service.method(ADAPTER_IFACE, in_signature='', out_signature='as')
    def GetDiscoveryFilters(self):
        return dbus.Array(DISCOVERY_FILTER_KEYS, signature='s')

    @dbus.service.method(ADAPTER_IFACE, in_signature='o', out_signature='')
    def RemoveDevice(self, device_path):
        for device in devices.values():
            if device.path == device_path and device.visible and device.adapter.path == self.path:
                device.teardown('le-connection-abort-by-local')
                device.cancel_pairing('org.bluez.Error.AuthenticationCanceled', 'Pairing canceled: device removed')
                device.paired = False
                device.hide()
                return
        raise _bluez_error('DoesNotExist', 'Does Not Exist')


# -- devices ------------------------------------------------------------------


class Pairing:
    def __init__(self, ok, err, owner, agent_path, passkey):
        self.ok = ok
        self.err = err
        self.owner = owner
        self.agent_path = agent_path
        self.passkey = passkey
        self.timer = 0


class AmuletDevice:  # pylint: disable=too-many-instance-attributes
    def __init__(self, adapter, address, alias, sim_socket, advertise_file):
        self.adapter = adapter
        self.address = address
        self.alias = alias
        self.sim_socket = sim_socket
        self.advertise_file = advertise_file
        self.path = adapter.path + '/dev_' + address.replace(':', '_')
        self.pairing_mode = True
        self.profile = 'band'
        self.acquire_supported = True
        self.mtu = ATT_MTU_DEFAULT
        self.rssi = -60
        self.visible = False
        self.paired = False
        self.conn = None
        self.watch = 0
        self.watch_in = False
        self.resolve_timer = 0
        self.connect_reply = None  # (ok, err) of a Connect waiting for services
        self.gatt = False
        self.write_acquired = False
        self.notify_acquired = False
        self.notifying = False
        self.pairing = None
        self.last_passkey = 0
        self.pairing_result = ''
        self.counters = {name: 0 for name in COUNTERS}

    @property
    def service_path(self):
        return self.path + '/service0010'

    @property
    def rx_path(self):
        return self.service_path + '/char0011'

    @property
    def tx_path(self):
        return self.service_path + '/char0013'

    # advertising

    def advertisement(self):
        '''(pairing_mode, profile) from the simulator's file, else the values
        of SetAdvertisement.'''
        if self.advertise_file:
            try:
                with open(self.advertise_file, encoding='utf-8') as f:
                    data = json.load(f)
                pairing_mode = data['pairing_mode']
                profile = data['profile']
                if isinstance(pairing_mode, bool) and profile in PROFILES:
                    return pairing_mode, profile
                _log(f'{self.advertise_file}: pairing_mode or profile out of range, using SetAdvertisement values')
            except (OSError, ValueError, KeyError, TypeError) as e:
                _log(f'{self.advertise_file}: {e}; using SetAdvertisement values')
        return self.pairing_mode, self.profile

    def service_data(self):
        pairing_mode, profile = self.advertisement()
        flags = ADVERT_FLAG_PAIRING_MODE if pairing_mode else 0
        return dbus.Dictionary({
            AMULET_SERVICE_UUID: dbus.Array([dbus.Byte(flags), dbus.Byte(PROFILES[profile])],
                                            signature='y', variant_level=1),
        }, signature='sv', variant_level=1)

    def advertise(self):
        '''One advertisement heard while discovery runs: appear, or update
        RSSI and ServiceData. A connected device does not advertise.'''
        if self.conn is not None:
            return
        self.rssi = random.randint(*RSSI_RANGE)
        if not self.adapter.accepts(self):
            return
        if not self.visible:
            self.show()
            return
        _set_props(self.path, DEVICE_IFACE, {
            'RSSI': dbus.Int16(self.rssi, variant_level=1),
            'ServiceData': self.service_data(),
        })

    def show(self):
        props = {
            'Address': dbus.String(self.address, variant_level=1),
            'AddressType': dbus.String('random', variant_level=1),
            'Name': dbus.String(self.alias, variant_level=1),
            'Alias': dbus.String(self.alias, variant_level=1),
            'Paired': dbus.Boolean(self.paired, variant_level=1),
            'Bonded': dbus.Boolean(self.paired, variant_level=1),
            'Trusted': dbus.Boolean(False, variant_level=1),
            'Blocked': dbus.Boolean(False, variant_level=1),
            'LegacyPairing': dbus.Boolean(False, variant_level=1),
            'Connected': dbus.Boolean(False, variant_level=1),
            'ServicesResolved': dbus.Boolean(False, variant_level=1),
            'RSSI': dbus.Int16(self.rssi, variant_level=1),
            'UUIDs': dbus.Array([AMULET_SERVICE_UUID], signature='s', variant_level=1),
            'ServiceData': self.service_data(),
            'Adapter': dbus.ObjectPath(self.adapter.path, variant_level=1),
        }
        _add_object(self.path, DEVICE_IFACE, props, [
            DeviceMethods.__dict__[name] for name in
            ('Connect', 'Disconnect', 'Pair', 'CancelPairing', 'ConnectProfile', 'DisconnectProfile')])
        self.visible = True
        _emit_added(self.path, {DEVICE_IFACE: props})

    def hide(self):
        if not self.visible:
            return
        self.visible = False
        _remove_object(self.path, [DEVICE_IFACE])

    # the link

    def connect(self, ok, err):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            sock.connect(self.sim_socket)
        except OSError as e:
            sock.close()
            _log(f'{self.address}: connecting to {self.sim_socket}: {e}')
            raise _bluez_error('Failed', 'le-connection-abort-by-local') from e
        sock.setblocking(False)
        self.conn = sock
        self.counters['connects'] += 1
        self.connect_reply = (ok, err)
        self._set_watch(False)
        _set_props(self.path, DEVICE_IFACE, {'Connected': dbus.Boolean(True, variant_level=1)})
        self.resolve_timer = GLib.timeout_add(RESOLVE_DELAY_MS, self._resolve)

    def _resolve(self):
        self.resolve_timer = 0
        if self.conn is None:
            return False
        self.export_gatt()
        _set_props(self.path, DEVICE_IFACE, {'ServicesResolved': dbus.Boolean(True, variant_level=1)})
        if self.connect_reply is not None:
            ok, _ = self.connect_reply
            self.connect_reply = None
            ok()
        return False

    def export_gatt(self):
        service = {
            'UUID': dbus.String(AMULET_SERVICE_UUID, variant_level=1),
            'Primary': dbus.Boolean(True, variant_level=1),
            'Device': dbus.ObjectPath(self.path, variant_level=1),
            'Includes': dbus.Array([], signature='o', variant_level=1),
            'Handle': dbus.UInt16(0x0010, variant_level=1),
        }
        _add_object(self.service_path, SERVICE_IFACE, service, [])
        _emit_added(self.service_path, {SERVICE_IFACE: service})
        for path, uuid, flags, handle in ((self.rx_path, AMULET_RX_UUID, ['write-without-response'], 0x0011),
                                          (self.tx_path, AMULET_TX_UUID, ['notify'], 0x0013)):
            chrc = {
                'UUID': dbus.String(uuid, variant_level=1),
                'Service': dbus.ObjectPath(self.service_path, variant_level=1),
                'Value': dbus.Array([], signature='y', variant_level=1),
                'Flags': dbus.Array(flags, signature='s', variant_level=1),
                'WriteAcquired': dbus.Boolean(False, variant_level=1),
                'NotifyAcquired': dbus.Boolean(False, variant_level=1),
                'Notifying': dbus.Boolean(False, variant_level=1),
                'MTU': dbus.UInt16(self.mtu, variant_level=1),
                'Handle': dbus.UInt16(handle, variant_level=1),
            }
            _add_object(path, CHRC_IFACE, chrc, [
                ChrcMethods.__dict__[name] for name in
                ('ReadValue', 'WriteValue', 'AcquireWrite', 'AcquireNotify', 'StartNotify', 'StopNotify')])
            _emit_added(path, {CHRC_IFACE: chrc})
        self.gatt = True

    def _set_watch(self, read):
        '''Watch the simulator's end for HUP, and read it too while the
        emulator itself delivers notifications.'''
        if self.watch:
            GLib.source_remove(self.watch)
            self.watch = 0
        if self.conn is None:
            return
        condition = GLib.IOCondition.HUP | GLib.IOCondition.ERR
        if read:
            condition |= GLib.IOCondition.IN
        self.watch_in = read
        self.watch = GLib.io_add_watch(self.conn.fileno(), GLib.PRIORITY_DEFAULT, condition, self._on_io)

    def _on_io(self, _fd, condition):
        if self.conn is None:
            self.watch = 0
            return False
        if self.watch_in and condition & (GLib.IOCondition.IN | GLib.IOCondition.HUP):
            for _ in range(64):
                try:
                    data = self.conn.recv(65536)
                except BlockingIOError:
                    break
                except OSError as e:
                    _log(f'{self.address}: reading the simulator: {e}')
                    data = b''
                if not data:
                    self.watch = 0
                    self.teardown('le-connection-abort-by-remote')
                    return False
                _set_props(self.tx_path, CHRC_IFACE, {'Value': dbus.Array(data, signature='y', variant_level=1)})
            else:
                return True
            if not condition & (GLib.IOCondition.HUP | GLib.IOCondition.ERR):
                return True
        if condition & (GLib.IOCondition.HUP | GLib.IOCondition.ERR):
            _log(f'{self.address}: the simulator closed the link')
            self.watch = 0
            self.teardown('le-connection-abort-by-remote')
            return False
        return True

    def teardown(self, reason):
        '''The link is gone: every holder of the link's descriptors sees
        EOF/HUP, Connected and ServicesResolved go false, the GATT objects
        go away.'''
        if self.conn is None:
            return
        if self.watch:
            GLib.source_remove(self.watch)
            self.watch = 0
        if self.resolve_timer:
            GLib.source_remove(self.resolve_timer)
            self.resolve_timer = 0
        try:
            self.conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()
        self.conn = None
        self.write_acquired = self.notify_acquired = self.notifying = False
        self.counters['disconnects'] += 1
        _log(f'{self.address}: disconnected ({reason})')
        if self.connect_reply is not None:
            _, err = self.connect_reply
            self.connect_reply = None
            err(_bluez_error('Failed', reason))
        _set_props(self.path, DEVICE_IFACE, {
            'ServicesResolved': dbus.Boolean(False, variant_level=1),
            'Connected': dbus.Boolean(False, variant_level=1),
        })
        if self.gatt:
            self.gatt = False
            _remove_object(self.rx_path, [CHRC_IFACE])
            _remove_object(self.tx_path, [CHRC_IFACE])
            _remove_object(self.service_path, [SERVICE_IFACE])

    # pairing

    def finish_pairing(self, error_name=None, message=''):
        pairing = self.pairing
        if pairing is None:
            return None
        self.pairing = None
        if pairing.timer:
            GLib.source_remove(pairing.timer)
        if error_name is None:
            self.paired = True
            _set_props(self.path, DEVICE_IFACE, {
                'Paired': dbus.Boolean(True, variant_level=1),
                'Bonded': dbus.Boolean(True, variant_level=1),
            })
            pairing.ok()
        else:
            pairing.err(_error(error_name, message))
        return pairing

    def cancel_pairing(self, error_name, message):
        '''Ends a pairing in progress and tells its agent to dismiss the
        request.'''
        pairing = self.finish_pairing(error_name, message)
        if pairing is None:
            return False
        _bus().call_async(pairing.owner, pairing.agent_path, AGENT_IFACE, 'Cancel', '', (),
                          lambda *_: None, lambda *_: None)
        return True


def _device_at(path):
    for device in devices.values():
        if device.visible and (path == device.path or path.startswith(device.path + '/')):
            return device
    raise _bluez_error('DoesNotExist', 'Does Not Exist')


class DeviceMethods:
    @dbus.service.method(DEVICE_IFACE, in_signature='', out_signature='', async_callbacks=('ok', 'err'))
    def Connect(self, ok, err):
        device = _device_at(self.path)
        if device.connect_reply is not None:
            raise _bluez_error('InProgress', 'In Progress')
        if device.conn is not None:
            raise _bluez_error('AlreadyConnected', 'Already Connected')
        device.connect(ok, err)

    @dbus.service.method(DEVICE_IFACE, in_signature='', out_signature='')
    def Disconnect(self):
        device = _device_at(self.path)
        if device.conn is None:
            raise _bluez_error('NotConnected', 'Not Connected')
        device.teardown('le-connection-abort-by-local')

    @dbus.service.method(DEVICE_IFACE, in_signature='s', out_signature='')
    def ConnectProfile(self, _uuid):
        raise _bluez_error('NotSupported', 'Operation is not supported')

    @dbus.service.method(DEVICE_IFACE, in_signature='s', out_signature='')
    def DisconnectProfile(self, _uuid):
        raise _bluez_error('NotSupported', 'Operation is not supported')

    @dbus.service.method(DEVICE_IFACE, in_signature='', out_signature='',
                         sender_keyword='sender', async_callbacks=('ok', 'err'))
    def Pair(self, sender=None, ok=None, err=None):
        device = _device_at(self.path)
        device.counters['pairs'] += 1
        if device.paired:
            raise _bluez_error('AlreadyExists', 'Already Exists')
        if device.pairing is not None:
            raise _bluez_error('InProgress', 'In Progress')
        if device.pairing_result:
            raise _error(device.pairing_result, 'Pairing failed (set by SetPairingResult)')
        owner = sender if sender in agents else (default_agent[0] if default_agent else None)
        if owner is None:
            raise _bluez_error('AuthenticationFailed',
                               'no agent: register an org.bluez.Agent1 (RegisterAgent) to confirm the passkey')
        passkey = random.randint(0, 999999)
        device.last_passkey = passkey
        pairing = Pairing(ok, err, owner, agents[owner], passkey)
        device.pairing = pairing
        _log(f'passkey: {passkey:06d}')

        def replied(*_):
            if device.pairing is pairing:
                device.finish_pairing()

        def failed(e):
            if device.pairing is not pairing:
                return
            name = e.get_dbus_name()
            if name == 'org.bluez.Error.Rejected':
                device.finish_pairing('org.bluez.Error.AuthenticationRejected', 'Authentication Rejected')
            elif name == 'org.bluez.Error.Canceled':
                device.finish_pairing('org.bluez.Error.AuthenticationCanceled', 'Authentication Canceled')
            else:
                device.finish_pairing('org.bluez.Error.AuthenticationFailed',
                                      f'Authentication Failed: the agent answered {name}')

        def timed_out():
            if device.pairing is pairing:
                pairing.timer = 0
                device.cancel_pairing('org.bluez.Error.AuthenticationTimeout', 'Authentication Timeout')
            return False

        pairing.timer = GLib.timeout_add_seconds(pairing_timeout_s[0], timed_out)
        _bus().call_async(owner, pairing.agent_path, AGENT_IFACE, 'RequestConfirmation', 'ou',
                          (dbus.ObjectPath(device.path), dbus.UInt32(passkey)), replied, failed,
                          timeout=pairing_timeout_s[0] + 5)

    @dbus.service.method(DEVICE_IFACE, in_signature='', out_signature='')
    def CancelPairing(self):
        device = _device_at(self.path)
        if not device.cancel_pairing('org.bluez.Error.AuthenticationCanceled', 'Authentication Canceled'):
            raise _bluez_error('DoesNotExist', 'Does Not Exist')


# -- GATT -----------------------------------------------------------------------


def _chrc_device(path):
    device = _device_at(path)
    if device.conn is None or not device.gatt:
        raise _bluez_error('NotConnected', 'Not Connected')
    return device, path == device.rx_path


class ChrcMethods:
    @dbus.service.method(CHRC_IFACE, in_signature='a{sv}', out_signature='ay')
    def ReadValue(self, _options):
        _chrc_device(self.path)
        raise _bluez_error('NotPermitted', 'Read not permitted')

    @dbus.service.method(CHRC_IFACE, in_signature='aya{sv}', out_signature='')
    def WriteValue(self, value, options):
        device, is_rx = _chrc_device(self.path)
        if not is_rx:
            raise _bluez_error('NotSupported', 'Operation is not supported: the characteristic is not writable')
        kind = str(options.get('type', 'command'))
        if kind != 'command':
            raise _bluez_error('NotSupported',
                               f'Operation is not supported: write type "{kind}" (the characteristic only '
                               'allows "command", write without response)')
        if device.write_acquired:
            raise _bluez_error('NotPermitted', 'Not permitted: the characteristic is write-acquired')
        if len(value) > device.mtu - ATT_OVERHEAD:
            raise _bluez_error('InvalidValueLength',
                               f'Invalid Length: {len(value)} bytes, at most {device.mtu - ATT_OVERHEAD} fit')
        device.counters['write_value'] += 1
        try:
            device.conn.send(bytes(value))
        except OSError as e:
            raise _bluez_error('Failed', f'Failed to send the write: {e}') from e

    @dbus.service.method(CHRC_IFACE, in_signature='a{sv}', out_signature='hq')
    def AcquireWrite(self, _options):
        device, is_rx = _chrc_device(self.path)
        if not is_rx:
            raise _bluez_error('NotSupported', 'Operation is not supported: the characteristic is not writable')
        if not device.acquire_supported:
            raise _bluez_error('NotSupported', 'Operation is not supported')
        if device.write_acquired:
            raise _bluez_error('NotPermitted', 'Not permitted: already acquired')
        device.counters['acquire_write'] += 1
        device.write_acquired = True
        _set_props(self.path, CHRC_IFACE, {'WriteAcquired': dbus.Boolean(True, variant_level=1)})
        return dbus.types.UnixFd(device.conn.fileno()), dbus.UInt16(device.mtu)

    @dbus.service.method(CHRC_IFACE, in_signature='a{sv}', out_signature='hq')
    def AcquireNotify(self, _options):
        device, is_rx = _chrc_device(self.path)
        if is_rx:
            raise _bluez_error('NotSupported', 'Operation is not supported: the characteristic does not notify')
        if not device.acquire_supported:
            raise _bluez_error('NotSupported', 'Operation is not supported')
        if device.notify_acquired:
            raise _bluez_error('NotPermitted', 'Not permitted: already acquired')
        if device.notifying:
            raise _bluez_error('InProgress', 'In Progress: notifications started with StartNotify')
        device.counters['acquire_notify'] += 1
        device.notify_acquired = True
        _set_props(self.path, CHRC_IFACE, {'NotifyAcquired': dbus.Boolean(True, variant_level=1)})
        return dbus.types.UnixFd(device.conn.fileno()), dbus.UInt16(device.mtu)

    @dbus.service.method(CHRC_IFACE, in_signature='', out_signature='', sender_keyword='sender')
    def StartNotify(self, sender=None):
        device, is_rx = _chrc_device(self.path)
        if is_rx:
            raise _bluez_error('NotSupported', 'Operation is not supported: the characteristic does not notify')
        if device.notify_acquired:
            raise _bluez_error('NotPermitted', 'Not permitted: notifications are acquired')
        if device.notifying:
            return
        device.counters['start_notify'] += 1
        device.notifying = True
        device.notify_client = sender
        _watch_owner(sender)
        device._set_watch(True)  # pylint: disable=protected-access
        _set_props(self.path, CHRC_IFACE, {'Notifying': dbus.Boolean(True, variant_level=1)})

    @dbus.service.method(CHRC_IFACE, in_signature='', out_signature='')
    def StopNotify(self):
        device, is_rx = _chrc_device(self.path)
        if is_rx or not device.notifying:
            raise _bluez_error('Failed', 'No notify session started')
        device.notifying = False
        device._set_watch(False)  # pylint: disable=protected-access
        _set_props(self.path, CHRC_IFACE, {'Notifying': dbus.Boolean(False, variant_level=1)})


# -- AgentManager1 ------------------------------------------------------------


class AgentManagerMethods:
    @dbus.service.method(AGENT_MANAGER_IFACE, in_signature='os', out_signature='', sender_keyword='sender')
    def RegisterAgent(self, agent_path, capability, sender=None):
        if capability not in CAPABILITIES:
            raise _bluez_error('InvalidArguments', f'Invalid arguments in method call: capability "{capability}"')
        if sender in agents:
            raise _bluez_error('AlreadyExists', 'Already Exists')
        _watch_owner(sender)
        agents[sender] = str(agent_path)

    @dbus.service.method(AGENT_MANAGER_IFACE, in_signature='o', out_signature='', sender_keyword='sender')
    def UnregisterAgent(self, agent_path, sender=None):
        if agents.get(sender) != str(agent_path):
            raise _bluez_error('DoesNotExist', 'Does Not Exist')
        del agents[sender]
        if default_agent and default_agent[0] == sender:
            default_agent.clear()

    @dbus.service.method(AGENT_MANAGER_IFACE, in_signature='o', out_signature='', sender_keyword='sender')
    def RequestDefaultAgent(self, agent_path, sender=None):
        if agents.get(sender) != str(agent_path):
            raise _bluez_error('DoesNotExist', 'Does Not Exist')
        default_agent[:] = [sender]


# -- control methods (org.freedesktop.DBus.Mock) ----------------------------


def _device(address):
    device = devices.get(str(address).upper())
    if device is None:
        raise _mock_error('NoSuchDevice', f'no Amulet device {address}: add it with AddAmuletDevice first')
    return device


@dbus.service.method(MOCK_IFACE, in_signature='ss', out_signature='o')
def AddAdapter(_self, device_name, system_name):
    '''Adds a powered adapter /org/bluez/DEVICE_NAME; returns its path.'''
    match = re.fullmatch(r'hci(\d+)', device_name)
    if match is None:
        raise _mock_error('InvalidArguments', f'adapter name "{device_name}" is not hciN')
    if device_name in adapters:
        raise _mock_error('AlreadyExists', f'adapter {device_name} exists already')
    index = int(match.group(1))
    path = BLUEZ_PATH + '/' + device_name
    props = {
        'Address': dbus.String(f'00:1A:7D:DA:71:{index % 256:02X}', variant_level=1),
        'AddressType': dbus.String('public', variant_level=1),
        'Name': dbus.String(system_name, variant_level=1),
        'Alias': dbus.String(system_name, variant_level=1),
        'Class': dbus.UInt32(0x6c010c, variant_level=1),
        'Powered': dbus.Boolean(True, variant_level=1),
        'Discoverable': dbus.Boolean(False, variant_level=1),
        'DiscoverableTimeout': dbus.UInt32(180, variant_level=1),
        'Pairable': dbus.Boolean(True, variant_level=1),
        'PairableTimeout': dbus.UInt32(0, variant_level=1),
        'Discovering': dbus.Boolean(False, variant_level=1),
        'UUIDs': dbus.Array(['00001800' + BASE_UUID_SUFFIX, '00001801' + BASE_UUID_SUFFIX],
                            signature='s', variant_level=1),
        'Modalias': dbus.String('usb:v1D6Bp0246d0548', variant_level=1),
        'Roles': dbus.Array(['central', 'peripheral'], signature='s', variant_level=1),
    }
    _add_object(path, ADAPTER_IFACE, props, [
        AdapterMethods.__dict__[name] for name in
        ('StartDiscovery', 'StopDiscovery', 'SetDiscoveryFilter', 'GetDiscoveryFilters', 'RemoveDevice')])
    adapters[device_name] = Adapter(device_name, path)
    _emit_added(path, {ADAPTER_IFACE: props})
    return dbus.ObjectPath(path)


@dbus.service.method(MOCK_IFACE, in_signature='sssss', out_signature='o')
def AddAmuletDevice(_self, adapter_name, address, alias, sim_socket, advertise_file):
    '''Registers a device bridged to amulet-sim at SIM_SOCKET; it appears
    once discovery runs on its adapter. Returns the path it will have.'''
    adapter = adapters.get(str(adapter_name))
    if adapter is None:
        raise _mock_error('NoSuchAdapter', f'no adapter {adapter_name}: add it with AddAdapter first')
    address = str(address).upper()
    if not re.fullmatch(r'([0-9A-F]{2}:){5}[0-9A-F]{2}', address):
        raise _mock_error('InvalidArguments', f'"{address}" is not a Bluetooth address (AA:BB:CC:DD:EE:FF)')
    if address in devices:
        raise _mock_error('AlreadyExists', f'device {address} exists already')
    device = AmuletDevice(adapter, address, str(alias), str(sim_socket), str(advertise_file))
    devices[address] = device
    if adapter.discovering:
        GLib.timeout_add(SCAN_DELAY_MS, adapter._scan_once)  # pylint: disable=protected-access
    return dbus.ObjectPath(device.path)


@dbus.service.method(MOCK_IFACE, in_signature='s', out_signature='')
def RemoveAmuletDevice(_self, address):
    '''The device goes out of range: its link drops and Device1 goes away.'''
    device = _device(address)
    device.teardown('le-connection-abort-by-remote')
    device.cancel_pairing('org.bluez.Error.AuthenticationFailed', 'Authentication Failed: the device went away')
    device.hide()
    del devices[device.address]


@dbus.service.method(MOCK_IFACE, in_signature='sbs', out_signature='')
def SetAdvertisement(_self, address, pairing_mode, profile):
    '''What the device advertises when it has no advertise file.'''
    device = _device(address)
    if profile not in PROFILES:
        raise _mock_error('InvalidArguments', f'profile "{profile}" is not one of band, watch, toy')
    device.pairing_mode = bool(pairing_mode)
    device.profile = str(profile)
    if device.visible:
        _set_props(device.path, DEVICE_IFACE, {'ServiceData': device.service_data()})


@dbus.service.method(MOCK_IFACE, in_signature='s', out_signature='')
def EmitAdvertisement(_self, address):
    '''The device advertises now (if discovery runs): appears, or updates
    RSSI and ServiceData, without waiting for the periodic advertisement.'''
    device = _device(address)
    if device.adapter.discovering:
        device.advertise()


@dbus.service.method(MOCK_IFACE, in_signature='sb', out_signature='')
def SetAcquireSupported(_self, address, supported):
    '''When false, AcquireWrite/AcquireNotify fail with NotSupported.'''
    _device(address).acquire_supported = bool(supported)


@dbus.service.method(MOCK_IFACE, in_signature='sq', out_signature='')
def SetMtu(_self, address, mtu):
    '''The ATT MTU of the next connection (23..517).'''
    if not ATT_MTU_MIN <= mtu <= ATT_MTU_DEFAULT:
        raise _mock_error('InvalidArguments', f'MTU {mtu} is outside {ATT_MTU_MIN}..{ATT_MTU_DEFAULT}')
    _device(address).mtu = int(mtu)


@dbus.service.method(MOCK_IFACE, in_signature='s', out_signature='')
def DropConnection(_self, address):
    '''The radio link drops.'''
    device = _device(address)
    if device.conn is None:
        raise _mock_error('NotConnected', f'device {address} is not connected')
    device.teardown('le-connection-abort-by-remote')


@dbus.service.method(MOCK_IFACE, in_signature='s', out_signature='u')
def GetLastPasskey(_self, address):
    '''The passkey of the last Pair (0 before any).'''
    return dbus.UInt32(_device(address).last_passkey)


@dbus.service.method(MOCK_IFACE, in_signature='ss', out_signature='')
def SetPairingResult(_self, address, result):
    '''"" pairs normally; an error name makes every Pair fail with it.'''
    if result and not re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+', result):
        raise _mock_error('InvalidArguments', f'"{result}" is not a D-Bus error name')
    _device(address).pairing_result = str(result)


@dbus.service.method(MOCK_IFACE, in_signature='u', out_signature='')
def SetPairingTimeout(_self, seconds):
    '''How long Pair waits for the agent (default 30 s).'''
    if seconds < 1:
        raise _mock_error('InvalidArguments', 'the pairing timeout is at least 1 second')
    pairing_timeout_s[0] = int(seconds)


@dbus.service.method(MOCK_IFACE, in_signature='s', out_signature='a{su}')
def GetCounters(_self, address):
    '''How often each path was used: connects, disconnects, acquire_write,
    acquire_notify, write_value, start_notify, pairs.'''
    return dbus.Dictionary({k: dbus.UInt32(v) for k, v in _device(address).counters.items()}, signature='su')


CONTROL_METHODS = ['AddAdapter', 'AddAmuletDevice', 'RemoveAmuletDevice', 'SetAdvertisement', 'EmitAdvertisement',
                   'SetAcquireSupported', 'SetMtu', 'DropConnection', 'GetLastPasskey', 'SetPairingResult',
                   'SetPairingTimeout', 'GetCounters']


def _watch_pid(pid, bus_pid, bus_socket):
    '''Stop the emulator (and its bus) once the process that started it is
    gone, so a killed test run leaves nothing behind.'''
    def check():
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            pass
        except PermissionError:
            return True
        _log(f'process {pid} is gone: stopping')
        if bus_pid:
            try:
                os.kill(bus_pid, 15)
            except OSError:
                pass
        if bus_socket:
            try:
                os.unlink(bus_socket)
            except OSError:
                pass
        os._exit(0)  # pylint: disable=protected-access

    GLib.timeout_add(500, check)


def load(mock, parameters):
    mock.AddObject(BLUEZ_PATH, AGENT_MANAGER_IFACE, {}, [])
    bluez = mockobject.objects[BLUEZ_PATH]
    for name in ('RegisterAgent', 'UnregisterAgent', 'RequestDefaultAgent'):
        fn = AgentManagerMethods.__dict__[name]
        bluez.methods.setdefault(AGENT_MANAGER_IFACE, {})[name] = (fn._dbus_in_signature, fn._dbus_out_signature,
                                                                  '', fn)
    # the control methods answer on /org/bluez as well as on /
    for name in CONTROL_METHODS:
        bluez.methods.setdefault(MOCK_IFACE, {})[name] = mock.methods[MOCK_IFACE][name]
    if parameters.get('exit_with'):
        _watch_pid(int(parameters['exit_with']), int(parameters.get('bus_pid', 0)),
                   str(parameters.get('bus_socket', '')))
