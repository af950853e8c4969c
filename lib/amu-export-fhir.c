/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-export-writer-private.h"

/* FHIR R4: a collection Bundle with an Observation (LOINC code, UCUM unit)
 * per sample that has a code; the rest are left out. The text around an
 * entry's time and value depends only on the kind of Observation and the
 * export, so it is built once per kind and copied. An entry's id is a UUID
 * from the device, granularity, category, time and repeat count: the same
 * on every export of the same data. */

/* a raw sleep-stage sample stands for a 30 s epoch, a raw steps sample for a minute */
#define SLEEP_EPOCH_MS 30000
#define STEPS_INTERVAL_MS 60000

/* ---------------------------------------------------------------- codes */

/* Aggregated epochs keep only the most frequent stage; saying so stops a
 * reader from adding them up into measured stage durations. */
#define SLEEP_NOTE(stage)                                                                          \
	stage " sleep was the most frequent stage in the period; the value is the period's "       \
	      "length, not the time measured in that stage."
#define LOINC(code, display)                                                                       \
	"{\"system\":\"http://loinc.org\",\"code\":\"" code "\",\"display\":\"" display "\"}"

static const struct {
	const char *category; /* http://terminology.hl7.org/CodeSystem/observation-category */
	const char *category_display;
	const char *codings;
	const char *text;
	const char *unit;      /* valueQuantity.unit, for people */
	const char *ucum;      /* valueQuantity.code */
	const char *aggregate; /* what an aggregated value is, for Observation.note */
} fhir_codes[] = {
	[FHIR_HEART_RATE] = { "vital-signs",
			      "Vital Signs",
			      LOINC("8867-4", "Heart rate"),
			      "Heart rate",
			      "beats/minute",
			      "/min",
			      "Mean heart rate over the period." },
	[FHIR_SPO2] = { "vital-signs",
			"Vital Signs",
			LOINC("2708-6", "Oxygen saturation in Arterial blood") "," LOINC(
			  "59408-5",
			  "Oxygen saturation in Arterial blood by Pulse oximetry"),
			"Oxygen saturation by pulse oximetry",
			"%",
			"%",
			"Mean saturation over the period." },
	[FHIR_STEPS] = { "activity",
			 "Activity",
			 LOINC("55423-8", "Number of steps in unspecified time Pedometer"),
			 "Steps",
			 "steps",
			 "{steps}",
			 "Steps counted in the period." },
	[FHIR_RESPIRATORY_RATE] = { "vital-signs",
				    "Vital Signs",
				    LOINC("9279-1", "Respiratory rate"),
				    "Respiratory rate",
				    "breaths/minute",
				    "/min",
				    "Mean respiratory rate over the period." },
	/* The vital-signs profile knows body temperature only; the text
	 * keeps a reader from taking 33 degrees on the wrist for hypothermia. */
	[FHIR_SKIN_TEMP] = { "vital-signs",
			     "Vital Signs",
			     LOINC("8310-5", "Body temperature"),
			     "Skin temperature measured by a wearable on the skin, not core body "
			     "temperature",
			     "C",
			     "Cel",
			     "Mean skin temperature over the period." },
	[FHIR_SLEEP_LIGHT] = { "activity",
			       "Activity",
			       LOINC("93830-8", "Light sleep duration"),
			       "Light sleep duration",
			       "min",
			       "min",
			       SLEEP_NOTE("Light") },
	[FHIR_SLEEP_DEEP] = { "activity",
			      "Activity",
			      LOINC("93831-6", "Deep sleep duration"),
			      "Deep sleep duration",
			      "min",
			      "min",
			      SLEEP_NOTE("Deep") },
	[FHIR_SLEEP_REM] = { "activity",
			     "Activity",
			     LOINC("93829-0", "REM sleep duration"),
			     "REM sleep duration",
			     "min",
			     "min",
			     SLEEP_NOTE("REM") },
};

/* ---------------------------------------------------------------- ids */

/* 128 stable bits from text: ids that come out the same on every export of
 * the same data, and differ between devices, granularities and grants */
static void
hash_key(const char *text, guint64 key[2])
{
	g_autoptr(GChecksum) checksum = g_checksum_new(G_CHECKSUM_SHA256);
	guint8 digest[32];
	gsize len = sizeof(digest);

	g_checksum_update(checksum, (const guchar *)text, -1);
	g_checksum_get_digest(checksum, digest, &len);
	key[0] = key[1] = 0;
	for (guint i = 0; i < 8; i++) {
		key[0] = key[0] << 8 | digest[i];
		key[1] = key[1] << 8 | digest[8 + i];
	}
}

/* an RFC 9562 version 8 (custom) UUID: FHIR ids and urn:uuid: full URLs */
static char *
put_uuid(char *out, guint64 high, guint64 low)
{
	static const char hex[] = "0123456789abcdef";

	high = (high & ~G_GUINT64_CONSTANT(0xf000)) | G_GUINT64_CONSTANT(0x8000);
	low = (low & ~(G_GUINT64_CONSTANT(3) << 62)) | G_GUINT64_CONSTANT(2) << 62;
	for (guint i = 0; i < 16; i++) {
		guint64 half = i < 8 ? high : low;
		guint byte = (guint)(half >> (56 - 8 * (i % 8))) & 0xff;
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*out++ = '-';
		*out++ = hex[byte >> 4];
		*out++ = hex[byte & 0xf];
	}
	return out;
}

/* ---------------------------------------------------------------- entries */

static void
fhir_build_templates(AmuExportWriter *self)
{
	g_autoptr(GString) device = g_string_new(self->device_name);
	gsize longest = 0;

	if (self->device_model != NULL)
		g_string_append_printf(device, " (%s)", self->device_model);
	for (guint kind = FHIR_HEART_RATE; kind < FHIR_N_KINDS; kind++) {
		GString *head = g_string_new(NULL);
		GString *tail = g_string_new(NULL);

		g_string_append_printf(
		  head,
		  "\"status\":\"final\",\"category\":[{\"coding\":[{\"system\":"
		  "\"http://terminology.hl7.org/CodeSystem/observation-category\","
		  "\"code\":\"%s\",\"display\":\"%s\"}]}],\"code\":{\"coding\":[%s],"
		  "\"text\":\"%s\"},\"subject\":{\"display\":",
		  fhir_codes[kind].category,
		  fhir_codes[kind].category_display,
		  fhir_codes[kind].codings,
		  fhir_codes[kind].text);
		amu_export_json_append_string(head, self->device_name);
		g_string_append(head, "},\"device\":{\"display\":");
		amu_export_json_append_string(head, device->str);
		g_string_append(head, "},");
		g_string_append_printf(
		  tail,
		  ",\"unit\":\"%s\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"%s\"}",
		  fhir_codes[kind].unit,
		  fhir_codes[kind].ucum);
		if (self->interval_ms != 0)
			g_string_append_printf(
			  tail, ",\"note\":[{\"text\":\"%s\"}]", fhir_codes[kind].aggregate);
		g_string_append(tail, "}}");
		self->fhir_head[kind] = head;
		self->fhir_tail[kind] = tail;
		longest = MAX(longest, head->len + tail->len);
	}
	self->fhir_record = g_malloc(RECORD_MAX + longest);
}

void
amu_export_fhir_begin(AmuExportWriter *self)
{
	g_autoptr(GString) head = g_string_sized_new(256);
	g_autofree char *seed = g_strdup_printf("amulet-fhir-bundle\n%s\n%s\n%s\n%" G_GINT64_FORMAT,
						self->device_id,
						self->grant_id,
						amu_granularity_to_string(self->granularity),
						self->created_ms);
	g_autofree char *key_seed = g_strdup_printf("amulet-fhir-observation\n%s\n%s",
						    self->device_id,
						    amu_granularity_to_string(self->granularity));
	guint64 bundle_key[2];
	char uuid[36];

	hash_key(seed, bundle_key);
	hash_key(key_seed, self->fhir_id_key);
	put_uuid(uuid, bundle_key[0], bundle_key[1]);
	fhir_build_templates(self);
	g_string_append(head, "{\"resourceType\":\"Bundle\",\"id\":\"");
	g_string_append_len(head, uuid, sizeof(uuid));
	g_string_append(head, "\",\"meta\":{\"lastUpdated\":");
	amu_export_json_append_time(head, &self->time_cache, self->created_ms);
	g_string_append(head, "},\"type\":\"collection\",\"timestamp\":");
	amu_export_json_append_time(head, &self->time_cache, self->created_ms);
	/* "entry":[ comes with the first entry: FHIR JSON has no empty arrays */
	writer_put_gstring(self, head);
}

/* Battery, toy events and location are not clinical observations (GPX
 * carries location), and an awake epoch has no sleep-duration code: these
 * stay FHIR_NONE and are left out of the bundle. */
static const FhirKind fhir_kinds[] = {
	[AMU_CATEGORY_HEART_RATE] = FHIR_HEART_RATE,
	[AMU_CATEGORY_STEPS] = FHIR_STEPS,
	[AMU_CATEGORY_SPO2] = FHIR_SPO2,
	[AMU_CATEGORY_SKIN_TEMP] = FHIR_SKIN_TEMP,
	[AMU_CATEGORY_RESPIRATORY_RATE] = FHIR_RESPIRATORY_RATE,
	[AMU_CATEGORY_LOCATION] = FHIR_NONE,
	[AMU_CATEGORY_BATTERY] = FHIR_NONE,
	[AMU_CATEGORY_TOY_EVENT] = FHIR_NONE,
};
static const FhirKind fhir_sleep_kinds[] = {
	[AMU_SLEEP_STAGE_AWAKE] = FHIR_NONE,
	[AMU_SLEEP_STAGE_LIGHT] = FHIR_SLEEP_LIGHT,
	[AMU_SLEEP_STAGE_DEEP] = FHIR_SLEEP_DEEP,
	[AMU_SLEEP_STAGE_REM] = FHIR_SLEEP_REM,
};

void
amu_export_fhir_add(AmuExportWriter *self, const AmuSample *sample)
{
	char *record = self->fhir_record;
	char *p = record;
	char *uuid;
	gint64 period_ms = self->interval_ms;
	guint64 injective;
	/* amu_export_writer_add() checked the category and the stage */
	FhirKind kind = sample->category == AMU_CATEGORY_SLEEP_STAGE
			  ? fhir_sleep_kinds[sample->values[0]]
			  : fhir_kinds[sample->category];

	if (kind == FHIR_NONE)
		return;
	/* category, time and repeat count fit in 62 bits and are kept whole,
	 * so no two entries of one device's export share an id */
	injective = (guint64)self->n_same_time << 52 | (guint64)sample->category << 48 |
		    (guint64)sample->timestamp_ms;
	p = self->n_records++ == 0 ? PUT_LITERAL(p, ",\"entry\":[\n{\"fullUrl\":\"urn:uuid:")
				   : PUT_LITERAL(p, ",\n{\"fullUrl\":\"urn:uuid:");
	uuid = p;
	p = put_uuid(p, self->fhir_id_key[0], self->fhir_id_key[1] ^ injective);
	p = PUT_LITERAL(p, "\",\"resource\":{\"resourceType\":\"Observation\",\"id\":\"");
	memmove(p, uuid, 36);
	p += 36;
	p = PUT_LITERAL(p, "\",");
	memcpy(p, self->fhir_head[kind]->str, self->fhir_head[kind]->len);
	p += self->fhir_head[kind]->len;

	/* raw steps and sleep stages stand for an interval too */
	if (period_ms == 0 && sample->category == AMU_CATEGORY_STEPS)
		period_ms = STEPS_INTERVAL_MS;
	else if (period_ms == 0 && sample->category == AMU_CATEGORY_SLEEP_STAGE)
		period_ms = SLEEP_EPOCH_MS;
	if (period_ms == 0) {
		p = PUT_LITERAL(p, "\"effectiveDateTime\":\"");
		p = put_time(&self->time_cache, sample->timestamp_ms, p);
		p = PUT_LITERAL(p, "\"");
	} else {
		p = PUT_LITERAL(p, "\"effectivePeriod\":{\"start\":\"");
		p = put_time(&self->time_cache, sample->timestamp_ms, p);
		p = PUT_LITERAL(p, "\",\"end\":\"");
		p = put_time(&self->time_cache, sample->timestamp_ms + period_ms, p);
		p = PUT_LITERAL(p, "\"}");
	}
	p = PUT_LITERAL(p, ",\"valueQuantity\":{\"value\":");
	switch (sample->category) {
	case AMU_CATEGORY_SPO2:
	case AMU_CATEGORY_RESPIRATORY_RATE:
		p = put_fixed(p, sample->values[0], 1);
		break;
	case AMU_CATEGORY_SKIN_TEMP:
		p = put_fixed(p, sample->values[0], 2);
		break;
	case AMU_CATEGORY_SLEEP_STAGE:
		/* the minutes the epoch or the period stands for */
		p = period_ms % 60000 == 0 ? put_int(p, period_ms / 60000)
					   : put_fixed(p, period_ms / 6000, 1);
		break;
	case AMU_CATEGORY_HEART_RATE:
	case AMU_CATEGORY_STEPS:
	case AMU_CATEGORY_LOCATION:
	case AMU_CATEGORY_BATTERY:
	case AMU_CATEGORY_TOY_EVENT:
		p = put_int(p, sample->values[0]);
		break;
	}
	memcpy(p, self->fhir_tail[kind]->str, self->fhir_tail[kind]->len);
	p += self->fhir_tail[kind]->len;
	amu_export_stream_put(&self->out, record, p - record);
}
