/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "amu-command.h"
#include "amu-peripheral-private.h"
#include "amu-private.h"
#include "amu-test.h"

/* The device role (AmuPeripheral) and a host (AmuContext) in one process, on
 * the default main context, over a real UNIX socket link. A test opens a
 * session, takes over its channel and sends messages by hand, hostile ones
 * among them, to see what the device answers and logs. */

/* how long to wait for an answer before a test fails */
#define PERIPHERAL_FIXTURE_WAIT_MS 5000

typedef struct {
	char *root; /* scratch directory, removed by peripheral_fixture_free() */
	char *sock;
	char *state_dir; /* the device's */
	AmuPeripheralProfile profile;
	AmuPeripheral *peripheral;
	GPtrArray *lines; /* char *: what the device logged */
	AmuContext *context;
	AmuDevice *device; /* paired under the profile's name: "band", "watch" or "toy" */
	AmuSession *session;
	AmuChannel *channel;  /* the session's, whose messages we take over */
	GPtrArray *received;  /* Amulet__V1__Message *: what the device sent the host */
	GPtrArray *notices;   /* char *: the context's notifications */
	uint8_t device_id[AMU_CHANNEL_DEVICE_ID_BYTES];   /* from the session's hello */
	uint8_t sign_key[AMU_COMMAND_PUBLICKEYBYTES];      /* the device's, from the session's hello */
	uint8_t *owner_sk; /* sodium_malloc'd: the host's owner key */
	gboolean timed_out;
} PeripheralFixture;

typedef gboolean (*PeripheralFixtureCondition)(PeripheralFixture *f, guint arg);

/* a device of @profile listening on a socket, a host context, and the two
 * paired; fatal CUnit assertions on failure */
PeripheralFixture *peripheral_fixture_new(AmuPeripheralProfile profile);
void peripheral_fixture_free(PeripheralFixture *f);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PeripheralFixture, peripheral_fixture_free)

/* runs the main context (both sides) until @cond holds, at most
 * PERIPHERAL_FIXTURE_WAIT_MS; returns whether it holds */
gboolean peripheral_fixture_iterate_until(PeripheralFixture *f, PeripheralFixtureCondition cond, guint arg);
/* a condition: the device holds no connection */
gboolean peripheral_fixture_no_connections(PeripheralFixture *f, guint arg);
/* a condition: the device sent more than @arg messages */
gboolean peripheral_fixture_answered(PeripheralFixture *f, guint arg);

/* an open session whose incoming messages land in f->received */
void peripheral_fixture_connect(PeripheralFixture *f);
/* closes the session (if any) and waits until the device drops its side */
void peripheral_fixture_close_session(PeripheralFixture *f);
/* forgets a session the device already ended (a reboot, say), and waits
 * until the device holds no connection */
void peripheral_fixture_drop_session(PeripheralFixture *f);
/* the device process "restarts": freed, then created again from its state
 * directory and listening on the same socket */
void peripheral_fixture_restart_device(PeripheralFixture *f);

/* sends @message on the open session and waits for the device's first
 * answer to it; NULL (and a failed assertion) when none came in time */
const Amulet__V1__Message *peripheral_fixture_send(PeripheralFixture *f, const Amulet__V1__Message *message);

/* the first line logged since line @from that contains @needle, or NULL */
const char *peripheral_fixture_find_line(PeripheralFixture *f, guint from, const char *needle);
/* the same, waiting up to PERIPHERAL_FIXTURE_WAIT_MS for it */
const char *peripheral_fixture_wait_line(PeripheralFixture *f, guint from, const char *needle);
