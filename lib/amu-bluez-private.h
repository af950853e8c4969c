/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "amu-bluez.h"
#include "amulet/amu-error.h"

G_BEGIN_DECLS

/* What scanning (amu-bluez-scan.c), the pairing agent (amu-bluez-agent.c)
 * and the GATT link (amu-link-bluez.c) share: bluetoothd's names, and the
 * helpers for its calls, errors and ObjectManager listings, which live in
 * amu-bluez-scan.c. */

#define BLUEZ_NAME "org.bluez"
#define BLUEZ_ROOT "/org/bluez"
#define IFACE_OBJECT_MANAGER "org.freedesktop.DBus.ObjectManager"
#define IFACE_PROPERTIES "org.freedesktop.DBus.Properties"
#define IFACE_ADAPTER "org.bluez.Adapter1"
#define IFACE_DEVICE "org.bluez.Device1"
#define IFACE_SERVICE "org.bluez.GattService1"
#define IFACE_CHARACTERISTIC "org.bluez.GattCharacteristic1"
#define IFACE_AGENT_MANAGER "org.bluez.AgentManager1"
#define IFACE_AGENT "org.bluez.Agent1"

/* an ordinary call to bluetoothd */
#define CALL_TIMEOUT_MS 10000

/* "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF" -> "hci0" */
char *amu_bluez_adapter_name_from_path(const char *path);
gboolean amu_bluez_path_is_below(const char *path, const char *parent);

/* An AMU_ERROR for a failed call to bluetoothd (@code unless a more
 * telling one applies); TRUE from _is() if BlueZ answered with @name. */
GError *amu_bluez_error(const GError *error, AmuError code, const char *what);
gboolean amu_bluez_error_is(const GError *error, const char *name);

/* A cleanup call whose outcome changes nothing */
void amu_bluez_call_ignore(GDBusConnection *bus, const char *path, const char *interface,
			   const char *method, GVariant *parameters);

/* The a{sv} of @interface on @path in @objects (a{oa{sa{sv}}}), or NULL. */
GVariant *amu_bluez_objects_lookup(GVariant *objects, const char *path, const char *interface);
gboolean amu_bluez_props_get_bool(GVariant *properties, const char *name);
/* for g_ptr_array_sort() of strings */
gint amu_bluez_compare_strings(gconstpointer a, gconstpointer b);

/* The object path of @adapter (NULL: the first powered one) */
char *amu_bluez_select_adapter(GVariant *objects, const char *adapter, GError **error);

/* The (a{sv}) of SetDiscoveryFilter: LE, and with @amulet_only the Amulet
 * service only. */
GVariant *amu_bluez_discovery_filter(gboolean amulet_only);

/* The pairing agent, an org.bluez.Agent1 object */
typedef struct AmuBluezAgent AmuBluezAgent;

/* An agent that passes confirmation requests for @device_path to @func
 * (NULL: every request is refused); its object path is unique in the
 * process. */
AmuBluezAgent *amu_bluez_agent_new(const char *device_path, const char *address,
				   AmuBluezPasskeyFunc func, gpointer func_data);
void amu_bluez_agent_unref(AmuBluezAgent *agent);
const char *amu_bluez_agent_get_path(AmuBluezAgent *agent);
/* Exports @agent on @bus; the registration id for
 * g_dbus_connection_unregister_object(), or 0 with @error set. */
guint amu_bluez_agent_export(AmuBluezAgent *agent, GDBusConnection *bus, GError **error);
/* AgentManager1.RegisterAgent with capability "DisplayYesNo"; @callback
 * finishes it with g_dbus_connection_call_finish(). */
void amu_bluez_agent_register(AmuBluezAgent *agent, GDBusConnection *bus,
			      GCancellable *cancellable, GAsyncReadyCallback callback,
			      gpointer user_data);
/* AgentManager1.UnregisterAgent of the agent at @agent_path, ignoring the
 * outcome. */
void amu_bluez_agent_unregister(GDBusConnection *bus, const char *agent_path);
/* The pairing is over: refuse later requests and cancel an open one. */
void amu_bluez_agent_stop(AmuBluezAgent *agent);
/* TRUE if the user answered the last request with no. */
gboolean amu_bluez_agent_user_rejected(AmuBluezAgent *agent);

G_END_DECLS
