/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "config.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amu-link-l2cap.h"
#include "amu-test.h"
#include "amulet/amu-error.h"

/* The optional L2CAP CoC link's address and option handling, and its error
 * where the kernel has no Bluetooth sockets. Opening a real channel needs a
 * radio and a device; neither exists where the suite runs. */

static void
test_parse_good(void)
{
	AmuL2capAddress a;
	g_autoptr(GError) error = NULL;

	CU_ASSERT_TRUE(amu_l2cap_parse_address("c4:2a:11:07:9b:30", &a, &error));
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_EQUAL(a.dev_id, -1);
	CU_ASSERT_STRING_EQUAL(a.address, "C4:2A:11:07:9B:30");
	CU_ASSERT_EQUAL(a.psm, AMU_L2CAP_PSM_DEFAULT);
	CU_ASSERT_TRUE(amu_l2cap_parse_address("hci1/C4:2A:11:07:9B:30/0x85", &a, &error));
	CU_ASSERT_EQUAL(a.dev_id, 1);
	CU_ASSERT_EQUAL(a.psm, 0x85);
	CU_ASSERT_TRUE(amu_l2cap_parse_address("C4:2A:11:07:9B:30/255", &a, &error));
	CU_ASSERT_EQUAL(a.dev_id, -1);
	CU_ASSERT_EQUAL(a.psm, 255);
	CU_ASSERT_TRUE(amu_l2cap_parse_address("hci0/00:00:00:00:00:01/128", &a, &error));
	CU_ASSERT_EQUAL(a.dev_id, 0);
	CU_ASSERT_EQUAL(a.psm, 0x80);
}

static void
test_parse_bad(void)
{
	static const char *const bad[] = {
		"",					/* nothing */
		"C4:2A:11:07:9B",			/* five bytes */
		"C4:2A:11:07:9B:30:00",			/* seven */
		"C4-2A-11-07-9B-30",			/* dashes */
		"G4:2A:11:07:9B:30",			/* not hex */
		"hci/C4:2A:11:07:9B:30",		/* no adapter number */
		"hcix/C4:2A:11:07:9B:30",		/* not a number */
		"hci99999/C4:2A:11:07:9B:30",		/* out of range */
		"hci0",					/* adapter only */
		"C4:2A:11:07:9B:30/0x7f",		/* below the LE dynamic range */
		"C4:2A:11:07:9B:30/0x100",		/* above it */
		"C4:2A:11:07:9B:30/0x",			/* empty hex */
		"C4:2A:11:07:9B:30/psm",		/* not a number */
		"hci0/C4:2A:11:07:9B:30/0x81/extra",	/* too many parts */
		"C4:2A:11:07:9B:30/0x81/0x82",		/* two PSMs */
	};

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		AmuL2capAddress a;
		g_autoptr(GError) error = NULL;
		CU_ASSERT_FALSE(amu_l2cap_parse_address(bad[i], &a, &error));
		AMU_ASSERT_ERROR(error, AMU_ERROR_INVALID_ARGUMENT);
		if (error != NULL)
			CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "[hciN/]AA:BB:CC:DD:EE:FF[/PSM]"));
	}
}

/* open parses first: a bad address never reaches the kernel */
static void
test_open_bad_address(void)
{
	g_autoptr(GError) error = NULL;
	AmuLink *link = amu_link_l2cap_open("C4:2A:11:07:9B", &error);

	CU_ASSERT_PTR_NULL(link);
	AMU_ASSERT_ERROR(error, AMU_ERROR_INVALID_ARGUMENT);
}

/* Where the kernel has no Bluetooth sockets the error says so and what to
 * do instead; where it has them, no device answers at this address. */
static void
test_open_without_bluetooth(void)
{
	g_autoptr(GError) error = NULL;
	int probe = socket(AF_BLUETOOTH, SOCK_SEQPACKET, 1 /* BTPROTO_L2CAP */);
	int errsv = errno;
	AmuLink *link;

	if (probe >= 0)
		close(probe);
	link = amu_link_l2cap_open("hci0/C4:2A:11:07:9B:30/0x81", &error);
	CU_ASSERT_PTR_NULL(link);
	CU_ASSERT_PTR_NOT_NULL(error);
	if (probe < 0 && (errsv == EAFNOSUPPORT || errsv == EPROTONOSUPPORT)) {
		AMU_ASSERT_ERROR(error, AMU_ERROR_NOT_SUPPORTED);
		if (error != NULL) {
			CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "no Bluetooth sockets"));
			CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "bluez:"));
		}
	}
	if (link != NULL)
		amu_link_unref(link);
}

AMU_TEST_MAIN("l2cap", {"parse good", test_parse_good}, {"parse bad", test_parse_bad},
	      {"open bad address", test_open_bad_address}, {"open without bluetooth", test_open_without_bluetooth})
