/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "config.h"

#include <bluetooth/bluetooth.h>
#include <bluetooth/hci.h>
#include <bluetooth/hci_lib.h>
#include <bluetooth/l2cap.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "amu-link-l2cap.h"
#include "amulet/amu-error.h"

/* An LE credit-based L2CAP channel is a SOCK_SEQPACKET socket: one send is
 * one SDU, as one record is on the simulator's socket, so the socket link
 * carries it once it is connected. Only the connection is specific. */

#define CONNECT_TIMEOUT_S 10
/* the framer's datagrams are at most ATT_MTU - 3 = 514 bytes */
#define SDU_MAX 514

static gboolean
bad_address(const char *spec, const char *why, GError **error)
{
	g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
		    "l2cap address '%s': %s; use l2cap:[hciN/]AA:BB:CC:DD:EE:FF[/PSM] with the PSM the device "
		    "advertises (0x80..0xff)",
		    spec, why);
	return FALSE;
}

static gboolean
parse_bdaddr(const char *text, char out[18])
{
	if (strlen(text) != 17)
		return FALSE;
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2 ? text[i] != ':' : !g_ascii_isxdigit(text[i]))
			return FALSE;
		out[i] = g_ascii_toupper(text[i]);
	}
	out[17] = '\0';
	return TRUE;
}

gboolean
amu_l2cap_parse_address(const char *spec, AmuL2capAddress *out, GError **error)
{
	g_auto(GStrv) parts = g_strsplit(spec, "/", -1);
	guint n = g_strv_length(parts);
	guint i = 0;

	memset(out, 0, sizeof(*out));
	out->dev_id = -1;
	out->psm = AMU_L2CAP_PSM_DEFAULT;
	if (n == 0 || n > 3)
		return bad_address(spec, "too many parts", error);
	if (g_str_has_prefix(parts[0], "hci")) {
		guint64 dev = 0;
		if (parts[0][3] == '\0' || !g_ascii_string_to_unsigned(parts[0] + 3, 10, 0, HCI_MAX_DEV - 1, &dev, NULL))
			return bad_address(spec, "the adapter is hci0, hci1, ...", error);
		out->dev_id = (int)dev;
		i++;
	}
	if (i >= n || !parse_bdaddr(parts[i], out->address))
		return bad_address(spec, "the device address is six hex bytes with colons", error);
	i++;
	if (i < n) {
		guint64 psm = 0;
		const char *text = parts[i];
		guint base = 10;
		if (g_str_has_prefix(text, "0x") || g_str_has_prefix(text, "0X")) {
			text += 2;
			base = 16;
		}
		if (*text == '\0' || !g_ascii_string_to_unsigned(text, base, 0x80, 0xff, &psm, NULL))
			return bad_address(spec, "the PSM is out of the LE dynamic range", error);
		out->psm = (uint16_t)psm;
		i++;
	}
	if (i != n)
		return bad_address(spec, "unexpected part after the PSM", error);
	return TRUE;
}

static AmuLink *
fail_errno(int fd, int errsv, const char *what, const char *spec, GError **error)
{
	if (fd >= 0)
		close(fd);
	g_set_error(error, AMU_ERROR, errsv == EACCES || errsv == EPERM ? AMU_ERROR_PERMISSION_DENIED : AMU_ERROR_IO,
		    "l2cap:%s: %s: %s", spec, what, g_strerror(errsv));
	return NULL;
}

AmuLink *
amu_link_l2cap_open(const char *spec, GError **error)
{
	AmuL2capAddress address;
	struct sockaddr_l2 local = {0}, remote = {0};
	struct bt_security security = {.level = BT_SECURITY_MEDIUM};
	struct timeval timeout = {.tv_sec = CONNECT_TIMEOUT_S};
	uint16_t rcv_mtu = SDU_MAX, snd_mtu = 0;
	socklen_t len = sizeof(snd_mtu);
	g_autofree char *description = NULL;
	int fd;

	if (!amu_l2cap_parse_address(spec, &address, error))
		return NULL;
	fd = socket(AF_BLUETOOTH, SOCK_SEQPACKET | SOCK_CLOEXEC, BTPROTO_L2CAP);
	if (fd < 0) {
		int errsv = errno;
		if (errsv == EAFNOSUPPORT || errsv == EPROTONOSUPPORT || errsv == ESOCKTNOSUPPORT) {
			g_set_error(error, AMU_ERROR, AMU_ERROR_NOT_SUPPORTED,
				    "l2cap:%s: this system has no Bluetooth sockets (socket(AF_BLUETOOTH): %s): the "
				    "kernel lacks Bluetooth support or its module is not loaded; load it "
				    "(modprobe bluetooth) or reach the device through bluetoothd with a bluez: address",
				    spec, g_strerror(errsv));
			return NULL;
		}
		return fail_errno(-1, errsv, "cannot open a Bluetooth socket", spec, error);
	}
	local.l2_family = AF_BLUETOOTH;
	local.l2_bdaddr_type = BDADDR_LE_PUBLIC;
	if (address.dev_id >= 0 && hci_devba(address.dev_id, &local.l2_bdaddr) < 0) {
		close(fd);
		g_set_error(error, AMU_ERROR, AMU_ERROR_NOT_FOUND, "l2cap:%s: there is no adapter hci%d", spec,
			    address.dev_id);
		return NULL;
	}
	if (bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0)
		return fail_errno(fd, errno, "cannot bind to the adapter", spec, error);
	/* encrypted with the bond bluetoothd made: Amulet's handshake runs on top */
	if (setsockopt(fd, SOL_BLUETOOTH, BT_SECURITY, &security, sizeof(security)) < 0 ||
	    setsockopt(fd, SOL_BLUETOOTH, BT_RCVMTU, &rcv_mtu, sizeof(rcv_mtu)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) < 0)
		return fail_errno(fd, errno, "cannot set the channel's options", spec, error);
	remote.l2_family = AF_BLUETOOTH;
	remote.l2_psm = htobs(address.psm);
	remote.l2_bdaddr_type = BDADDR_LE_RANDOM;
	str2ba(address.address, &remote.l2_bdaddr);
	if (connect(fd, (struct sockaddr *)&remote, sizeof(remote)) < 0)
		return fail_errno(fd, errno, "cannot connect (is the device in range and bonded?)", spec, error);
	if (getsockopt(fd, SOL_BLUETOOTH, BT_SNDMTU, &snd_mtu, &len) < 0)
		return fail_errno(fd, errno, "cannot read the channel's MTU", spec, error);
	description = g_strdup_printf("l2cap:%s", spec);
	/* the framer counts in ATT terms: a datagram of up to MTU - 3 bytes */
	return amu_link_socket_new_from_fd(fd, (uint16_t)CLAMP(MIN(snd_mtu, SDU_MAX) + 3, 23, 517), description);
}
