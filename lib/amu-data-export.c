/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <sodium.h>
#include <string.h>

#include "amu-export-file.h"
#include "amu-export-private.h"
#include "amu-export-writer.h"
#include "amu-private.h"

/**
 * AmuDataExport:
 *
 * One export of a device's data under a consent grant: only the granted
 * categories, time range and granularity, with locations rounded as granted,
 * written in one format with a manifest (consent receipt fields and the
 * SHA-256 of every file) signed by the owner's key, and optionally sealed so
 * only the recipient can open it. Every export, and every refused one, is
 * logged in the consent ledger. See docs/export.md.
 */
struct _AmuDataExport {
	GObject parent_instance;
	AmuContext *context;
	char *grant_id;
	AmuExportFormat format;
	char *path;
	GBytes *seal_to;
	guint64 n_samples;
	guint64 per_category[AMU_CATEGORY_LAST + 1];
	GPtrArray *files;
	GPtrArray *written; /* AmuExportFile: the digest and size of each of @files */
	char *manifest_sha256;
};

G_DEFINE_TYPE(AmuDataExport, amu_data_export, G_TYPE_OBJECT)

static void
amu_data_export_finalize(GObject *object)
{
	AmuDataExport *self = AMU_DATA_EXPORT(object);

	g_clear_object(&self->context);
	g_free(self->grant_id);
	g_free(self->path);
	g_clear_pointer(&self->seal_to, g_bytes_unref);
	g_ptr_array_unref(self->files);
	g_clear_pointer(&self->written, g_ptr_array_unref);
	g_free(self->manifest_sha256);
	G_OBJECT_CLASS(amu_data_export_parent_class)->finalize(object);
}

static void
amu_data_export_class_init(AmuDataExportClass *klass)
{
	G_OBJECT_CLASS(klass)->finalize = amu_data_export_finalize;
}

static void
amu_data_export_init(AmuDataExport *self)
{
	self->files = g_ptr_array_new_with_free_func(g_free);
}

/**
 * amu_data_export_new:
 * @grant_id: the consent grant to export under
 * @path: the directory to create (must not exist, or be empty), or with
 *   amu_data_export_set_seal_to() the sealed file to write
 *
 * Returns: (transfer full): an export to amu_data_export_run()
 * Since: 0.1
 */
AmuDataExport *
amu_data_export_new(AmuContext *context, const char *grant_id, AmuExportFormat format, const char *path)
{
	AmuDataExport *self;

	g_return_val_if_fail(AMU_IS_CONTEXT(context), NULL);
	g_return_val_if_fail(grant_id != NULL && path != NULL, NULL);
	self = g_object_new(AMU_TYPE_DATA_EXPORT, NULL);
	self->context = g_object_ref(context);
	self->grant_id = g_strdup(grant_id);
	self->format = format;
	self->path = g_strdup(path);
	return self;
}

/**
 * amu_data_export_set_seal_to:
 * @recipient_public_key: (nullable): X25519 public key (32 bytes)
 *
 * Seal the export so only the holder of the matching secret key can open it
 * (amu_export_open_sealed()). The grant's recipient key, if it has one, must
 * be this key.
 *
 * Since: 0.1
 */
void
amu_data_export_set_seal_to(AmuDataExport *self, GBytes *recipient_public_key)
{
	g_return_if_fail(AMU_IS_DATA_EXPORT(self));
	g_clear_pointer(&self->seal_to, g_bytes_unref);
	if (recipient_public_key != NULL)
		self->seal_to = g_bytes_ref(recipient_public_key);
}

guint64
amu_data_export_get_n_samples(AmuDataExport *self)
{
	g_return_val_if_fail(AMU_IS_DATA_EXPORT(self), 0);
	return self->n_samples;
}

/**
 * amu_data_export_get_files:
 * Returns: (transfer none) (element-type utf8): the data files written, without the manifest
 * Since: 0.1
 */
GPtrArray *
amu_data_export_get_files(AmuDataExport *self)
{
	g_return_val_if_fail(AMU_IS_DATA_EXPORT(self), NULL);
	return self->files;
}

const char *
amu_data_export_get_manifest_sha256(AmuDataExport *self)
{
	g_return_val_if_fail(AMU_IS_DATA_EXPORT(self), NULL);
	return self->manifest_sha256;
}

const char *
amu_data_export_get_path(AmuDataExport *self)
{
	g_return_val_if_fail(AMU_IS_DATA_EXPORT(self), NULL);
	return self->path;
}

/* ------------------------------------------------------------------ coarsening */

void
amu_coarsener_init(AmuCoarsener *coarsener, AmuGranularity granularity, guint location_decimals)
{
	memset(coarsener, 0, sizeof(*coarsener));
	coarsener->granularity = granularity;
	coarsener->location_decimals = MIN(location_decimals, 7);
}

static gint32
round_to(gint32 value, gint32 step)
{
	gint64 q;

	if (step <= 1)
		return value;
	q = ((gint64)value + (value >= 0 ? step / 2 : -(step / 2))) / step;
	return (gint32)(q * step);
}

static void
coarsen_location(AmuCoarsener *coarsener, AmuSample *sample)
{
	static const gint32 steps[] = {10000000, 1000000, 100000, 10000, 1000, 100, 10, 1};

	if (sample->category != AMU_CATEGORY_LOCATION)
		return;
	sample->values[0] = round_to(sample->values[0], steps[coarsener->location_decimals]);
	sample->values[1] = round_to(sample->values[1], steps[coarsener->location_decimals]);
	/* keep inside the valid range after rounding */
	sample->values[0] = CLAMP(sample->values[0], -900000000, 900000000);
	sample->values[1] = CLAMP(sample->values[1], -1800000000, 1800000000);
}

static void
coarsener_emit(AmuCoarsener *coarsener, AmuSample *out)
{
	*out = coarsener->first;
	out->timestamp_ms = coarsener->bucket;
	switch (coarsener->category) {
	case AMU_CATEGORY_HEART_RATE:
	case AMU_CATEGORY_SPO2:
	case AMU_CATEGORY_SKIN_TEMP:
	case AMU_CATEGORY_RESPIRATORY_RATE:
	case AMU_CATEGORY_BATTERY: {
		/* the mean, rounded half away from zero */
		gint64 n = (gint64)coarsener->count;
		out->values[0] = (gint32)((coarsener->sum * 2 + (coarsener->sum >= 0 ? n : -n)) / (2 * n));
		break;
	}
	case AMU_CATEGORY_STEPS:
		out->values[0] = (gint32)MIN(coarsener->sum, G_MAXINT32);
		break;
	case AMU_CATEGORY_SLEEP_STAGE: {
		guint best = 0;
		for (guint i = 1; i < G_N_ELEMENTS(coarsener->stages); i++) {
			if (coarsener->stages[i] > coarsener->stages[best])
				best = i;
		}
		out->values[0] = (gint32)best;
		break;
	}
	case AMU_CATEGORY_LOCATION:
	case AMU_CATEGORY_TOY_EVENT:
		/* the first fix or event of the interval */
		break;
	}
	coarsen_location(coarsener, out);
}

gboolean
amu_coarsener_add(AmuCoarsener *coarsener, const AmuSample *sample, AmuSample *out)
{
	gint64 width = amu_granularity_get_ms(coarsener->granularity);
	gint64 bucket;
	gboolean emitted = FALSE;

	if (width == 0) {
		*out = *sample;
		coarsen_location(coarsener, out);
		return TRUE;
	}
	bucket = sample->timestamp_ms - ((sample->timestamp_ms % width) + width) % width;
	if (coarsener->have && (bucket != coarsener->bucket || sample->category != coarsener->category)) {
		coarsener_emit(coarsener, out);
		coarsener->have = FALSE;
		emitted = TRUE;
	}
	if (!coarsener->have) {
		coarsener->have = TRUE;
		coarsener->bucket = bucket;
		coarsener->category = sample->category;
		coarsener->sum = 0;
		coarsener->count = 0;
		memset(coarsener->stages, 0, sizeof(coarsener->stages));
		coarsener->first = *sample;
	}
	coarsener->sum += sample->values[0];
	coarsener->count++;
	if (sample->category == AMU_CATEGORY_SLEEP_STAGE && sample->values[0] >= 0 && sample->values[0] < 4)
		coarsener->stages[sample->values[0]]++;
	return emitted;
}

gboolean
amu_coarsener_flush(AmuCoarsener *coarsener, AmuSample *out)
{
	if (!coarsener->have)
		return FALSE;
	coarsener_emit(coarsener, out);
	coarsener->have = FALSE;
	return TRUE;
}

/* ------------------------------------------------------------------ running */

static gboolean
export_refuse(AmuDataExport *self, const char *reason_prefix, GError **error)
{
	g_autoptr(GError) log_error = NULL;
	g_autofree char *reason = g_strdup_printf("%s%s", reason_prefix, (*error)->message);

	/* a refused export is an access attempt too: log it (OTA 25) */
	if (!amu_context_record_access(self->context, self->grant_id, amu_export_format_to_string(self->format), 0,
				       NULL, reason, &log_error))
		g_warning("cannot log the refused export: %s", log_error->message);
	return FALSE;
}

static gboolean
prepare_dir(const char *dir, GError **error)
{
	g_autoptr(GDir) existing = NULL;

	if (g_mkdir(dir, 0700) == 0)
		return TRUE;
	if (errno != EEXIST) {
		int errsv = errno;
		g_set_error(error, AMU_ERROR, errsv == ENOSPC ? AMU_ERROR_NO_SPACE
					      : errsv == EACCES || errsv == EROFS ? AMU_ERROR_PERMISSION_DENIED
										       : AMU_ERROR_IO,
			    "cannot create %s: %s", dir, g_strerror(errsv));
		return FALSE;
	}
	existing = g_dir_open(dir, 0, error);
	if (existing == NULL)
		return FALSE;
	if (g_dir_read_name(existing) != NULL) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_EXISTS, "%s is not empty: export into a new directory", dir);
		return FALSE;
	}
	return TRUE;
}

static char *
iso_time(gint64 ms)
{
	g_autoptr(GDateTime) t = NULL;

	if (ms <= 0 || ms == G_MAXINT64)
		return NULL;
	t = g_date_time_new_from_unix_utc(ms / 1000);
	return t != NULL ? g_date_time_format(t, "%Y-%m-%dT%H:%M:%SZ") : NULL;
}

static void
add_time(JsonBuilder *builder, const char *name, gint64 ms)
{
	g_autofree char *text = iso_time(ms);

	json_builder_set_member_name(builder, name);
	if (text != NULL)
		json_builder_add_string_value(builder, text);
	else
		json_builder_add_null_value(builder);
}

static char *
hex_of(const void *data, size_t len)
{
	char *hex = g_malloc(len * 2 + 1);
	sodium_bin2hex(hex, len * 2 + 1, data, len);
	return hex;
}

/* The consent receipt (Kantara Consent Receipt v1.1 fields, as carried on in
 * ISO/IEC TS 27560), the grant, what was exported, and the file digests. */
static JsonNode *
build_manifest(AmuDataExport *self, AmuConsent *consent, AmuDevice *device, const uint8_t owner_pk[32],
	       gint64 now_ms)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(GArray) categories = amu_consent_get_categories(consent);
	g_autofree char *receipt_id = NULL;
	g_autofree char *owner_hex = hex_of(owner_pk, 32);
	g_autofree char *host_fingerprint = amu_context_get_fingerprint(self->context);
	g_autofree char *withdrawal = g_strdup_printf(
		"the owner runs 'amulet consent revoke %s' (or amu_context_revoke_consent()); this stops future "
		"exports but cannot recall copies already made",
		amu_consent_get_id(consent));
	AmuDisclosure *disclosure = amu_device_get_disclosure(device);
	GBytes *recipient_key = amu_consent_get_recipient_key(consent);
	gint64 from_ms, to_ms;
	uint8_t id_bytes[16];

	randombytes_buf(id_bytes, sizeof(id_bytes));
	receipt_id = hex_of(id_bytes, sizeof(id_bytes));
	amu_consent_get_range(consent, &from_ms, &to_ms);

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "format");
	json_builder_add_string_value(b, AMU_EXPORT_MANIFEST_FORMAT);
	json_builder_set_member_name(b, "version");
	json_builder_add_int_value(b, 1);

	json_builder_set_member_name(b, "consent_receipt");
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "version");
	json_builder_add_string_value(b, "KI-CR-v1.1.0");
	json_builder_set_member_name(b, "jurisdiction");
	json_builder_add_string_value(b, "EU");
	add_time(b, "consent_timestamp", amu_consent_get_created(consent));
	json_builder_set_member_name(b, "collection_method");
	json_builder_add_string_value(b, "owner confirmed the impact text in amulet (consent grant)");
	json_builder_set_member_name(b, "consent_receipt_id");
	json_builder_add_string_value(b, receipt_id);
	json_builder_set_member_name(b, "language");
	json_builder_add_string_value(b, "en");
	json_builder_set_member_name(b, "pii_principal_id");
	json_builder_add_string_value(b, host_fingerprint);
	json_builder_set_member_name(b, "pii_controllers");
	json_builder_begin_array(b);
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "pii_controller");
	json_builder_add_string_value(b, "the owner of the device, through this host");
	json_builder_set_member_name(b, "on_behalf");
	json_builder_add_boolean_value(b, FALSE);
	json_builder_set_member_name(b, "public_key");
	json_builder_add_string_value(b, owner_hex);
	json_builder_end_object(b);
	json_builder_end_array(b);
	json_builder_set_member_name(b, "policy_url");
	json_builder_add_string_value(b, disclosure != NULL ? amu_disclosure_get_privacy_policy_url(disclosure) : "");
	json_builder_set_member_name(b, "services");
	json_builder_begin_array(b);
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "service");
	json_builder_add_string_value(b, "export of wearable telemetry to a named recipient");
	json_builder_set_member_name(b, "purposes");
	json_builder_begin_array(b);
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "purpose");
	json_builder_add_string_value(b, amu_consent_get_purpose(consent));
	json_builder_set_member_name(b, "consent_type");
	json_builder_add_string_value(b, "EXPLICIT");
	json_builder_set_member_name(b, "pii_category");
	json_builder_begin_array(b);
	for (guint i = 0; i < categories->len; i++)
		json_builder_add_string_value(b, amu_category_to_string(g_array_index(categories, AmuCategory, i)));
	json_builder_end_array(b);
	json_builder_set_member_name(b, "primary_purpose");
	json_builder_add_boolean_value(b, TRUE);
	json_builder_set_member_name(b, "termination");
	{
		g_autofree char *until = iso_time(amu_consent_get_expires(consent));
		g_autofree char *text = g_strdup_printf("the grant ends %s, or when revoked", until != NULL ? until : "never");
		json_builder_add_string_value(b, text);
	}
	json_builder_set_member_name(b, "third_party_disclosure");
	json_builder_add_boolean_value(b, TRUE);
	json_builder_set_member_name(b, "third_party_name");
	json_builder_add_string_value(b, amu_consent_get_recipient_name(consent));
	json_builder_end_object(b);
	json_builder_end_array(b);
	json_builder_end_object(b);
	json_builder_end_array(b);
	json_builder_set_member_name(b, "sensitive");
	json_builder_add_boolean_value(b, TRUE);
	json_builder_set_member_name(b, "spi_cat");
	json_builder_begin_array(b);
	json_builder_add_string_value(b, "health");
	json_builder_end_array(b);
	json_builder_set_member_name(b, "retention");
	json_builder_add_string_value(b, "as agreed between the owner and the recipient; the grant states the purpose");
	json_builder_set_member_name(b, "withdrawal_method");
	json_builder_add_string_value(b, withdrawal);
	json_builder_end_object(b);

	json_builder_set_member_name(b, "grant");
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "id");
	json_builder_add_string_value(b, amu_consent_get_id(consent));
	json_builder_set_member_name(b, "device_id");
	json_builder_add_string_value(b, amu_consent_get_device_id(consent));
	json_builder_set_member_name(b, "categories");
	json_builder_begin_array(b);
	for (guint i = 0; i < categories->len; i++)
		json_builder_add_string_value(b, amu_category_to_string(g_array_index(categories, AmuCategory, i)));
	json_builder_end_array(b);
	json_builder_set_member_name(b, "purpose");
	json_builder_add_string_value(b, amu_consent_get_purpose(consent));
	json_builder_set_member_name(b, "recipient");
	json_builder_add_string_value(b, amu_consent_get_recipient_name(consent));
	json_builder_set_member_name(b, "recipient_key");
	if (recipient_key != NULL) {
		g_autofree char *hex = hex_of(g_bytes_get_data(recipient_key, NULL), g_bytes_get_size(recipient_key));
		json_builder_add_string_value(b, hex);
	} else {
		json_builder_add_null_value(b);
	}
	json_builder_set_member_name(b, "from_ms");
	json_builder_add_int_value(b, from_ms);
	json_builder_set_member_name(b, "to_ms");
	json_builder_add_int_value(b, to_ms);
	json_builder_set_member_name(b, "granularity");
	json_builder_add_string_value(b, amu_granularity_to_string(amu_consent_get_granularity(consent)));
	json_builder_set_member_name(b, "location_decimals");
	json_builder_add_int_value(b, amu_consent_get_location_decimals(consent));
	add_time(b, "created", amu_consent_get_created(consent));
	add_time(b, "expires", amu_consent_get_expires(consent));
	json_builder_set_member_name(b, "guardian");
	if (amu_consent_get_guardian(consent) != NULL)
		json_builder_add_string_value(b, amu_consent_get_guardian(consent));
	else
		json_builder_add_null_value(b);
	json_builder_end_object(b);

	json_builder_set_member_name(b, "device");
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "name");
	json_builder_add_string_value(b, amu_device_get_name(device));
	json_builder_set_member_name(b, "id");
	json_builder_add_string_value(b, amu_device_get_id(device));
	json_builder_set_member_name(b, "profile");
	json_builder_add_string_value(b, amu_device_get_profile(device));
	json_builder_set_member_name(b, "model");
	json_builder_add_string_value(b, disclosure != NULL ? amu_disclosure_get_model(disclosure) : "");
	json_builder_end_object(b);

	json_builder_set_member_name(b, "export");
	json_builder_begin_object(b);
	add_time(b, "created", now_ms);
	json_builder_set_member_name(b, "format");
	json_builder_add_string_value(b, amu_export_format_to_string(self->format));
	json_builder_set_member_name(b, "sealed_to");
	if (self->seal_to != NULL) {
		g_autofree char *hex = hex_of(g_bytes_get_data(self->seal_to, NULL), g_bytes_get_size(self->seal_to));
		json_builder_add_string_value(b, hex);
	} else {
		json_builder_add_null_value(b);
	}
	json_builder_set_member_name(b, "samples");
	json_builder_begin_object(b);
	for (int c = AMU_CATEGORY_FIRST; c <= AMU_CATEGORY_LAST; c++) {
		if (self->per_category[c] == 0)
			continue;
		json_builder_set_member_name(b, amu_category_to_string(c));
		json_builder_add_int_value(b, (gint64)self->per_category[c]);
	}
	json_builder_end_object(b);
	json_builder_set_member_name(b, "total");
	json_builder_add_int_value(b, (gint64)self->n_samples);
	json_builder_end_object(b);

	json_builder_set_member_name(b, "files");
	json_builder_begin_array(b);
	for (guint i = 0; i < self->written->len; i++) {
		const AmuExportFile *file = g_ptr_array_index(self->written, i);

		json_builder_begin_object(b);
		json_builder_set_member_name(b, "name");
		json_builder_add_string_value(b, file->name);
		json_builder_set_member_name(b, "sha256");
		json_builder_add_string_value(b, file->sha256);
		json_builder_set_member_name(b, "bytes");
		json_builder_add_int_value(b, (gint64)file->size);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	json_builder_set_member_name(b, "owner_public_key");
	json_builder_add_string_value(b, owner_hex);
	json_builder_end_object(b);
	return json_builder_get_root(b);
}

static gboolean
write_manifest(AmuDataExport *self, const char *dir, AmuConsent *consent, AmuDevice *device, gint64 now_ms,
	       AmuExportSync *sync, GError **error)
{
	g_autoptr(JsonNode) root = NULL;
	g_autoptr(JsonGenerator) generator = json_generator_new();
	g_autofree char *text = NULL;
	g_autofree char *signature_b64 = NULL;
	uint8_t owner_pk[crypto_sign_PUBLICKEYBYTES], signature[crypto_sign_BYTES], digest[crypto_hash_sha256_BYTES];
	uint8_t *owner_sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	gsize len = 0;

	/* the writer hashed each data file as it wrote it */
	amu_context_get_signing_keys(self->context, owner_pk, owner_sk);
	root = build_manifest(self, consent, device, owner_pk, now_ms);
	json_generator_set_root(generator, root);
	json_generator_set_pretty(generator, TRUE);
	text = json_generator_to_data(generator, &len);
	crypto_sign_detached(signature, NULL, (const uint8_t *)text, len, owner_sk);
	sodium_free(owner_sk);
	signature_b64 = g_base64_encode(signature, sizeof(signature));
	crypto_hash_sha256(digest, (const uint8_t *)text, len);
	g_free(self->manifest_sha256);
	self->manifest_sha256 = hex_of(digest, sizeof(digest));
	/* synced with the data files by @sync; what a crash leaves before
	 * that, verify refuses: the signature covers the manifest, and the
	 * manifest each file's digest */
	return amu_export_write_small_file(dir, AMU_EXPORT_MANIFEST, text, len, sync, error) &&
	       amu_export_write_small_file(dir, AMU_EXPORT_SIGNATURE, signature_b64, strlen(signature_b64), sync,
					   error);
}

static void
remove_tree(const char *dir)
{
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	const char *name;

	while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
		g_autofree char *path = g_build_filename(dir, name, NULL);
		g_unlink(path);
	}
	g_rmdir(dir);
}

static gboolean
format_carries(AmuExportFormat format, AmuCategory category)
{
	switch (format) {
	case AMU_EXPORT_FORMAT_GPX:
		return category == AMU_CATEGORY_LOCATION;
	case AMU_EXPORT_FORMAT_FHIR:
		/* vital signs and activity only; GPX carries location */
		return category != AMU_CATEGORY_LOCATION && category != AMU_CATEGORY_BATTERY &&
		       category != AMU_CATEGORY_TOY_EVENT;
	case AMU_EXPORT_FORMAT_JSON:
	case AMU_EXPORT_FORMAT_CSV:
		break;
	}
	return TRUE;
}

static gint
category_compare(gconstpointer a, gconstpointer b)
{
	return *(const AmuCategory *)a - *(const AmuCategory *)b;
}

static gboolean
export_samples(AmuDataExport *self, AmuConsent *consent, AmuDevice *device, const char *dir, AmuExportSync *sync,
	       AmuExportProgressFunc progress_func, gpointer progress_data, GCancellable *cancellable, gint64 now_ms,
	       GError **error)
{
	g_autoptr(GArray) categories = amu_consent_get_categories(consent);
	g_autoptr(AmuExportWriter) writer = NULL;
	g_autoptr(GPtrArray) files = NULL;
	AmuDisclosure *disclosure = amu_device_get_disclosure(device);
	AmuExportInfo info = {0};
	AmuSyncState state;
	guint64 total = 0;
	gint64 from_ms, to_ms;

	amu_consent_get_range(consent, &from_ms, &to_ms);
	{
		/* only whole intervals: a value standing for 06:00-07:00 must not hold
		 * samples from before a range that starts at 06:30, nor leave some out */
		gint64 width = amu_granularity_get_ms(amu_consent_get_granularity(consent));
		if (width > 0) {
			if (from_ms > 0 && from_ms % width != 0)
				from_ms += width - from_ms % width;
			if (to_ms != G_MAXINT64)
				to_ms -= ((to_ms % width) + width) % width;
			to_ms = MAX(to_ms, from_ms);
		}
	}
	info.device_name = amu_device_get_name(device);
	info.device_id = amu_device_get_id(device);
	info.device_model = disclosure != NULL ? amu_disclosure_get_model(disclosure) : "";
	info.device_profile = amu_device_get_profile(device);
	info.grant_id = amu_consent_get_id(consent);
	info.recipient = amu_consent_get_recipient_name(consent);
	info.purpose = amu_consent_get_purpose(consent);
	info.granularity = amu_consent_get_granularity(consent);
	info.from_ms = from_ms;
	info.to_ms = to_ms;
	info.created_ms = now_ms;
	/* the total is only for progress: counting reads every block row */
	memset(&state, 0, sizeof(state));
	if (progress_func != NULL && !amu_device_get_sync_state(device, &state, error))
		return FALSE;
	for (guint i = 0; i < categories->len; i++) {
		if (format_carries(self->format, g_array_index(categories, AmuCategory, i)))
			total += state.n_samples[g_array_index(categories, AmuCategory, i)];
	}
	writer = amu_export_writer_new(self->format, dir, &info, error);
	if (writer == NULL)
		return FALSE;
	amu_export_writer_set_sync(writer, sync);
	/* category by category, in the writers' order */
	g_array_sort(categories, category_compare);
	for (guint i = 0; i < categories->len; i++) {
		AmuCategory category = g_array_index(categories, AmuCategory, i);
		g_autoptr(AmuSampleIter) iter = NULL;

		/* only what the format carries, so the manifest counts what the files hold */
		if (!format_carries(self->format, category))
			continue;
		iter = amu_device_query_samples(device, category, from_ms, to_ms, error);
		AmuCoarsener coarsener;
		AmuSample sample, out;
		GError *error_local = NULL;
		guint64 read = 0;

		if (iter == NULL)
			return FALSE;
		amu_coarsener_init(&coarsener, amu_consent_get_granularity(consent),
				   amu_consent_get_location_decimals(consent));
		while (amu_sample_iter_next(iter, &sample, &error_local)) {
			if (amu_coarsener_add(&coarsener, &sample, &out)) {
				if (!amu_export_writer_add(writer, &out, error))
					return FALSE;
				self->per_category[out.category]++;
				self->n_samples++;
			}
			if ((++read & 0xffff) == 0) {
				/* the callback may cancel: look after it */
				if (progress_func != NULL)
					progress_func(self, self->n_samples, total, progress_data);
				if (g_cancellable_set_error_if_cancelled(cancellable, error))
					return FALSE;
			}
		}
		if (error_local != NULL) {
			g_propagate_error(error, error_local);
			return FALSE;
		}
		if (amu_coarsener_flush(&coarsener, &out)) {
			if (!amu_export_writer_add(writer, &out, error))
				return FALSE;
			self->per_category[out.category]++;
			self->n_samples++;
		}
	}
	/* a last chance to cancel before the export is made complete */
	if (progress_func != NULL)
		progress_func(self, self->n_samples, total, progress_data);
	if (g_cancellable_set_error_if_cancelled(cancellable, error))
		return FALSE;
	if (!amu_export_writer_finish(writer, &files, error))
		return FALSE;
	for (guint i = 0; i < files->len; i++)
		g_ptr_array_add(self->files, g_strdup(((const AmuExportFile *)g_ptr_array_index(files, i))->name));
	g_clear_pointer(&self->written, g_ptr_array_unref);
	self->written = g_steal_pointer(&files);
	if (progress_func != NULL)
		progress_func(self, self->n_samples, self->n_samples, progress_data);
	return TRUE;
}

/**
 * amu_data_export_run:
 * @progress_func: (nullable) (scope call): called every 65,536 samples read,
 *   once more before the files are completed, and at the end
 * @cancellable: (nullable): checked after each call of @progress_func but the
 *   last, which may cancel it
 *
 * Checks the grant (in force, not revoked or expired, guardian approval for
 * a toy, the format possible with the granted categories), then writes the
 * export and its signed manifest, seals it if asked, and logs the access.
 * A refused export fails with %AMU_ERROR_CONSENT_DENIED and is logged too.
 * A cancelled one fails with %G_IO_ERROR_CANCELLED, removes what it wrote
 * and logs nothing.
 *
 * Since: 0.1
 */
gboolean
amu_data_export_run(AmuDataExport *self, AmuExportProgressFunc progress_func, gpointer progress_data,
	       GCancellable *cancellable, GError **error)
{
	g_autoptr(AmuConsent) consent = NULL;
	g_autoptr(AmuDevice) device = NULL;
	g_autoptr(GError) log_error = NULL;
	g_autofree char *work_dir = NULL;
	AmuExportSync *sync = NULL;
	GBytes *recipient_key;
	gint64 now = g_get_real_time() / 1000;
	gboolean ok;

	g_return_val_if_fail(AMU_IS_DATA_EXPORT(self), FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (amu_export_format_to_string(self->format) == NULL) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT, "unknown export format %d", self->format);
		return FALSE;
	}
	consent = amu_context_find_consent(self->context, self->grant_id, error);
	if (consent == NULL) {
		if (g_error_matches(*error, AMU_ERROR, AMU_ERROR_NOT_FOUND)) {
			/* default deny: no grant, no export */
			g_autofree char *message = g_strdup((*error)->message);
			g_clear_error(error);
			g_set_error(error, AMU_ERROR, AMU_ERROR_CONSENT_DENIED, "%s: nothing leaves without a grant",
				    message);
			return export_refuse(self, "", error);
		}
		return FALSE;
	}
	if (!amu_consent_check_valid(consent, now, error))
		return export_refuse(self, "", error);
	if (self->format == AMU_EXPORT_FORMAT_GPX && !amu_consent_has_category(consent, AMU_CATEGORY_LOCATION)) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_CONSENT_DENIED,
			    "GPX carries locations, and grant %s does not include location", self->grant_id);
		return export_refuse(self, "", error);
	}
	recipient_key = amu_consent_get_recipient_key(consent);
	if (self->seal_to != NULL && recipient_key != NULL && !g_bytes_equal(self->seal_to, recipient_key)) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_CONSENT_DENIED,
			    "grant %s names another recipient key than the one to seal to", self->grant_id);
		return export_refuse(self, "", error);
	}
	if (self->seal_to != NULL && g_bytes_get_size(self->seal_to) != crypto_box_PUBLICKEYBYTES) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT, "the key to seal to must be 32 bytes (X25519)");
		return FALSE;
	}
	device = amu_context_find_device(self->context, amu_consent_get_device_id(consent), error);
	if (device == NULL) {
		g_prefix_error(error, "the device of grant %s: ", self->grant_id);
		return FALSE;
	}
	if (self->seal_to != NULL) {
		if (g_file_test(self->path, G_FILE_TEST_EXISTS)) {
			g_set_error(error, AMU_ERROR, AMU_ERROR_EXISTS, "%s exists: seal into a new file", self->path);
			return FALSE;
		}
		work_dir = g_strdup_printf("%s.partial", self->path);
	} else {
		work_dir = g_strdup(self->path);
	}
	if (!prepare_dir(work_dir, error))
		return FALSE;
	sync = amu_export_sync_new();
	ok = export_samples(self, consent, device, work_dir, sync, progress_func, progress_data, cancellable, now,
			    error) &&
	     write_manifest(self, work_dir, consent, device, now, sync, error);
	/* the files, the directory and its name at once; a sealed export's
	 * directory is only read back and removed */
	if (ok && self->seal_to == NULL)
		ok = amu_export_sync_finish(sync, work_dir, error);
	if (ok && self->seal_to != NULL) {
		g_ptr_array_add(self->files, g_strdup(AMU_EXPORT_MANIFEST));
		g_ptr_array_add(self->files, g_strdup(AMU_EXPORT_SIGNATURE));
		ok = amu_export_seal_dir(work_dir, self->files, g_bytes_get_data(self->seal_to, NULL), self->path, error);
		g_ptr_array_set_size(self->files, self->files->len - 2);
		if (ok) {
			/* the sealed file's own name */
			g_autofree char *parent = g_path_get_dirname(self->path);
			ok = amu_export_sync_dir(parent, error);
		}
	}
	g_clear_pointer(&sync, amu_export_sync_free);
	if (!ok || self->seal_to != NULL)
		remove_tree(work_dir);
	if (!ok)
		return FALSE;
	if (!amu_context_record_access(self->context, self->grant_id, amu_export_format_to_string(self->format),
				       self->n_samples, self->manifest_sha256, NULL, &log_error))
		/* the export exists: say it could not be logged rather than pretend */
		g_warning("export written but not logged: %s", log_error->message);
	return TRUE;
}
