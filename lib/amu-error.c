/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "amulet/amu-error.h"

/**
 * amu_error_quark:
 *
 * Returns: the #GQuark of the %AMU_ERROR domain
 *
 * Since: 0.1
 */
G_DEFINE_QUARK(amu-error-quark, amu_error)

/**
 * amu_error_to_string:
 * @code: an #AmuError
 *
 * Returns a stable, lower-case identifier for @code, as printed by
 * `amulet --json` in the `error.code` field.
 *
 * Returns: (transfer none): the identifier, or "unknown"
 *
 * Since: 0.1
 */
const char *
amu_error_to_string(AmuError code)
{
	switch (code) {
	case AMU_ERROR_FAILED:
		return "failed";
	case AMU_ERROR_INVALID_ARGUMENT:
		return "invalid-argument";
	case AMU_ERROR_NOT_FOUND:
		return "not-found";
	case AMU_ERROR_EXISTS:
		return "exists";
	case AMU_ERROR_PERMISSION_DENIED:
		return "permission-denied";
	case AMU_ERROR_IO:
		return "io";
	case AMU_ERROR_PROTOCOL:
		return "protocol";
	case AMU_ERROR_TIMED_OUT:
		return "timed-out";
	case AMU_ERROR_CANCELLED:
		return "cancelled";
	case AMU_ERROR_DISCONNECTED:
		return "disconnected";
	case AMU_ERROR_AUTH_FAILED:
		return "auth-failed";
	case AMU_ERROR_REPLAYED:
		return "replayed";
	case AMU_ERROR_TAMPERED:
		return "tampered";
	case AMU_ERROR_REJECTED:
		return "rejected";
	case AMU_ERROR_LOCKED_OUT:
		return "locked-out";
	case AMU_ERROR_NOT_PAIRING_MODE:
		return "not-pairing-mode";
	case AMU_ERROR_UNKNOWN_PEER:
		return "unknown-peer";
	case AMU_ERROR_KEY_CHANGED:
		return "key-changed";
	case AMU_ERROR_STORE:
		return "store";
	case AMU_ERROR_NO_SPACE:
		return "no-space";
	case AMU_ERROR_WRONG_MASTER_KEY:
		return "wrong-master-key";
	case AMU_ERROR_NOT_SUPPORTED:
		return "not-supported";
	case AMU_ERROR_CONSENT_DENIED:
		return "consent-denied";
	case AMU_ERROR_BAD_SIGNATURE:
		return "bad-signature";
	case AMU_ERROR_ROLLBACK:
		return "rollback";
	case AMU_ERROR_WRONG_TARGET:
		return "wrong-target";
	case AMU_ERROR_TOO_LARGE:
		return "too-large";
	case AMU_ERROR_EXPIRED:
		return "expired";
	case AMU_ERROR_REVERTED:
		return "reverted";
	case AMU_ERROR_LAST:
		break;
	}
	return "unknown";
}
