/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(__AMULET_H_INSIDE__) && !defined(AMU_COMPILATION)
#error "Only <amulet/amulet.h> can be included directly."
#endif

#include <glib.h>
#include <amulet/amu-export.h>

G_BEGIN_DECLS

/**
 * AMU_ERROR:
 *
 * The error domain of every fallible libamulet call.
 *
 * Since: 0.1
 */
#define AMU_ERROR (amu_error_quark())

/**
 * AmuError:
 * @AMU_ERROR_FAILED: an error with no better code; the message says what failed
 * @AMU_ERROR_INVALID_ARGUMENT: an argument or option value is out of range or malformed
 * @AMU_ERROR_NOT_FOUND: a device, grant, file or record does not exist
 * @AMU_ERROR_EXISTS: the thing to create already exists (a name in use, say)
 * @AMU_ERROR_PERMISSION_DENIED: the file system or the device refused access
 * @AMU_ERROR_IO: reading or writing a file or socket failed
 * @AMU_ERROR_PROTOCOL: the peer sent a malformed, unexpected or unsupported message
 * @AMU_ERROR_TIMED_OUT: the peer or the user did not answer in time
 * @AMU_ERROR_CANCELLED: the operation was cancelled by the caller
 * @AMU_ERROR_DISCONNECTED: the link closed before the operation finished
 * @AMU_ERROR_AUTH_FAILED: a handshake or decryption failed: wrong key or a man in the middle
 * @AMU_ERROR_REPLAYED: a frame or command was seen before (replay or reordering)
 * @AMU_ERROR_TAMPERED: a frame, file or record was altered after it was protected
 * @AMU_ERROR_REJECTED: the user (on either side) declined the confirmation
 * @AMU_ERROR_LOCKED_OUT: too many failed pairings; retry after the back-off
 * @AMU_ERROR_NOT_PAIRING_MODE: the device is owned and not open for pairing
 * @AMU_ERROR_UNKNOWN_PEER: the peer's static key is not bonded here
 * @AMU_ERROR_KEY_CHANGED: the peer's static key differs from the bonded one
 * @AMU_ERROR_STORE: the local store is unreadable, corrupt or of a newer schema
 * @AMU_ERROR_NO_SPACE: the disk is full; nothing already stored was lost
 * @AMU_ERROR_WRONG_MASTER_KEY: the master key does not open this data directory
 * @AMU_ERROR_NOT_SUPPORTED: the device, link or build does not support the operation
 * @AMU_ERROR_CONSENT_DENIED: no valid consent grant covers the requested data
 * @AMU_ERROR_BAD_SIGNATURE: a signature did not verify
 * @AMU_ERROR_ROLLBACK: a counter, sequence or version went backwards
 * @AMU_ERROR_WRONG_TARGET: an update package is for another vendor or device class
 * @AMU_ERROR_TOO_LARGE: the data does not fit where it has to go (an image larger than the device's slot)
 * @AMU_ERROR_EXPIRED: a package, grant or command is past its expiry time
 * @AMU_ERROR_REVERTED: the device could not run the new firmware and went back to the previous image
 *
 * Error codes in the %AMU_ERROR domain. Values are stable: new codes are only
 * appended, and the numeric values are part of the ABI and of `amulet --json`.
 *
 * Since: 0.1
 */
typedef enum {
	AMU_ERROR_FAILED = 0,
	AMU_ERROR_INVALID_ARGUMENT = 1,
	AMU_ERROR_NOT_FOUND = 2,
	AMU_ERROR_EXISTS = 3,
	AMU_ERROR_PERMISSION_DENIED = 4,
	AMU_ERROR_IO = 5,
	AMU_ERROR_PROTOCOL = 6,
	AMU_ERROR_TIMED_OUT = 7,
	AMU_ERROR_CANCELLED = 8,
	AMU_ERROR_DISCONNECTED = 9,
	AMU_ERROR_AUTH_FAILED = 10,
	AMU_ERROR_REPLAYED = 11,
	AMU_ERROR_TAMPERED = 12,
	AMU_ERROR_REJECTED = 13,
	AMU_ERROR_LOCKED_OUT = 14,
	AMU_ERROR_NOT_PAIRING_MODE = 15,
	AMU_ERROR_UNKNOWN_PEER = 16,
	AMU_ERROR_KEY_CHANGED = 17,
	AMU_ERROR_STORE = 18,
	AMU_ERROR_NO_SPACE = 19,
	AMU_ERROR_WRONG_MASTER_KEY = 20,
	AMU_ERROR_NOT_SUPPORTED = 21,
	AMU_ERROR_CONSENT_DENIED = 22,
	AMU_ERROR_BAD_SIGNATURE = 23,
	AMU_ERROR_ROLLBACK = 24,
	AMU_ERROR_WRONG_TARGET = 25,
	AMU_ERROR_TOO_LARGE = 26,
	AMU_ERROR_EXPIRED = 27,
	AMU_ERROR_REVERTED = 28,
	/*< private >*/
	AMU_ERROR_LAST
} AmuError;

AMU_EXPORT GQuark amu_error_quark(void);
AMU_EXPORT const char *amu_error_to_string(AmuError code);

G_END_DECLS
