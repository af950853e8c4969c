/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-bluez-private.h"

/* The operations (amu_bluez_op_*()): the steps a scan and a connect share
 * with bluetoothd (the bus, its objects, the adapter, discovery, calls with
 * timeouts, cancellation and ending the task), each error made in one
 * place. The pairing agent's registration runs on them too. */

/* ------------------------------------------------------------ operations */

void
amu_bluez_op_stop_waiting(AmuBluezOp *op)
{
	if (op->timer != NULL) {
		g_source_destroy(op->timer);
		g_clear_pointer(&op->timer, g_source_unref);
	}
	if (op->cancel_source != NULL) {
		g_source_destroy(op->cancel_source);
		g_clear_pointer(&op->cancel_source, g_source_unref);
	}
}

void
amu_bluez_op_stop_discovery(AmuBluezOp *op)
{
	if (op->discovering && op->bus != NULL && !g_dbus_connection_is_closed(op->bus))
		amu_bluez_call_ignore(op->bus, op->adapter_path, IFACE_ADAPTER, "StopDiscovery",
				      NULL);
	op->discovering = FALSE;
}

void
amu_bluez_op_clear(AmuBluezOp *op)
{
	amu_bluez_op_stop_waiting(op);
	amu_bluez_op_stop_discovery(op);
	g_clear_object(&op->bus);
	g_clear_pointer(&op->adapter, g_free);
	g_clear_pointer(&op->adapter_path, g_free);
}

/* The timer and the cancel source hold refs on the task: the caller holds
 * one of its own while they go. */
static void
op_end(AmuBluezOp *op)
{
	op->done = TRUE;
	amu_bluez_op_stop_waiting(op);
	if (op->klass->cleanup != NULL)
		op->klass->cleanup(op);
}

void
amu_bluez_op_fail(GTask *task, GError *error)
{
	AmuBluezOp *op = g_task_get_task_data(task);

	if (op->done) {
		g_error_free(error);
		return;
	}
	g_object_ref(task);
	op_end(op);
	g_task_return_error(task, error);
	g_object_unref(task);
}

void
amu_bluez_op_return(GTask *task, gpointer result, GDestroyNotify result_destroy)
{
	g_object_ref(task);
	op_end(g_task_get_task_data(task));
	g_task_return_pointer(task, result, result_destroy);
	g_object_unref(task);
}

static gboolean
op_timer_cb(gpointer user_data)
{
	GTask *task = user_data;
	AmuBluezOp *op = g_task_get_task_data(task);

	g_clear_pointer(&op->timer, g_source_unref);
	if (!op->done)
		op->klass->timed_out(task);
	return G_SOURCE_REMOVE;
}

static gboolean
op_cancelled_cb(GCancellable *cancellable, gpointer user_data)
{
	GTask *task = user_data;
	AmuBluezOp *op = g_task_get_task_data(task);

	g_clear_pointer(&op->cancel_source, g_source_unref);
	amu_bluez_op_fail(task, op->klass->cancelled_error(task));
	return G_SOURCE_REMOVE;
}

void
amu_bluez_op_wait(GTask *task, guint timeout_ms)
{
	AmuBluezOp *op = g_task_get_task_data(task);
	GCancellable *cancellable = g_task_get_cancellable(task);

	amu_bluez_op_stop_waiting(op);
	op->timer = g_timeout_source_new(timeout_ms);
	g_source_set_callback(op->timer, op_timer_cb, g_object_ref(task), g_object_unref);
	g_source_attach(op->timer, g_main_context_get_thread_default());
	if (cancellable != NULL) {
		op->cancel_source = g_cancellable_source_new(cancellable);
		g_source_set_callback(op->cancel_source, G_SOURCE_FUNC(op_cancelled_cb),
				      g_object_ref(task), g_object_unref);
		g_source_attach(op->cancel_source, g_main_context_get_thread_default());
	}
}

/* A call of an operation: its reply goes to @replied, which may go on with
 * @func, @listed or @what. */
typedef struct OpStep OpStep;
typedef void (*OpStepFunc)(OpStep *step, GVariant *reply, const GError *error);

struct OpStep {
	GTask *task;
	OpStepFunc replied;
	AmuBluezReplyFunc func;
	AmuBluezObjectsFunc listed;
	char *what;
};

static OpStep *
op_step_new(GTask *task, OpStepFunc replied)
{
	OpStep *step = g_new0(OpStep, 1);

	step->task = g_object_ref(task);
	step->replied = replied;
	return step;
}

static void
op_step_free(OpStep *step)
{
	g_object_unref(step->task);
	g_free(step->what);
	g_free(step);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(OpStep, op_step_free)

static void
op_step_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(OpStep) step = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);

	step->replied(step, reply, error);
}

/* @step (taken) gets the reply; a NULL @cancellable lets the call run to
 * its end whatever becomes of the operation. */
static void
op_step_call(OpStep *step, GCancellable *cancellable, const char *path, const char *interface,
	     const char *method, GVariant *parameters, const char *reply_type, int timeout_ms)
{
	AmuBluezOp *op = g_task_get_task_data(step->task);

	g_dbus_connection_call(op->bus, BLUEZ_NAME, path, interface, method, parameters,
			       reply_type != NULL ? G_VARIANT_TYPE(reply_type) : NULL,
			       G_DBUS_CALL_FLAGS_NONE, timeout_ms, cancellable, op_step_cb, step);
}

static void
op_replied(OpStep *step, GVariant *reply, const GError *error)
{
	step->func(step->task, reply, error);
}

void
amu_bluez_op_call(GTask *task, const char *path, const char *interface, const char *method,
		  GVariant *parameters, const char *reply_type, int timeout_ms,
		  AmuBluezReplyFunc func)
{
	OpStep *step = op_step_new(task, op_replied);

	step->func = func;
	op_step_call(step, g_task_get_cancellable(task), path, interface, method, parameters,
		     reply_type, timeout_ms);
}

void
amu_bluez_op_end_discovery(GTask *task, AmuBluezReplyFunc func)
{
	AmuBluezOp *op = g_task_get_task_data(task);
	OpStep *step = op_step_new(task, op_replied);

	step->func = func;
	op->discovering = FALSE;
	op_step_call(step, NULL, op->adapter_path, IFACE_ADAPTER, "StopDiscovery", NULL, NULL,
		     CALL_TIMEOUT_MS);
}

static void
op_objects_replied(OpStep *step, GVariant *reply, const GError *error)
{
	AmuBluezOp *op = g_task_get_task_data(step->task);
	g_autoptr(GVariant) objects = NULL;

	if (op->done)
		return;
	if (reply == NULL) {
		amu_bluez_op_fail(step->task, amu_bluez_error(error, AMU_ERROR_IO,
							      "cannot list bluetoothd's objects"));
		return;
	}
	objects = g_variant_get_child_value(reply, 0);
	step->listed(step->task, objects);
}

void
amu_bluez_op_list_objects(GTask *task, AmuBluezObjectsFunc func)
{
	OpStep *step = op_step_new(task, op_objects_replied);

	step->listed = func;
	op_step_call(step, g_task_get_cancellable(task), "/", IFACE_OBJECT_MANAGER,
		     "GetManagedObjects", NULL, "(a{oa{sa{sv}}})", CALL_TIMEOUT_MS);
}

static void
op_listed(GTask *task, GVariant *objects)
{
	AmuBluezOp *op = g_task_get_task_data(task);

	if ((op->adapter != NULL || op->klass->pick_adapter) &&
	    !amu_bluez_op_pick_adapter(task, objects))
		return;
	op->klass->listed(task, objects);
}

static void
op_bus_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	AmuBluezOp *op = g_task_get_task_data(task);
	g_autoptr(GError) error = NULL;

	op->bus = g_bus_get_finish(result, &error);
	if (op->bus == NULL) {
		if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
			amu_bluez_op_fail(task, op->klass->cancelled_error(task));
			return;
		}
		amu_bluez_op_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_NOT_SUPPORTED,
						    "cannot reach the system bus (%s): is D-Bus "
						    "running?",
						    error->message));
		return;
	}
	op->klass->subscribe(task);
	amu_bluez_op_list_objects(task, op_listed);
}

GTask *
amu_bluez_op_task_new(AmuBluezOp *op, const AmuBluezOpClass *klass, GDestroyNotify free_data,
		      gpointer source_tag, GCancellable *cancellable,
		      GAsyncReadyCallback callback, gpointer user_data)
{
	GTask *task = g_task_new(NULL, cancellable, callback, user_data);

	g_task_set_source_tag(task, source_tag);
	/* errors are AMU_ERROR_CANCELLED, not GIO's */
	g_task_set_check_cancellable(task, FALSE);
	op->klass = klass;
	g_task_set_task_data(task, op, free_data);
	return task;
}

void
amu_bluez_op_start(GTask *task)
{
	g_bus_get(G_BUS_TYPE_SYSTEM, g_task_get_cancellable(task), op_bus_cb, g_object_ref(task));
}

gpointer
amu_bluez_op_finish(GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(g_task_is_valid(result, NULL), NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	return g_task_propagate_pointer(G_TASK(result), error);
}

/* The (a{sv}) of SetDiscoveryFilter: LE, and with @amulet_only the Amulet
 * service only. */
static GVariant *
discovery_filter(gboolean amulet_only)
{
	GVariantBuilder builder;

	g_variant_builder_init(&builder, G_VARIANT_TYPE_VARDICT);
	g_variant_builder_add(&builder, "{sv}", "Transport", g_variant_new_string("le"));
	if (amulet_only) {
		const char *uuids[] = {AMU_GATT_SERVICE_UUID, NULL};
		g_variant_builder_add(&builder, "{sv}", "UUIDs", g_variant_new_strv(uuids, -1));
	}
	return g_variant_new("(a{sv})", &builder);
}

static void
op_filter_replied(OpStep *step, GVariant *reply, const GError *error)
{
	AmuBluezOp *op = g_task_get_task_data(step->task);

	if (op->done)
		return;
	if (reply == NULL) {
		amu_bluez_op_fail(step->task, amu_bluez_error(error, AMU_ERROR_IO, step->what));
		return;
	}
	amu_bluez_op_call(step->task, op->adapter_path, IFACE_ADAPTER, "StartDiscovery", NULL, NULL,
			  CALL_TIMEOUT_MS, step->func);
}

void
amu_bluez_op_start_discovery(GTask *task, gboolean amulet_only, const char *what,
			     AmuBluezReplyFunc started)
{
	AmuBluezOp *op = g_task_get_task_data(task);
	OpStep *step = op_step_new(task, op_filter_replied);

	step->func = started;
	step->what = g_strdup(what);
	op_step_call(step, g_task_get_cancellable(task), op->adapter_path, IFACE_ADAPTER,
		     "SetDiscoveryFilter", discovery_filter(amulet_only), NULL, CALL_TIMEOUT_MS);
}
