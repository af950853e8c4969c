/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib-unix.h>
#include <json-glib/json-glib.h>
#include <locale.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amu-peripheral.h"
#include "amu-simdata.h"
#include "amu-update-package.h"
#include "amulet-sim-update.h"
#include "amulet/amulet.h"

/* amulet-sim: the device role from libamulet on a UNIX socket, plus the
 * simulator's own parts: the user's answer (--confirm), link shaping and
 * fault injection, and a man in the middle. See amulet-sim(1). */

typedef struct {
	GMainLoop *loop;
	AmuPeripheral *peripheral;
	char *confirm; /* yes | no | ask */
	unsigned int pending_request;
	GSource *stdin_source;
	int exit_code;
	char *advertise; /* --advertise: the file a BlueZ emulator reads */
	const char *profile;
	/* --mitm: our own host identity towards the real device */
	char *mitm_upstream;
	AmuContext *mitm_context;
} Sim;

typedef struct {
	Sim *sim;
	unsigned int request;
} MitmPairing;

static void
mitm_upstream_confirm(AmuPairingRequest *request, gpointer user_data)
{
	g_autofree char *code = amu_pairing_request_get_code_string(request);

	/* an attacker accepts whatever the device shows */
	printf("mitm: device-side code: %s\n", code);
	fflush(stdout);
	amu_pairing_request_reply(request, TRUE, TRUE);
}

static void
mitm_upstream_done(GObject *source, GAsyncResult *result, gpointer user_data)
{
	MitmPairing *pairing = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuDevice) device = amu_context_pair_finish(AMU_CONTEXT(source), result, &error);

	if (device != NULL)
		printf("mitm: paired with the real device as a host\n");
	else
		printf("mitm: pairing with the real device failed: %s\n", error->message);
	fflush(stdout);
	/* stay invisible: accept the host only if the device accepted us */
	amu_peripheral_confirm(pairing->sim->peripheral, pairing->request, device != NULL);
	g_free(pairing);
}

static void
sim_log(AmuPeripheral *peripheral, const char *line, void *user_data)
{
	printf("%s\n", line);
	fflush(stdout);
}

static gboolean
stdin_cb(gint fd, GIOCondition condition, gpointer user_data)
{
	Sim *sim = user_data;
	char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);

	if (n <= 0) {
		amu_peripheral_confirm(sim->peripheral, sim->pending_request, FALSE);
		sim->stdin_source = NULL;
		return G_SOURCE_REMOVE;
	}
	buf[n] = '\0';
	amu_peripheral_confirm(sim->peripheral, sim->pending_request, buf[0] == 'y' || buf[0] == 'Y');
	sim->stdin_source = NULL;
	return G_SOURCE_REMOVE;
}

static void
sim_confirm(AmuPeripheral *peripheral, unsigned int request, int code, gboolean has_display, void *user_data)
{
	Sim *sim = user_data;

	if (sim->mitm_upstream != NULL) {
		MitmPairing *pairing = g_new0(MitmPairing, 1);
		g_autofree char *address = g_strdup_printf("sim:%s", sim->mitm_upstream);
		pairing->sim = sim;
		pairing->request = request;
		printf("mitm: host-side code: %06d\n", code);
		fflush(stdout);
		amu_context_pair_async(sim->mitm_context, address, NULL, mitm_upstream_confirm, NULL, NULL,
				       mitm_upstream_done, pairing);
		return;
	}
	if (g_strcmp0(sim->confirm, "ask") == 0) {
		printf("%s [y/N] ", has_display ? "Does the host show the same code?" : "Press the button?");
		fflush(stdout);
		sim->pending_request = request;
		if (sim->stdin_source == NULL) {
			guint id = g_unix_fd_add(STDIN_FILENO, G_IO_IN | G_IO_HUP, stdin_cb, sim);
			sim->stdin_source = g_main_context_find_source_by_id(NULL, id);
		}
		return;
	}
	amu_peripheral_confirm(peripheral, request, g_strcmp0(sim->confirm, "yes") == 0);
}

typedef struct {
	AmuDeviceLog *log; /* NULL: print CSV instead */
	GError *error;
	guint64 count;
} Generated;

static void
generated_cb(AmuCategory category, const AmuSample *samples, size_t n, void *user_data)
{
	Generated *generated = user_data;

	generated->count += n;
	if (generated->error != NULL)
		return;
	if (generated->log != NULL) {
		amu_device_log_append(generated->log, category, samples, n, &generated->error);
		return;
	}
	/* the format of 'amulet data --csv', so the two can be compared */
	for (size_t i = 0; i < n; i++) {
		guint n_values = amu_category_get_n_values(category);
		printf("%" G_GINT64_FORMAT ",%s", samples[i].timestamp_ms, amu_category_to_string(category));
		for (guint v = 0; v < AMU_SAMPLE_MAX_VALUES; v++) {
			if (v < n_values)
				printf(",%d", samples[i].values[v]);
			else
				printf(",");
		}
		printf("\n");
	}
}

static gboolean
parse_start(const char *text, gint64 days, gint64 *start_ms)
{
	int y, m, d;
	char tail;
	g_autoptr(GDateTime) t = NULL;

	if (text == NULL) {
		/* the N days before today, UTC */
		g_autoptr(GDateTime) now = g_date_time_new_now_utc();
		t = g_date_time_new_utc(g_date_time_get_year(now), g_date_time_get_month(now),
					g_date_time_get_day_of_month(now), 0, 0, 0);
		*start_ms = (g_date_time_to_unix(t) - days * 86400) * 1000;
		return TRUE;
	}
	if (sscanf(text, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3)
		return FALSE;
	t = g_date_time_new_utc(y, m, d, 0, 0, 0);
	if (t == NULL)
		return FALSE;
	*start_ms = g_date_time_to_unix(t) * 1000;
	return TRUE;
}

/* what a BlueZ emulator puts in the advertisement, as JSON */
static void
sim_advert(AmuPeripheral *peripheral, void *user_data)
{
	Sim *sim = user_data;
	g_autoptr(JsonBuilder) builder = json_builder_new();
	g_autoptr(JsonGenerator) generator = json_generator_new();
	g_autoptr(JsonNode) root = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *text = NULL;

	if (sim->advertise == NULL)
		return;
	json_builder_begin_object(builder);
	json_builder_set_member_name(builder, "pairing_mode");
	json_builder_add_boolean_value(builder, amu_peripheral_get_pairable(peripheral));
	json_builder_set_member_name(builder, "profile");
	json_builder_add_string_value(builder, sim->profile);
	json_builder_set_member_name(builder, "model");
	json_builder_add_string_value(builder, amu_peripheral_get_model(peripheral));
	json_builder_set_member_name(builder, "device_id");
	json_builder_add_string_value(builder, amu_peripheral_get_device_id(peripheral));
	json_builder_end_object(builder);
	root = json_builder_get_root(builder);
	json_generator_set_root(generator, root);
	text = json_generator_to_data(generator, NULL);
	/* written whole (a rename), so the reader never sees half of it */
	if (!g_file_set_contents(sim->advertise, text, -1, &error))
		fprintf(stderr, "amulet-sim: --advertise: %s\n", error->message);
}

static gboolean
quit_cb(gpointer user_data)
{
	Sim *sim = user_data;
	g_main_loop_quit(sim->loop);
	return G_SOURCE_REMOVE;
}

int
main(int argc, char **argv)
{
	g_autofree char *listen_path = NULL;
	g_autofree char *profile = NULL;
	g_autofree char *state_dir = NULL;
	g_autofree char *confirm = NULL;
	g_autofree char *policy_version = NULL;
	g_autofree char *model = NULL;
	g_autofree char *support_end = NULL;
	g_autofree char *mitm = NULL;
	gint mtu = AMU_LINK_MTU_DEFAULT, latency = 0, drop_at_ack = 0;
	gint64 link_rate = 0, drop_after = 0, lockout_base_ms = 0;
	gboolean replay = FALSE, tamper = FALSE, pairing_mode = FALSE, version = FALSE, dump_csv = FALSE;
	gint64 days = 0, seed = 1, clock_offset = 0;
	g_autofree char *start = NULL;
	g_autofree char *drop_at_command = NULL;
	g_autofree char *vendor_key = NULL;
	g_autofree char *vendor_id = NULL;
	g_autofree char *advertise = NULL;
	g_auto(GStrv) settings = NULL;
	gint64 slot_size = AMU_PERIPHERAL_SLOT_SIZE_DEFAULT;
	GOptionEntry entries[] = {
		{"listen", 0, 0, G_OPTION_ARG_FILENAME, &listen_path, "UNIX socket to listen on", "PATH"},
		{"profile", 0, 0, G_OPTION_ARG_STRING, &profile, "band, watch or toy (default band)", "PROFILE"},
		{"state", 0, 0, G_OPTION_ARG_FILENAME, &state_dir, "directory for the device's keys, bonds and data", "DIR"},
		{"confirm", 0, 0, G_OPTION_ARG_STRING, &confirm, "the device user's answer: yes, no or ask (default yes)", "ANSWER"},
		{"pairing-mode", 0, 0, G_OPTION_ARG_NONE, &pairing_mode, "the owner opened pairing (allow a new host while owned)", NULL},
		{"support-end", 0, 0, G_OPTION_ARG_STRING, &support_end, "support end date to disclose (default 2031-12-31)", "YYYY-MM-DD"},
		{"model", 0, 0, G_OPTION_ARG_STRING, &model, "model name to disclose (default: the profile's)", "TEXT"},
		{"policy-version", 0, 0, G_OPTION_ARG_STRING, &policy_version, "privacy policy version to disclose", "V"},
		{"mtu", 0, 0, G_OPTION_ARG_INT, &mtu, "largest ATT MTU to offer, 23..517 (default 517)", "N"},
		{"link-rate", 0, 0, G_OPTION_ARG_INT64, &link_rate, "shape the link to this many bits per second", "BPS"},
		{"latency", 0, 0, G_OPTION_ARG_INT, &latency, "one-way link latency", "MS"},
		{"lockout-base", 0, 0, G_OPTION_ARG_INT64, &lockout_base_ms, "first lockout period after 3 failures (default 30000)", "MS"},
		{"mitm", 0, 0, G_OPTION_ARG_FILENAME, &mitm, "act as a man in the middle towards the device at UPSTREAM", "UPSTREAM"},
		{"replay", 0, 0, G_OPTION_ARG_NONE, &replay, "hostile: replay a session record", NULL},
		{"tamper", 0, 0, G_OPTION_ARG_NONE, &tamper, "hostile: alter a session record", NULL},
		{"drop-after", 0, 0, G_OPTION_ARG_INT64, &drop_after, "hostile: drop the link after N datagrams", "N"},
		{"days", 0, 0, G_OPTION_ARG_INT64, &days, "log N days of telemetry before today (into an empty log)", "N"},
		{"seed", 0, 0, G_OPTION_ARG_INT64, &seed, "seed of the generated telemetry (default 1)", "S"},
		{"start", 0, 0, G_OPTION_ARG_STRING, &start, "first day of the generated telemetry, UTC (default: N days ago)", "YYYY-MM-DD"},
		{"clock-offset", 0, 0, G_OPTION_ARG_INT64, &clock_offset, "the device's clock runs this far ahead (negative: behind)", "MS"},
		{"dump-csv", 0, 0, G_OPTION_ARG_NONE, &dump_csv, "print the telemetry --days/--seed/--start generate as CSV, and exit", NULL},
		{"drop-at-command", 0, 0, G_OPTION_ARG_STRING, &drop_at_command, "hostile: drop the link when an owner command arrives, before or after carrying it out", "before|after"},
		{"drop-at-ack", 0, 0, G_OPTION_ARG_INT, &drop_at_ack, "hostile: drop the link when sync ack N arrives, unheeded", "N"},
		{"vendor-key", 0, 0, G_OPTION_ARG_FILENAME, &vendor_key, "vendor key seed (64 hex digits) whose public key checks updates (default: the published test key)", "FILE"},
		{"vendor-id", 0, 0, G_OPTION_ARG_STRING, &vendor_id, "vendor id updates must name (default amulet-sim)", "ID"},
		{"slot-size", 0, 0, G_OPTION_ARG_INT64, &slot_size, "largest firmware image the device takes (default 4194304)", "BYTES"},
		{"setting", 0, 0, G_OPTION_ARG_STRING_ARRAY, &settings, "change a setting on the device at start (repeatable)", "KEY=VALUE"},
		{"advertise", 0, 0, G_OPTION_ARG_FILENAME, &advertise, "keep what the device advertises in FILE, as JSON", "FILE"},
		{"version", 0, 0, G_OPTION_ARG_NONE, &version, "print the version", NULL},
		{NULL},
	};
	g_autoptr(GOptionContext) context = g_option_context_new("- simulated Amulet peripheral");
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuPeripheral) peripheral = NULL;
	AmuPeripheralProfile profile_kind = AMU_PERIPHERAL_PROFILE_BAND;
	Sim sim = {0};
	gint64 start_ms = 0;

	setlocale(LC_ALL, "");
	if (argc > 1 && strcmp(argv[1], "make-update") == 0)
		return amu_sim_make_update_main(argc - 1, argv + 1);
	g_option_context_add_main_entries(context, entries, NULL);
	g_option_context_set_description(context, "See amulet-sim(1).");
	if (!g_option_context_parse(context, &argc, &argv, &error)) {
		fprintf(stderr, "amulet-sim: %s\nTry 'amulet-sim --help'.\n", error->message);
		return 2;
	}
	if (version) {
		printf("amulet-sim %s\n", amu_version_string());
		return 0;
	}
	if (drop_at_command != NULL && g_strcmp0(drop_at_command, "before") != 0 && g_strcmp0(drop_at_command, "after") != 0) {
		fprintf(stderr, "amulet-sim: --drop-at-command takes before or after\n");
		return 2;
	}
	if (days < 0 || days > 3650 || seed < 0) {
		fprintf(stderr, "amulet-sim: --days takes 0..3650 and --seed a positive number\n");
		return 2;
	}
	if ((days > 0 || dump_csv) && !parse_start(start, days, &start_ms)) {
		fprintf(stderr, "amulet-sim: --start '%s' is not a date like 2026-11-01\n", start);
		return 2;
	}
	if ((listen_path == NULL || state_dir == NULL) && !dump_csv) {
		fprintf(stderr, "amulet-sim: --listen PATH and --state DIR are required\nTry 'amulet-sim --help'.\n");
		return 2;
	}
	if (profile == NULL || g_strcmp0(profile, "band") == 0)
		profile_kind = AMU_PERIPHERAL_PROFILE_BAND;
	else if (g_strcmp0(profile, "watch") == 0)
		profile_kind = AMU_PERIPHERAL_PROFILE_WATCH;
	else if (g_strcmp0(profile, "toy") == 0)
		profile_kind = AMU_PERIPHERAL_PROFILE_TOY;
	else {
		fprintf(stderr, "amulet-sim: unknown --profile '%s': use band, watch or toy\n", profile);
		return 2;
	}
	if (confirm != NULL && g_strcmp0(confirm, "yes") != 0 && g_strcmp0(confirm, "no") != 0 &&
	    g_strcmp0(confirm, "ask") != 0) {
		fprintf(stderr, "amulet-sim: --confirm takes yes, no or ask\n");
		return 2;
	}
	if (mtu < 23 || mtu > 517) {
		fprintf(stderr, "amulet-sim: --mtu %d is outside 23..517\n", mtu);
		return 2;
	}
	if (slot_size <= 0) {
		fprintf(stderr, "amulet-sim: --slot-size takes a positive number of bytes\n");
		return 2;
	}
	if (vendor_id != NULL && vendor_id[0] == '\0') {
		fprintf(stderr, "amulet-sim: --vendor-id takes a name such as amulet-sim\n");
		return 2;
	}
	if (link_rate < 0 || latency < 0 || drop_after < 0 || lockout_base_ms < 0 || drop_at_ack < 0) {
		fprintf(stderr, "amulet-sim: --link-rate, --latency, --drop-after and --lockout-base take positive numbers\n");
		return 2;
	}

	if (dump_csv) {
		Generated generated = {0};
		amu_simdata_generate(profile_kind, (guint64)seed, start_ms, (guint)days, generated_cb, &generated);
		return 0;
	}

	peripheral = amu_peripheral_new(state_dir, profile_kind, &error);
	if (peripheral == NULL) {
		fprintf(stderr, "amulet-sim: %s\n", error->message);
		return 1;
	}
	amu_peripheral_set_clock_offset(peripheral, clock_offset);
	/* the boot loader's lines come first */
	amu_peripheral_set_log_func(peripheral, sim_log, &sim);
	if (vendor_key != NULL || vendor_id != NULL) {
		uint8_t vendor_pk[AMU_VENDOR_PUBLICKEYBYTES];
		uint8_t *vendor_sk = sodium_malloc(AMU_VENDOR_SECRETKEYBYTES);
		gboolean ok = TRUE;
		if (vendor_key != NULL)
			ok = amu_vendor_keypair_from_file(vendor_key, vendor_pk, vendor_sk, &error);
		else
			amu_sim_vendor_keypair(vendor_pk, vendor_sk);
		sodium_free(vendor_sk);
		if (!ok) {
			fprintf(stderr, "amulet-sim: --vendor-key: %s\n", error->message);
			return 2;
		}
		amu_peripheral_set_vendor(peripheral, vendor_id != NULL ? vendor_id : AMU_SIM_VENDOR_ID, vendor_pk);
	}
	amu_peripheral_set_slot_size(peripheral, (uint64_t)slot_size);
	for (guint i = 0; settings != NULL && settings[i] != NULL; i++) {
		g_auto(GStrv) pair = g_strsplit(settings[i], "=", 2);
		if (pair[0] == NULL || pair[1] == NULL) {
			fprintf(stderr, "amulet-sim: --setting '%s' is not KEY=VALUE\n", settings[i]);
			return 2;
		}
		if (!amu_peripheral_set_setting(peripheral, pair[0], pair[1], &error)) {
			fprintf(stderr, "amulet-sim: --setting: %s\n", error->message);
			return 2;
		}
	}
	if (days > 0) {
		AmuDeviceLog *log = amu_peripheral_get_log(peripheral);
		if (amu_device_log_get_end_seq(log) == 0) {
			Generated generated = {.log = log};
			amu_simdata_generate(profile_kind, (guint64)seed, start_ms, (guint)days, generated_cb, &generated);
			if (generated.error != NULL) {
				fprintf(stderr, "amulet-sim: logging telemetry: %s\n", generated.error->message);
				g_error_free(generated.error);
				return 1;
			}
			printf("logged %" G_GUINT64_FORMAT " samples over %" G_GINT64_FORMAT " day%s (seed %" G_GINT64_FORMAT ")\n",
			       generated.count, days, days == 1 ? "" : "s", seed);
		} else {
			printf("the log already holds samples up to %" G_GUINT64_FORMAT "; --days adds nothing\n",
			       amu_device_log_get_end_seq(log));
		}
	}
	sim.peripheral = peripheral;
	sim.confirm = confirm != NULL ? confirm : (char *)"yes";
	sim.loop = g_main_loop_new(NULL, FALSE);
	if (mitm != NULL) {
		g_autofree char *mitm_dir = g_build_filename(state_dir, "mitm-host", NULL);
		sim.mitm_upstream = mitm;
		sim.mitm_context = amu_context_new(mitm_dir, &error);
		if (sim.mitm_context == NULL) {
			fprintf(stderr, "amulet-sim: %s\n", error->message);
			return 1;
		}
		amu_context_set_host_name(sim.mitm_context, "mitm");
		/* whoever connects is welcome */
		pairing_mode = TRUE;
	}
	amu_peripheral_set_confirm_func(peripheral, sim_confirm, &sim);
	amu_peripheral_set_pairing_mode(peripheral, pairing_mode);
	if (policy_version != NULL)
		amu_peripheral_set_policy_version(peripheral, policy_version);
	if (model != NULL)
		amu_peripheral_set_model(peripheral, model);
	sim.advertise = advertise;
	sim.profile = profile != NULL ? profile : "band";
	amu_peripheral_set_advert_func(peripheral, sim_advert, &sim);
	sim_advert(peripheral, &sim);
	if (support_end != NULL)
		amu_peripheral_set_support_end(peripheral, support_end);
	if (lockout_base_ms > 0)
		amu_peripheral_set_lockout_base(peripheral, (uint64_t)lockout_base_ms);
	amu_peripheral_set_faults(peripheral,
				  (replay ? AMU_PERIPHERAL_FAULT_REPLAY : 0) | (tamper ? AMU_PERIPHERAL_FAULT_TAMPER : 0) |
					  (g_strcmp0(drop_at_command, "before") == 0 ? AMU_PERIPHERAL_FAULT_DROP_BEFORE_COMMAND : 0) |
					  (g_strcmp0(drop_at_command, "after") == 0 ? AMU_PERIPHERAL_FAULT_DROP_AFTER_COMMAND : 0));
	amu_peripheral_set_drop_after(peripheral, (uint64_t)drop_after);
	amu_peripheral_set_drop_at_ack(peripheral, (unsigned int)drop_at_ack);
	amu_peripheral_set_shaping(peripheral, (uint64_t)link_rate, (unsigned int)latency);
	if (!amu_peripheral_listen(peripheral, listen_path, (uint16_t)mtu, &error)) {
		fprintf(stderr, "amulet-sim: %s\n", error->message);
		return 1;
	}
	g_unix_signal_add(SIGINT, quit_cb, &sim);
	g_unix_signal_add(SIGTERM, quit_cb, &sim);
	{
		uint64_t sequence = 0;
		const char *firmware = amu_peripheral_get_firmware(peripheral, &sequence);
		printf("firmware: %s (sequence %" G_GUINT64_FORMAT ")\n", firmware, sequence);
	}
	printf("amulet-sim: %s %s listening on %s (device id %s, %u bond%s)\n", profile != NULL ? profile : "band",
	       amu_version_string(), listen_path, amu_peripheral_get_device_id(peripheral),
	       amu_peripheral_get_n_bonds(peripheral), amu_peripheral_get_n_bonds(peripheral) == 1 ? "" : "s");
	fflush(stdout);
	g_main_loop_run(sim.loop);
	g_main_loop_unref(sim.loop);
	g_clear_object(&sim.mitm_context);
	return sim.exit_code;
}
