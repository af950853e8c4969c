/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "amu-bluez.h"
#include "amulet/amu-error.h"

G_BEGIN_DECLS

/* What scanning (amu-bluez-scan.c), the pairing agent (amu-bluez-agent.c),
 * the GATT link (amu-link-bluez.c) and connecting (amu-bluez-connect.c)
 * share: bluetoothd's names; the helpers for its calls, errors, ObjectManager
 * listings and adapters, in amu-bluez-scan.c; the steps a scan and a connect
 * both take, in amu-bluez-op.c; the link's calls for connecting. */

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
/* The Device1 properties (transfer full) of an InterfacesAdded signal's
 * @parameters that add a device below @adapter_path, its object path in
 * @path (pointing into @parameters); NULL for anything else. */
GVariant *amu_bluez_added_device(GVariant *parameters, const char *adapter_path, const char **path);
/* The changed properties (a{sv}, transfer full) of a PropertiesChanged
 * signal's @parameters for @interface; NULL for another interface. */
GVariant *amu_bluez_changed_properties(GVariant *parameters, const char *interface);

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
/* The paths of the objects with @interface below @parent (NULL: anywhere)
 * in @objects, sorted; they point into @objects. */
GPtrArray *amu_bluez_objects_find(GVariant *objects, const char *interface, const char *parent);

/* ------------------------------------------------------------ operations */

/* A scan and a connect are GTasks whose task data starts with an
 * AmuBluezOp. Both get the system bus, list bluetoothd's objects, pick an
 * adapter, may run discovery and wait for bluetoothd's signals under a timer
 * and the task's cancellable; the amu_bluez_op_*() helpers do these steps
 * and end the task through amu_bluez_op_fail() on any error. */

typedef void (*AmuBluezObjectsFunc)(GTask *task, GVariant *objects);
/* The reply of a call, or NULL with @error */
typedef void (*AmuBluezReplyFunc)(GTask *task, GVariant *reply, const GError *error);

typedef struct {
	/* the error that ends the operation when it is cancelled */
	GError *(*cancelled_error)(GTask *task);
	/* runs once the bus is there, before the first listing: signals
	 * subscribed here miss nothing that happens after it */
	void (*subscribe)(GTask *task);
	/* the first listing (a{oa{sa{sv}}}); the adapter asked for, or with
	 * @pick_adapter the first powered one, is in adapter_path already */
	AmuBluezObjectsFunc listed;
	gboolean pick_adapter;
	/* the timer of amu_bluez_op_wait() ran out */
	void (*timed_out)(GTask *task);
	/* undoes what the operation set up, once it ends (nullable) */
	void (*cleanup)(gpointer data);
} AmuBluezOpClass;

typedef struct {
	const AmuBluezOpClass *klass;
	GDBusConnection *bus;
	char *adapter; /* as asked, nullable */
	char *adapter_path;
	GSource *timer;
	GSource *cancel_source;
	gboolean discovering; /* we started discovery and have to stop it */
	gboolean done;
} AmuBluezOp;

/* A task for an operation: @op starts its data, which @free_data frees;
 * the task's errors are AMU_ERRORs, AMU_ERROR_CANCELLED included. */
GTask *amu_bluez_op_task_new(AmuBluezOp *op, const AmuBluezOpClass *klass, GDestroyNotify free_data,
			     gpointer source_tag, GCancellable *cancellable,
			     GAsyncReadyCallback callback, gpointer user_data);
/* Gets the system bus, subscribes, lists the objects and picks the adapter
 * (see AmuBluezOpClass). */
void amu_bluez_op_start(GTask *task);
/* The result of an operation's task */
gpointer amu_bluez_op_finish(GAsyncResult *result, GError **error);
/* A call to bluetoothd under the task's cancellable; @func gets the reply. */
void amu_bluez_op_call(GTask *task, const char *path, const char *interface, const char *method,
		       GVariant *parameters, const char *reply_type, int timeout_ms,
		       AmuBluezReplyFunc func);
/* GetManagedObjects; @func gets the a{oa{sa{sv}}} unless the operation
 * ended meanwhile. */
void amu_bluez_op_list_objects(GTask *task, AmuBluezObjectsFunc func);
/* Sets adapter_path to the adapter asked for (NULL: the first powered
 * one); FALSE if there is none, with the operation failed. */
gboolean amu_bluez_op_pick_adapter(GTask *task, GVariant *objects);
/* SetDiscoveryFilter (LE; with @amulet_only the Amulet service only) on
 * adapter_path, then StartDiscovery, whose reply goes to @started; a failed
 * filter ends the operation with @what in front of the error. */
void amu_bluez_op_start_discovery(GTask *task, gboolean amulet_only, const char *what,
				  AmuBluezReplyFunc started);
/* StopDiscovery, not under the task's cancellable (it has to reach
 * bluetoothd whatever becomes of the task); @func gets the reply. */
void amu_bluez_op_end_discovery(GTask *task, AmuBluezReplyFunc func);
/* Waits for bluetoothd's signals for at most @timeout_ms (then the class's
 * timed_out), or until the task's cancellable fires. */
void amu_bluez_op_wait(GTask *task, guint timeout_ms);
void amu_bluez_op_stop_waiting(AmuBluezOp *op);
/* StopDiscovery if we started it */
void amu_bluez_op_stop_discovery(AmuBluezOp *op);
/* Ends the operation with @error (taken), or drops @error if it has ended;
 * later events are ignored. */
void amu_bluez_op_fail(GTask *task, GError *error);
/* Ends the operation with @result. */
void amu_bluez_op_return(GTask *task, gpointer result, GDestroyNotify result_destroy);
/* Frees what @op holds (not @op) */
void amu_bluez_op_clear(AmuBluezOp *op);

/* ------------------------------------------------------------ link */

#define ATT_MTU_MIN 23
#define ATT_MTU_MAX 517

/* A link on the device's characteristics, watching the device; I/O starts
 * with amu_link_bluez_start_acquired() or, after amu_link_bluez_watch_value(),
 * once StartNotify succeeded (amu_link_bluez_set_notifying()). */
AmuLink *amu_link_bluez_new(GDBusConnection *bus, const char *adapter, const char *address,
			    const char *device_path, const char *rx_path, const char *tx_path);
/* The sockets of AcquireWrite and AcquireNotify (taken) */
void amu_link_bluez_start_acquired(AmuLink *link, int write_fd, int notify_fd, uint16_t att_mtu);
/* The fallback: WriteValue out, Value notifications in */
void amu_link_bluez_watch_value(AmuLink *link, uint16_t att_mtu);
/* StartNotify succeeded: StopNotify at close */
void amu_link_bluez_set_notifying(AmuLink *link);

/* ------------------------------------------------------------ agent */

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
/* AgentManager1.RegisterAgent with capability "DisplayYesNo" for the
 * operation @task (see amu_bluez_op_call()) */
void amu_bluez_agent_register(AmuBluezAgent *agent, GTask *task, AmuBluezReplyFunc func);
/* AgentManager1.UnregisterAgent of the agent at @agent_path, ignoring the
 * outcome. */
void amu_bluez_agent_unregister(GDBusConnection *bus, const char *agent_path);
/* The pairing is over: refuse later requests and cancel an open one. */
void amu_bluez_agent_stop(AmuBluezAgent *agent);
/* TRUE if the user answered the last request with no. */
gboolean amu_bluez_agent_user_rejected(AmuBluezAgent *agent);

G_END_DECLS
