/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

#include "amulet/amulet.h"

G_BEGIN_DECLS

/* The export benchmark (bench-export.c) and the baselines it measures each
 * export against (bench-export-baseline.c): the data sets both read, and
 * the three baselines' runs. */

/* the grant the benchmark makes, as the export writes it into its files */
#define BENCH_GRANT_RECIPIENT "bench-export"
#define BENCH_GRANT_PURPOSE "export benchmark"
/* the export writer's buffer: the baselines write through one as large */
#define BENCH_BASELINE_BUFFER_SIZE (64 * 1024)

typedef struct {
	const char *name; /* the device's name on the host, and of its files */
	const char *label;
	const char *profile;
	const char *days;
	const char *categories; /* every category the profile records */
	char *host;		/* the host's data dir */
	char *grant_id;		/* raw, all categories, all time */
	char *baseline_db;	/* the plain table */
	guint64 n_samples;
	guint64 n_location;
} BenchDataSet;

/* what the export writes about the device and the grant, read from the
 * host as the export reads it */
typedef struct {
	char *name;
	char *id;
	char *model; /* "" without a disclosure, as the export has it */
	char *profile;
	const char *grant_id;
	gint64 created_ms;
} BenchExportHead;

/* the categories of the rows in the order they came: the export's CSV
 * files that the same-output baseline's one file stands for */
typedef struct {
	int ids[AMU_CATEGORY_LAST + 1];
	guint n;
} BenchCategoryList;

/* Prints what each baseline does, as the lines under the export's: the
 * plain table's query plans over @all (csv, fhir) and @location (gpx). */
void bench_baseline_print_legend(const BenchDataSet *all, const BenchDataSet *location);

/* Makes @set's plain table (set->baseline_db) from every sample stored on
 * set->host, and counts them into set->n_samples and set->n_location. */
gboolean bench_baseline_fill(BenchDataSet *set, GError **error);
/* The plain-table baseline: the samples @format carries into @out_path
 * (which must not exist); @seconds: wall time, @rows: samples written. */
gboolean bench_baseline_run(const BenchDataSet *set,
			    AmuExportFormat format,
			    const char *out_path,
			    double *seconds,
			    guint64 *rows,
			    GError **error);

/* The disk baseline: @bytes into the new file @path in @dir from @data
 * (BENCH_BASELINE_BUFFER_SIZE random bytes; each block is numbered in its
 * first bytes), then fsync of the file and of @dir. */
gboolean bench_baseline_disk_run(const char *dir,
				 const char *path,
				 guint8 *data,
				 guint64 bytes,
				 double *seconds,
				 GError **error);

gboolean bench_export_head_init(BenchExportHead *head,
				AmuContext *context,
				const BenchDataSet *set,
				GError **error);
void bench_export_head_clear(BenchExportHead *head);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(BenchExportHead, bench_export_head_clear)

/* The same-output baseline: the record text @format writes, with @head's
 * head, into @out_path (which must not exist); @categories: of the rows, in
 * order, for bench_baseline_same_output_check(). */
gboolean bench_baseline_same_output_run(const BenchDataSet *set,
					AmuExportFormat format,
					const BenchExportHead *head,
					const char *out_path,
					double *seconds,
					guint64 *rows,
					BenchCategoryList *categories,
					GError **error);
/* Fails unless @same_path, of @same_bytes, says what the export in
 * @export_dir said in its data files of @export_bytes: every line past the
 * head alike (FHIR: but for the ids), the sizes within
 * SAME_OUTPUT_TOLERANCE of bench-export-baseline.c. */
gboolean bench_baseline_same_output_check(AmuExportFormat format,
					  const char *export_dir,
					  const BenchCategoryList *categories,
					  guint64 export_bytes,
					  const char *same_path,
					  guint64 same_bytes,
					  GError **error);

G_END_DECLS
