/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-export-writer-private.h"

/* GPX 1.1: the location samples as one track, with a new segment after a
 * pause between fixes. Other categories have no place in GPX and are
 * skipped. */

/* a pause longer than this between fixes starts a new track segment */
#define GPX_SEGMENT_GAP_MS (5 * 60 * 1000)

void
amu_export_gpx_begin(AmuExportWriter *self)
{
	g_autoptr(GString) head = g_string_sized_new(1024);
	g_autofree char *name = g_markup_escape_text(self->device_name, -1);
	g_autofree char *id = g_markup_escape_text(self->device_id, -1);
	g_autofree char *recipient = g_markup_escape_text(self->recipient, -1);
	g_autofree char *purpose = g_markup_escape_text(self->purpose, -1);
	g_autofree char *grant = g_markup_escape_text(self->grant_id, -1);
	char created[TIME_LEN];

	/* at hour or day granularity consecutive points are an interval apart */
	self->gpx_gap_ms = MAX(GPX_SEGMENT_GAP_MS, self->interval_ms);
	put_time(&self->time_cache, self->created_ms, created);
	g_string_append(head,
			"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			"<gpx version=\"1.1\" creator=\"Amulet " PACKAGE_VERSION "\" "
			"xmlns=\"http://www.topografix.com/GPX/1/1\" "
			"xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
			"xsi:schemaLocation=\"http://www.topografix.com/GPX/1/1 "
			"http://www.topografix.com/GPX/1/1/gpx.xsd\">\n"
			" <metadata>\n");
	g_string_append_printf(head, "  <name>Location of %s</name>\n", name);
	g_string_append_printf(
	  head,
	  "  <desc>Device %s, exported for %s (%s) under consent grant %s; granularity %s",
	  id,
	  recipient,
	  purpose,
	  grant,
	  amu_granularity_to_string(self->granularity));
	if (self->interval_ms != 0)
		g_string_append(
		  head, ": each point is the first fix of the interval starting at its time");
	g_string_append_printf(
	  head, ".</desc>\n  <time>%.*s</time>\n </metadata>\n", TIME_LEN, created);
	writer_put_gstring(self, head);
	self->gpx_track_head = g_strdup_printf(" <trk>\n  <name>%s</name>\n  <trkseg>\n", name);
}

void
amu_export_gpx_add(AmuExportWriter *self, const AmuSample *sample)
{
	char record[RECORD_MAX];
	char *p = record;
	gint32 longitude = sample->values[1];

	if (sample->category != AMU_CATEGORY_LOCATION)
		return;
	if (!self->gpx_in_track) {
		amu_export_stream_put(
		  &self->out, self->gpx_track_head, strlen(self->gpx_track_head));
		self->gpx_in_track = TRUE;
	} else if (sample->timestamp_ms - self->gpx_last_fix_ms > self->gpx_gap_ms) {
		p = PUT_LITERAL(p, "  </trkseg>\n  <trkseg>\n");
	}
	self->gpx_last_fix_ms = sample->timestamp_ms;
	/* GPX's longitudeType stops short of 180; -180 is the same meridian */
	if (longitude == 1800000000)
		longitude = -1800000000;
	p = PUT_LITERAL(p, "   <trkpt lat=\"");
	p = put_fixed(p, sample->values[0], 7);
	p = PUT_LITERAL(p, "\" lon=\"");
	p = put_fixed(p, longitude, 7);
	p = PUT_LITERAL(p, "\"><ele>");
	p = put_fixed(p, sample->values[2], 2);
	p = PUT_LITERAL(p, "</ele><time>");
	p = put_time(&self->time_cache, sample->timestamp_ms, p);
	p = PUT_LITERAL(p, "</time></trkpt>\n");
	amu_export_stream_put(&self->out, record, p - record);
}
