/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-bluez-private.h"

/* Link-layer pairing: AmuBluezPasskey, and the org.bluez.Agent1 object that
 * answers bluetoothd's requests (RequestConfirmation, Cancel, Release, ...)
 * while one Device1.Pair call runs, with its registration at AgentManager1
 * (which runs on the operations of amu-bluez-op.c). */

/* ------------------------------------------------------------ passkey */

struct AmuBluezPasskey {
	int ref_count;
	guint32 value;
	char *address;
	GDBusMethodInvocation *invocation; /* until answered or withdrawn */
	gboolean cancelled;
	gboolean answered;
	gboolean accepted;
};

static AmuBluezPasskey *
passkey_new(guint32 value, const char *address, GDBusMethodInvocation *invocation)
{
	AmuBluezPasskey *passkey = g_new0(AmuBluezPasskey, 1);

	passkey->ref_count = 1;
	passkey->value = value;
	passkey->address = g_strdup(address);
	/* the agent's method handler owns the invocation: it passes it on */
	passkey->invocation = invocation;
	return passkey;
}

AmuBluezPasskey *
amu_bluez_passkey_ref(AmuBluezPasskey *passkey)
{
	g_return_val_if_fail(passkey != NULL, NULL);
	passkey->ref_count++;
	return passkey;
}

static void
passkey_withdraw(AmuBluezPasskey *passkey, const char *error_name, const char *message)
{
	GDBusMethodInvocation *invocation = g_steal_pointer(&passkey->invocation);

	if (invocation != NULL)
		g_dbus_method_invocation_return_dbus_error(invocation, error_name, message);
}

void
amu_bluez_passkey_unref(AmuBluezPasskey *passkey)
{
	if (passkey == NULL || --passkey->ref_count > 0)
		return;
	/* nobody can answer any more: an unanswered request is a no */
	passkey_withdraw(passkey, "org.bluez.Error.Rejected", "the passkey was not confirmed");
	g_free(passkey->address);
	g_free(passkey);
}

guint32
amu_bluez_passkey_get_value(AmuBluezPasskey *passkey)
{
	g_return_val_if_fail(passkey != NULL, 0);
	return passkey->value;
}

const char *
amu_bluez_passkey_get_address(AmuBluezPasskey *passkey)
{
	g_return_val_if_fail(passkey != NULL, NULL);
	return passkey->address;
}

gboolean
amu_bluez_passkey_is_cancelled(AmuBluezPasskey *passkey)
{
	g_return_val_if_fail(passkey != NULL, FALSE);
	return passkey->cancelled;
}

void
amu_bluez_passkey_reply(AmuBluezPasskey *passkey, gboolean accept)
{
	GDBusMethodInvocation *invocation;

	g_return_if_fail(passkey != NULL);
	if (passkey->answered || passkey->cancelled || passkey->invocation == NULL)
		return;
	passkey->answered = TRUE;
	passkey->accepted = accept;
	invocation = g_steal_pointer(&passkey->invocation);
	if (accept)
		g_dbus_method_invocation_return_value(invocation, NULL);
	else
		g_dbus_method_invocation_return_dbus_error(invocation, "org.bluez.Error.Rejected",
							   "the passkey was rejected by the user");
}

static void
passkey_cancel(AmuBluezPasskey *passkey)
{
	if (passkey->answered || passkey->cancelled)
		return;
	passkey->cancelled = TRUE;
	passkey_withdraw(passkey, "org.bluez.Error.Canceled", "the request was cancelled");
}

/* ------------------------------------------------------------ agent */

static const char agent_xml[] =
	"<node>"
	" <interface name='org.bluez.Agent1'>"
	"  <method name='Release'/>"
	"  <method name='RequestPinCode'>"
	"   <arg type='o' name='device' direction='in'/>"
	"   <arg type='s' name='pincode' direction='out'/>"
	"  </method>"
	"  <method name='DisplayPinCode'>"
	"   <arg type='o' name='device' direction='in'/>"
	"   <arg type='s' name='pincode' direction='in'/>"
	"  </method>"
	"  <method name='RequestPasskey'>"
	"   <arg type='o' name='device' direction='in'/>"
	"   <arg type='u' name='passkey' direction='out'/>"
	"  </method>"
	"  <method name='DisplayPasskey'>"
	"   <arg type='o' name='device' direction='in'/>"
	"   <arg type='u' name='passkey' direction='in'/>"
	"   <arg type='q' name='entered' direction='in'/>"
	"  </method>"
	"  <method name='RequestConfirmation'>"
	"   <arg type='o' name='device' direction='in'/>"
	"   <arg type='u' name='passkey' direction='in'/>"
	"  </method>"
	"  <method name='RequestAuthorization'>"
	"   <arg type='o' name='device' direction='in'/>"
	"  </method>"
	"  <method name='AuthorizeService'>"
	"   <arg type='o' name='device' direction='in'/>"
	"   <arg type='s' name='uuid' direction='in'/>"
	"  </method>"
	"  <method name='Cancel'/>"
	" </interface>"
	"</node>";

/* The agent object on the bus while one Pair call runs. bluetoothd asks the
 * agent of the connection that called Pair, so no default agent is needed. */
struct AmuBluezAgent {
	int ref_count;
	char *path;
	char *device_path;
	char *address;
	AmuBluezPasskeyFunc func; /* NULL once the pairing is over */
	gpointer func_data;
	AmuBluezPasskey *passkey; /* the last request */
	gboolean released;
};

static AmuBluezAgent *
agent_ref(AmuBluezAgent *agent)
{
	agent->ref_count++;
	return agent;
}

void
amu_bluez_agent_unref(AmuBluezAgent *agent)
{
	if (agent == NULL || --agent->ref_count > 0)
		return;
	amu_bluez_passkey_unref(agent->passkey);
	g_free(agent->path);
	g_free(agent->device_path);
	g_free(agent->address);
	g_free(agent);
}

static void
agent_method_call(GDBusConnection *bus, const char *sender, const char *object_path,
		  const char *interface, const char *method, GVariant *parameters,
		  GDBusMethodInvocation *invocation, gpointer user_data)
{
	AmuBluezAgent *agent = user_data;
	const char *device_path = NULL;
	guint32 value = 0;

	if (strcmp(method, "Release") == 0 || strcmp(method, "Cancel") == 0) {
		if (agent->passkey != NULL)
			passkey_cancel(agent->passkey);
		if (strcmp(method, "Release") == 0)
			agent->released = TRUE;
		g_dbus_method_invocation_return_value(invocation, NULL);
		return;
	}
	if (strcmp(method, "DisplayPasskey") == 0 || strcmp(method, "DisplayPinCode") == 0) {
		/* only for legacy or passkey-entry pairing, which the bond we
		 * want does not use; nothing to show */
		g_dbus_method_invocation_return_value(invocation, NULL);
		return;
	}
	if (strcmp(method, "RequestConfirmation") != 0) {
		/* PIN codes, passkey entry and authorizations are not how an
		 * Amulet device bonds: refuse them */
		g_dbus_method_invocation_return_dbus_error(invocation, "org.bluez.Error.Rejected",
							   "Amulet bonds with numeric comparison only");
		return;
	}
	g_variant_get(parameters, "(&ou)", &device_path, &value);
	if (agent->func == NULL || strcmp(device_path, agent->device_path) != 0 || value > 999999) {
		g_dbus_method_invocation_return_dbus_error(invocation, "org.bluez.Error.Rejected",
							   "no pairing with this device was asked for");
		return;
	}
	if (agent->passkey != NULL) {
		passkey_cancel(agent->passkey);
		amu_bluez_passkey_unref(agent->passkey);
	}
	agent->passkey = passkey_new(value, agent->address, invocation);
	agent_ref(agent);
	agent->func(agent->passkey, agent->func_data);
	amu_bluez_agent_unref(agent);
}

static const GDBusInterfaceVTable agent_vtable = {
	.method_call = agent_method_call,
};

/* ------------------------------------------------------------ registration */

AmuBluezAgent *
amu_bluez_agent_new(const char *device_path, const char *address, AmuBluezPasskeyFunc func,
		    gpointer func_data)
{
	static guint agent_counter;
	AmuBluezAgent *agent = g_new0(AmuBluezAgent, 1);

	agent->ref_count = 1;
	agent->path = g_strdup_printf("/org/amulet/agent%u", g_atomic_int_add(&agent_counter, 1));
	agent->device_path = g_strdup(device_path);
	agent->address = g_strdup(address);
	agent->func = func;
	agent->func_data = func_data;
	return agent;
}

const char *
amu_bluez_agent_get_path(AmuBluezAgent *agent)
{
	return agent->path;
}

guint
amu_bluez_agent_export(AmuBluezAgent *agent, GDBusConnection *bus, GError **error)
{
	g_autoptr(GDBusNodeInfo) node = g_dbus_node_info_new_for_xml(agent_xml, NULL);

	return g_dbus_connection_register_object(bus, agent->path, node->interfaces[0],
						 &agent_vtable, agent_ref(agent),
						 (GDestroyNotify)amu_bluez_agent_unref, error);
}

void
amu_bluez_agent_register(AmuBluezAgent *agent, GTask *task, AmuBluezReplyFunc func)
{
	amu_bluez_op_call(task, BLUEZ_ROOT, IFACE_AGENT_MANAGER, "RegisterAgent",
			  g_variant_new("(os)", agent->path, "DisplayYesNo"), NULL, CALL_TIMEOUT_MS,
			  func);
}

void
amu_bluez_agent_unregister(GDBusConnection *bus, const char *agent_path)
{
	amu_bluez_call_ignore(bus, BLUEZ_ROOT, IFACE_AGENT_MANAGER, "UnregisterAgent",
			      g_variant_new("(o)", agent_path));
}

void
amu_bluez_agent_stop(AmuBluezAgent *agent)
{
	agent->func = NULL;
	if (agent->passkey != NULL)
		passkey_cancel(agent->passkey);
}

gboolean
amu_bluez_agent_user_rejected(AmuBluezAgent *agent)
{
	return agent->passkey != NULL && agent->passkey->answered && !agent->passkey->accepted;
}
