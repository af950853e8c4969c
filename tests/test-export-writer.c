/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "amu-export-file.h"
#include "amu-export-writer.h"
#include "amu-test.h"
#include "amulet/amu-error.h"

/* The export files as a recipient gets them: each format is written from a
 * known set of samples, read back by an independent reader (python3's json,
 * csv and xml modules), checked against the JSON Schema in docs/ and the
 * GPX 1.1 XSD, the digests the writer reports are checked against the
 * files on disk, and the writer is made to fail on a full and a read-only
 * disk. */

#define T0 G_GINT64_CONSTANT(1793491200000) /* 2026-11-01T00:00:00.000Z */
#define HOUR_MS G_GINT64_CONSTANT(3600000)
#define DAY_MS G_GINT64_CONSTANT(86400000)
#define PYTHON3 "/usr/bin/python3"
#define SCHEMA AMU_TEST_SRCDIR "/docs/export-schema.json"
#define GPX_XSD AMU_TEST_SRCDIR "/tests/gpx-1.1.xsd"
#define CRLF "\r\n"

/* check_script knows the same values on its own. */
static const AmuExportInfo test_info = {
	.device_name = "Zo\xc3\xab's \"band\" <1> & co",
	.device_id = "dev-0001",
	.device_model = "AB-2",
	.device_profile = "band",
	.grant_id = "grant-0007",
	.recipient = "Dr. Ng",
	.purpose = "sleep study",
	.granularity = AMU_GRANULARITY_RAW,
	.from_ms = G_GINT64_CONSTANT(1793491200000),
	.to_ms = G_GINT64_CONSTANT(1796083200000),
	.created_ms = G_GINT64_CONSTANT(1796169600123),
};

/* Every category, in the pipeline's order, with the ends of each range and
 * values whose unit conversion is easy to get wrong (negative fractions,
 * 1e-7 degrees, the 180th meridian, a day boundary, a leap day). */
static const AmuSample raw_samples[] = {
	{ 0, AMU_CATEGORY_HEART_RATE, { 60 } },
	{ T0, AMU_CATEGORY_HEART_RATE, { 72 } },
	{ T0 + 1000, AMU_CATEGORY_HEART_RATE, { 73 } },
	{ T0 + DAY_MS - 1, AMU_CATEGORY_HEART_RATE, { 20 } },
	{ T0 + DAY_MS, AMU_CATEGORY_HEART_RATE, { 300 } },
	/* 2028-02-29T12:00:00.007Z */
	{ G_GINT64_CONSTANT(1835438400007), AMU_CATEGORY_HEART_RATE, { 88 } },
	{ T0, AMU_CATEGORY_STEPS, { 85 } },
	{ T0 + 60000, AMU_CATEGORY_STEPS, { 0 } },
	{ T0 + 120000, AMU_CATEGORY_STEPS, { 1000 } },
	{ T0, AMU_CATEGORY_SPO2, { 975 } },
	{ T0 + 1000, AMU_CATEGORY_SPO2, { 1000 } },
	{ T0 + 2000, AMU_CATEGORY_SPO2, { 500 } },
	{ T0, AMU_CATEGORY_SLEEP_STAGE, { AMU_SLEEP_STAGE_AWAKE } },
	{ T0 + 30000, AMU_CATEGORY_SLEEP_STAGE, { AMU_SLEEP_STAGE_LIGHT } },
	{ T0 + 60000, AMU_CATEGORY_SLEEP_STAGE, { AMU_SLEEP_STAGE_DEEP } },
	{ T0 + 90000, AMU_CATEGORY_SLEEP_STAGE, { AMU_SLEEP_STAGE_REM } },
	{ T0, AMU_CATEGORY_SKIN_TEMP, { 3325 } },
	{ T0 + 60000, AMU_CATEGORY_SKIN_TEMP, { 2000 } },
	{ T0 + 120000, AMU_CATEGORY_SKIN_TEMP, { 3307 } },
	{ T0, AMU_CATEGORY_RESPIRATORY_RATE, { 145 } },
	{ T0 + 60000, AMU_CATEGORY_RESPIRATORY_RATE, { 0 } },
	{ T0 + 120000, AMU_CATEGORY_RESPIRATORY_RATE, { 1200 } },
	{ T0, AMU_CATEGORY_LOCATION, { 525200066, 134049540, 3412 } },
	{ T0 + 1000, AMU_CATEGORY_LOCATION, { -338688197, 1800000000, -5 } },
	{ T0 + 2000, AMU_CATEGORY_LOCATION, { 1, -1, 0 } },
	/* more than 5 minutes later: a new segment */
	{ T0 + 2000 + 300001, AMU_CATEGORY_LOCATION, { 900000000, -1800000000, 1000000 } },
	/* exactly 5 minutes later: the same one */
	{ T0 + 2000 + 600001, AMU_CATEGORY_LOCATION, { -900000000, 0, -100000 } },
	{ T0, AMU_CATEGORY_BATTERY, { 80 } },
	{ T0 + HOUR_MS, AMU_CATEGORY_BATTERY, { 0 } },
	{ T0 + 2 * HOUR_MS, AMU_CATEGORY_BATTERY, { 100 } },
	{ T0, AMU_CATEGORY_TOY_EVENT, { AMU_TOY_EVENT_BUTTON, 0, 0 } },
	{ T0 + 1000, AMU_CATEGORY_TOY_EVENT, { AMU_TOY_EVENT_VOICE_CLIP, 4200, 3 } },
	{ T0 + 2000, AMU_CATEGORY_TOY_EVENT, { AMU_TOY_EVENT_PLAY_SESSION, 600000, 7 } },
	{ T0 + 3000, AMU_CATEGORY_TOY_EVENT, { AMU_TOY_EVENT_STORY, 3600000, G_MAXINT32 } },
};

/* What coarsening to hours hands over: interval starts, sums beyond a
 * minute's range, the most frequent stage, the first fix of each hour. */
static const AmuSample hour_samples[] = {
	{ T0, AMU_CATEGORY_HEART_RATE, { 64 } },
	{ T0 + HOUR_MS, AMU_CATEGORY_HEART_RATE, { 58 } },
	{ T0, AMU_CATEGORY_STEPS, { 4200 } },
	{ T0 + 23 * HOUR_MS, AMU_CATEGORY_STEPS, { 60000 } },
	{ T0, AMU_CATEGORY_SPO2, { 962 } },
	{ T0, AMU_CATEGORY_SLEEP_STAGE, { AMU_SLEEP_STAGE_LIGHT } },
	{ T0 + HOUR_MS, AMU_CATEGORY_SLEEP_STAGE, { AMU_SLEEP_STAGE_AWAKE } },
	{ T0 + 2 * HOUR_MS, AMU_CATEGORY_SLEEP_STAGE, { AMU_SLEEP_STAGE_DEEP } },
	{ T0 + 3 * HOUR_MS, AMU_CATEGORY_SLEEP_STAGE, { AMU_SLEEP_STAGE_REM } },
	{ T0, AMU_CATEGORY_SKIN_TEMP, { 3310 } },
	{ T0, AMU_CATEGORY_RESPIRATORY_RATE, { 152 } },
	{ T0, AMU_CATEGORY_LOCATION, { 525200066, 134049540, 3412 } },
	{ T0 + HOUR_MS, AMU_CATEGORY_LOCATION, { 525300000, 134100000, 3500 } },
	/* an hour without a fix: a new segment */
	{ T0 + 3 * HOUR_MS, AMU_CATEGORY_LOCATION, { 525400000, 134200000, 3600 } },
	{ T0, AMU_CATEGORY_BATTERY, { 55 } },
	{ T0, AMU_CATEGORY_TOY_EVENT, { AMU_TOY_EVENT_STORY, 90000, 12 } },
};

/* ---------------------------------------------------------------- helpers */

static void
empty_dir(const char *path)
{
	g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
	const char *name;

	while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
		g_autofree char *child = g_build_filename(path, name, NULL);
		if (g_file_test(child, G_FILE_TEST_IS_DIR) &&
		    !g_file_test(child, G_FILE_TEST_IS_SYMLINK))
			amu_test_remove_tree(child);
		else
			g_unlink(child);
	}
}

/* a scratch root holding the samples the reader compares against, and an
 * empty directory for the export */
typedef struct {
	char *root;
	char *out;
	char *samples_path;
} Scratch;

static Scratch *
scratch_new(void)
{
	Scratch *scratch = g_new0(Scratch, 1);

	scratch->root = g_dir_make_tmp("amu-export-XXXXXX", NULL);
	g_assert(scratch->root != NULL);
	scratch->out = g_build_filename(scratch->root, "out", NULL);
	scratch->samples_path = g_build_filename(scratch->root, "samples.txt", NULL);
	g_assert(g_mkdir(scratch->out, 0700) == 0);
	return scratch;
}

static void
scratch_free(Scratch *scratch)
{
	amu_test_remove_tree(scratch->root);
	g_free(scratch->root);
	g_free(scratch->out);
	g_free(scratch->samples_path);
	g_free(scratch);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Scratch, scratch_free)

static void
save_samples(Scratch *scratch, const AmuSample *samples, gsize n_samples)
{
	g_autoptr(GString) text = g_string_new(NULL);

	for (gsize i = 0; i < n_samples; i++)
		g_string_append_printf(text,
				       "%d %" G_GINT64_FORMAT " %d %d %d\n",
				       (int)samples[i].category,
				       samples[i].timestamp_ms,
				       samples[i].values[0],
				       samples[i].values[1],
				       samples[i].values[2]);
	g_assert(g_file_set_contents(scratch->samples_path, text->str, text->len, NULL));
}

/* Writes an export and returns the names it reports. */
static GPtrArray *
export_to(const char *dir,
	  AmuExportFormat format,
	  AmuGranularity granularity,
	  const AmuSample *samples,
	  gsize n_samples)
{
	AmuExportInfo info = test_info;
	g_autoptr(AmuExportWriter) writer = NULL;
	g_autoptr(GError) error = NULL;
	GPtrArray *files = NULL;

	info.granularity = granularity;
	writer = amu_export_writer_new(format, dir, &info, &error);
	if (error != NULL)
		g_printerr("  new: %s\n", error->message);
	CU_ASSERT_PTR_NOT_NULL_FATAL(writer);
	for (gsize i = 0; i < n_samples; i++) {
		if (!amu_export_writer_add(writer, &samples[i], &error)) {
			g_printerr("  add %" G_GSIZE_FORMAT ": %s\n", i, error->message);
			CU_FAIL_FATAL("add failed");
		}
	}
	if (!amu_export_writer_finish(writer, &files, &error))
		g_printerr("  finish: %s\n", error->message);
	CU_ASSERT_PTR_NOT_NULL_FATAL(files);
	return files;
}

static Scratch *
scratch_export(AmuExportFormat format,
	       AmuGranularity granularity,
	       const AmuSample *samples,
	       gsize n_samples,
	       GPtrArray **files)
{
	Scratch *scratch = scratch_new();

	save_samples(scratch, samples, n_samples);
	*files = export_to(scratch->out, format, granularity, samples, n_samples);
	return scratch;
}

/* Runs @argv; TRUE if it exited 0. What it printed goes to the test log. */
static gboolean
run(const char *const *argv)
{
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autoptr(GError) error = NULL;
	int status = -1;

	if (!g_spawn_sync(NULL,
			  (char **)argv,
			  NULL,
			  G_SPAWN_DEFAULT,
			  NULL,
			  NULL,
			  &out,
			  &err,
			  &status,
			  &error)) {
		g_printerr("  cannot run %s: %s\n", argv[0], error->message);
		return FALSE;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return TRUE;
	g_printerr("  %s %s failed (status %d):\n%s%s", argv[0], argv[1], status, out, err);
	return FALSE;
}

/* The independent reader: python3's json, csv, xml.etree and jsonschema
 * compare the files with the samples in samples.txt, converting units
 * themselves with decimal arithmetic. */
/* clang-format off */
static const char check_script[] =
	"import collections, csv, datetime, json, os, re, sys\n"
	"from decimal import Decimal\n"
	"\n"
	"mode, out, samples_path, schema_path = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5]\n"
	"interval = int(sys.argv[4])\n"
	"NAME, DEVICE_ID, MODEL, PROFILE = 'Zo\\u00eb\\'s \"band\" <1> & co', 'dev-0001', 'AB-2', 'band'\n"
	"GRANT, RECIPIENT, PURPOSE = 'grant-0007', 'Dr. Ng', 'sleep study'\n"
	"FROM, TO, CREATED = 1793491200000, 1796083200000, 1796169600123\n"
	"CATS = {1: 'heart_rate', 2: 'steps', 3: 'spo2', 4: 'sleep_stage', 5: 'skin_temp',\n"
	"        6: 'respiratory_rate', 7: 'location', 8: 'battery', 9: 'toy_event'}\n"
	"CSV_NAMES = {1: ['bpm'], 2: ['steps'], 3: ['spo2_percent'], 4: ['stage'],\n"
	"             5: ['skin_temp_celsius'], 6: ['breaths_per_min'],\n"
	"             7: ['latitude_deg', 'longitude_deg', 'elevation_m'], 8: ['battery_percent'],\n"
	"             9: ['kind', 'duration_ms', 'item']}\n"
	"STAGES = ['awake', 'light', 'deep', 'rem']\n"
	"KINDS = {1: 'button', 2: 'voice_clip', 3: 'play_session', 4: 'story'}\n"
	"GRANULARITY = {0: 'raw', 60000: 'minute', 3600000: 'hour', 86400000: 'day'}[interval]\n"
	"failures = []\n"
	"\n"
	"\n"
	"def check(ok, what):\n"
	"    if not ok:\n"
	"        failures.append(what)\n"
	"\n"
	"\n"
	"def iso(ms):\n"
	"    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)\n"
	"    t = epoch + datetime.timedelta(milliseconds=ms)\n"
	"    return t.strftime('%Y-%m-%dT%H:%M:%S') + '.%03dZ' % (ms % 1000)\n"
	"\n"
	"\n"
	"def scaled(value, places):\n"
	"    return Decimal(value).scaleb(-places)\n"
	"\n"
	"\n"
	"def text(value):\n"
	"    return format(value, 'f') if isinstance(value, Decimal) else str(value)\n"
	"\n"
	"\n"
	"def fields(cat, v):\n"
	"    if cat == 1:\n"
	"        return {'bpm': v[0]}\n"
	"    if cat == 2:\n"
	"        return {'steps': v[0]}\n"
	"    if cat == 3:\n"
	"        return {'spo2_percent': scaled(v[0], 1)}\n"
	"    if cat == 4:\n"
	"        return {'stage': STAGES[v[0]]}\n"
	"    if cat == 5:\n"
	"        return {'celsius': scaled(v[0], 2)}\n"
	"    if cat == 6:\n"
	"        return {'breaths_per_min': scaled(v[0], 1)}\n"
	"    if cat == 7:\n"
	"        return {'latitude': scaled(v[0], 7), 'longitude': scaled(v[1], 7),\n"
	"                'elevation_m': scaled(v[2], 2)}\n"
	"    if cat == 8:\n"
	"        return {'percent': v[0]}\n"
	"    return {'kind': KINDS[v[0]], 'duration_ms': v[1], 'item': v[2]}\n"
	"\n"
	"\n"
	"samples = []\n"
	"for line in open(samples_path):\n"
	"    cat, ts, v0, v1, v2 = (int(x) for x in line.split())\n"
	"    samples.append((cat, ts, [v0, v1, v2]))\n"
	"\n"
	"\n"
	"def check_json():\n"
	"    check(os.listdir(out) == ['samples.json'], 'files %r' % os.listdir(out))\n"
	"    path = os.path.join(out, 'samples.json')\n"
	"    doc = json.load(open(path, encoding='utf-8'), parse_float=Decimal)\n"
	"    head = {k: v for k, v in doc.items() if k != 'samples'}\n"
	"    want = {'format': 'amulet-export', 'version': 1,\n"
	"            'device': {'name': NAME, 'id': DEVICE_ID, 'model': MODEL, 'profile': PROFILE},\n"
	"            'grant_id': GRANT, 'recipient': RECIPIENT, 'purpose': PURPOSE,\n"
	"            'granularity': GRANULARITY, 'from': iso(FROM), 'to': iso(TO),\n"
	"            'created': iso(CREATED)}\n"
	"    check(head == want, 'head %r' % head)\n"
	"    check(len(doc['samples']) == len(samples),\n"
	"          'count %d != %d' % (len(doc['samples']), len(samples)))\n"
	"    for got, (cat, ts, v) in zip(doc['samples'], samples):\n"
	"        want = dict(time=iso(ts), category=CATS[cat], **fields(cat, v))\n"
	"        same_types = all(type(got.get(k)) is type(want[k]) for k in want)\n"
	"        check(got == want and same_types, 'sample %r != %r' % (got, want))\n"
	"\n"
	"    import jsonschema\n"
	"    schema = json.load(open(schema_path))\n"
	"    jsonschema.Draft7Validator.check_schema(schema)\n"
	"    validator = jsonschema.Draft7Validator(schema)\n"
	"    errors = [e.message for e in validator.iter_errors(json.load(open(path)))]\n"
	"    check(not errors, 'schema: %r' % errors[:3])\n"
	"\n"
	"    # the schema must catch what a broken writer would emit\n"
	"    def first(d, category):\n"
	"        return next(s for s in d['samples'] if s['category'] == category)\n"
	"    broken = [\n"
	"        ('bpm as text', lambda d: first(d, 'heart_rate').update(bpm='72')),\n"
	"        ('bpm out of range', lambda d: first(d, 'heart_rate').update(bpm=301)),\n"
	"        ('spo2 missing', lambda d: first(d, 'spo2').pop('spo2_percent')),\n"
	"        ('unknown stage', lambda d: first(d, 'sleep_stage').update(stage='nap')),\n"
	"        ('latitude beyond 90', lambda d: first(d, 'location').update(latitude=90.5)),\n"
	"        ('time without ms', lambda d: first(d, 'battery').update(time='2026-11-01T00:00:00Z')),\n"
	"        ('foreign field', lambda d: first(d, 'steps').update(bpm=1)),\n"
	"        ('unknown category', lambda d: first(d, 'battery').update(category='mood')),\n"
	"        ('toy audio', lambda d: first(d, 'toy_event').update(audio='AAAA')),\n"
	"        ('no grant', lambda d: d.pop('grant_id')),\n"
	"        ('bad granularity', lambda d: d.update(granularity='week')),\n"
	"    ]\n"
	"    if interval == 0:\n"
	"        broken.append(('raw steps over 1000', lambda d: first(d, 'steps').update(steps=1001)))\n"
	"    for what, damage in broken:\n"
	"        doc2 = json.load(open(path, encoding='utf-8'))\n"
	"        try:\n"
	"            damage(doc2)\n"
	"        except StopIteration:\n"
	"            continue  # no sample of that category to damage\n"
	"        check(not validator.is_valid(doc2), 'schema accepted ' + what)\n"
	"\n"
	"\n"
	"def check_csv():\n"
	"    by_cat = collections.OrderedDict()\n"
	"    for s in samples:\n"
	"        by_cat.setdefault(s[0], []).append(s)\n"
	"    want_files = sorted(CATS[c] + '.csv' for c in by_cat)\n"
	"    check(sorted(os.listdir(out)) == want_files, 'files %r' % os.listdir(out))\n"
	"    for cat, rows in by_cat.items():\n"
	"        path = os.path.join(out, CATS[cat] + '.csv')\n"
	"        raw = open(path, 'rb').read()\n"
	"        crlf = raw.count(b'\\r\\n')\n"
	"        check(crlf == len(rows) + 1 and raw.count(b'\\n') == crlf, path + ': not CRLF')\n"
	"        with open(path, newline='', encoding='utf-8') as f:\n"
	"            table = list(csv.reader(f, strict=True))\n"
	"        header = ['time_utc'] + (['end_utc'] if interval else []) + CSV_NAMES[cat]\n"
	"        check(table[0] == header, 'header %r' % table[0])\n"
	"        check(len(table) - 1 == len(rows), path + ': count')\n"
	"        for row, (c, ts, v) in zip(table[1:], rows):\n"
	"            want = [iso(ts)] + ([iso(ts + interval)] if interval else [])\n"
	"            want += [text(x) for x in fields(c, v).values()]\n"
	"            check(row == want, '%s: %r != %r' % (path, row, want))\n"
	"\n"
	"\n"
	"LOINC = {1: ['8867-4'], 2: ['55423-8'], 3: ['2708-6', '59408-5'], 5: ['8310-5'],\n"
	"         6: ['9279-1']}\n"
	"SLEEP_LOINC = {1: '93830-8', 2: '93831-6', 3: '93829-0'}\n"
	"UCUM = {1: '/min', 2: '{steps}', 3: '%', 4: 'min', 5: 'Cel', 6: '/min'}\n"
	"OBS_CATEGORY = {1: 'vital-signs', 2: 'activity', 3: 'vital-signs', 4: 'activity',\n"
	"                5: 'vital-signs', 6: 'vital-signs'}\n"
	"OBS_CATEGORY_SYSTEM = 'http://terminology.hl7.org/CodeSystem/observation-category'\n"
	"FHIR_ID = '[A-Za-z0-9.-]{1,64}'\n"
	"\n"
	"\n"
	"def fhir_value(cat, v):\n"
	"    if cat in (1, 2):\n"
	"        return v[0]\n"
	"    if cat in (3, 6):\n"
	"        return scaled(v[0], 1)\n"
	"    if cat == 5:\n"
	"        return scaled(v[0], 2)\n"
	"    return Decimal('0.5') if interval == 0 else Decimal(interval) / 60000\n"
	"\n"
	"\n"
	"def check_fhir():\n"
	"    check(os.listdir(out) == ['bundle.json'], 'files %r' % os.listdir(out))\n"
	"    path = os.path.join(out, 'bundle.json')\n"
	"    bundle = json.load(open(path, encoding='utf-8'), parse_float=Decimal)\n"
	"    check(bundle['resourceType'] == 'Bundle', 'resourceType')\n"
	"    check(bundle['type'] == 'collection', 'bundle type')\n"
	"    check(bundle['timestamp'] == iso(CREATED), 'bundle timestamp')\n"
	"    check(re.fullmatch(FHIR_ID, bundle['id']) is not None, 'bundle id')\n"
	"    # battery, toy events, location and awake epochs have no place in FHIR\n"
	"    expected = [s for s in samples if s[0] in LOINC or (s[0] == 4 and s[2][0] != 0)]\n"
	"    entries = bundle.get('entry', [])\n"
	"    check('entry' in bundle or not expected, 'entry missing')\n"
	"    check(bundle.get('entry') != [], 'empty entry array')\n"
	"    check(len(entries) == len(expected), 'entries %d != %d' % (len(entries), len(expected)))\n"
	"    ids = set()\n"
	"    for entry, (cat, ts, v) in zip(entries, expected):\n"
	"        r = entry['resource']\n"
	"        where = '%s at %s' % (CATS[cat], iso(ts))\n"
	"        check(r['resourceType'] == 'Observation', where + ': resourceType')\n"
	"        check(r['status'] == 'final', where + ': status')\n"
	"        check(re.fullmatch(FHIR_ID, r['id']) is not None, where + ': id')\n"
	"        check(entry['fullUrl'] == 'urn:uuid:' + r['id'], where + ': fullUrl')\n"
	"        ids.add(r['id'])\n"
	"        codings = r['code']['coding']\n"
	"        loinc = [c['code'] for c in codings if c['system'] == 'http://loinc.org']\n"
	"        check(len(loinc) == len(codings), where + ': non-LOINC coding')\n"
	"        want = LOINC[cat] if cat != 4 else [SLEEP_LOINC[v[0]]]\n"
	"        check(loinc == want, where + ': codes %r' % loinc)\n"
	"        obs_cat = r['category'][0]['coding'][0]\n"
	"        check(obs_cat['system'] == OBS_CATEGORY_SYSTEM, where + ': category system')\n"
	"        check(obs_cat['code'] == OBS_CATEGORY[cat], where + ': category')\n"
	"        q = r['valueQuantity']\n"
	"        check(q['system'] == 'http://unitsofmeasure.org', where + ': unit system')\n"
	"        check(q['code'] == UCUM[cat], where + ': unit %r' % q)\n"
	"        value = fhir_value(cat, v)\n"
	"        check(q['value'] == value, where + ': value %r != %r' % (q['value'], value))\n"
	"        span = interval or {2: 60000, 4: 30000}.get(cat, 0)\n"
	"        if span:\n"
	"            period = {'start': iso(ts), 'end': iso(ts + span)}\n"
	"            check(r.get('effectivePeriod') == period, where + ': period')\n"
	"            check('effectiveDateTime' not in r, where + ': both times')\n"
	"        else:\n"
	"            check(r.get('effectiveDateTime') == iso(ts), where + ': time')\n"
	"            check('effectivePeriod' not in r, where + ': both times')\n"
	"        check(r['subject'] == {'display': NAME}, where + ': subject')\n"
	"        check(r['device'] == {'display': NAME + ' (' + MODEL + ')'}, where + ': device')\n"
	"        if cat == 5:\n"
	"            check('skin' in r['code']['text'].lower(), where + ': skin temperature not said')\n"
	"        check(('note' in r) == (interval != 0), where + ': note')\n"
	"    check(len(ids) == len(entries), 'ids not unique')\n"
	"\n"
	"\n"
	"def check_gpx():\n"
	"    import xml.etree.ElementTree as ET\n"
	"    check(os.listdir(out) == ['track.gpx'], 'files %r' % os.listdir(out))\n"
	"    ns = {'g': 'http://www.topografix.com/GPX/1/1'}\n"
	"    root = ET.parse(os.path.join(out, 'track.gpx')).getroot()\n"
	"    check(root.get('version') == '1.1', 'version')\n"
	"    check(root.find('g:metadata/g:time', ns).text == iso(CREATED), 'metadata time')\n"
	"    check(NAME in root.find('g:metadata/g:name', ns).text, 'metadata name')\n"
	"    fixes = [s for s in samples if s[0] == 7]\n"
	"    want, last = [], None\n"
	"    for cat, ts, v in fixes:\n"
	"        if last is None or ts - last > max(300000, interval):\n"
	"            want.append([])\n"
	"        last = ts\n"
	"        lon = -1800000000 if v[1] == 1800000000 else v[1]\n"
	"        point = (text(scaled(v[0], 7)), text(scaled(lon, 7)), text(scaled(v[2], 2)), iso(ts))\n"
	"        want[-1].append(point)\n"
	"    tracks = root.findall('g:trk', ns)\n"
	"    check(len(tracks) == (1 if fixes else 0), 'tracks %d' % len(tracks))\n"
	"    got = []\n"
	"    for segment in root.findall('g:trk/g:trkseg', ns):\n"
	"        got.append([(p.get('lat'), p.get('lon'), p.find('g:ele', ns).text,\n"
	"                     p.find('g:time', ns).text) for p in segment.findall('g:trkpt', ns)])\n"
	"    check(got == want, 'segments %r != %r' % (got, want))\n"
	"\n"
	"\n"
	"{'json': check_json, 'csv': check_csv, 'fhir': check_fhir, 'gpx': check_gpx}[mode]()\n"
	"for f in failures[:20]:\n"
	"    print(f, file=sys.stderr)\n"
	"sys.exit(1 if failures else 0)\n";
/* clang-format on */

static void
assert_reader_agrees(Scratch *scratch, const char *mode, AmuGranularity granularity)
{
	g_autofree char *interval =
	  g_strdup_printf("%" G_GINT64_FORMAT, amu_granularity_get_ms(granularity));
	const char *argv[] = { PYTHON3,	 "-c",	       check_script,
			       mode,	 scratch->out, scratch->samples_path,
			       interval, SCHEMA,       NULL };

	CU_ASSERT_TRUE(run(argv));
}

static char *
read_text(const char *dir, const char *name)
{
	g_autofree char *path = g_build_filename(dir, name, NULL);
	char *text = NULL;

	CU_ASSERT_TRUE_FATAL(g_file_get_contents(path, &text, NULL, NULL));
	return text;
}

static gboolean
files_are(GPtrArray *files, const char *const *names)
{
	guint n = g_strv_length((char **)names);

	if (files->len != n)
		return FALSE;
	for (guint i = 0; i < n; i++) {
		const AmuExportFile *file = g_ptr_array_index(files, i);
		if (strcmp(file->name, names[i]) != 0)
			return FALSE;
	}
	return TRUE;
}

static gboolean
starts_with(const char *text, const char *prefix)
{
	if (g_str_has_prefix(text, prefix))
		return TRUE;
	g_printerr(
	  "  expected to start with:\n%s\n  got:\n%.*s\n", prefix, (int)strlen(prefix) + 40, text);
	return FALSE;
}

static gboolean
contains(const char *text, const char *part)
{
	if (strstr(text, part) != NULL)
		return TRUE;
	g_printerr("  missing: %s\n", part);
	return FALSE;
}

/* ---------------------------------------------------------------- names */

static void
test_names(void)
{
	AmuExportFormat format = 0;
	AmuGranularity granularity = AMU_GRANULARITY_DAY;

	for (int i = AMU_EXPORT_FORMAT_JSON; i <= AMU_EXPORT_FORMAT_GPX; i++) {
		CU_ASSERT_TRUE(
		  amu_export_format_from_string(amu_export_format_to_string(i), &format));
		CU_ASSERT_EQUAL(format, i);
	}
	CU_ASSERT_STRING_EQUAL(amu_export_format_to_string(AMU_EXPORT_FORMAT_FHIR), "fhir");
	CU_ASSERT_FALSE(amu_export_format_from_string("xml", &format));
	CU_ASSERT_FALSE(amu_export_format_from_string("JSON", NULL));
	CU_ASSERT_PTR_NULL(amu_export_format_to_string((AmuExportFormat)0));

	for (int i = AMU_GRANULARITY_RAW; i <= AMU_GRANULARITY_DAY; i++) {
		CU_ASSERT_TRUE(
		  amu_granularity_from_string(amu_granularity_to_string(i), &granularity));
		CU_ASSERT_EQUAL(granularity, i);
	}
	CU_ASSERT_FALSE(amu_granularity_from_string("week", &granularity));
	CU_ASSERT_PTR_NULL(amu_granularity_to_string((AmuGranularity)9));
	CU_ASSERT_EQUAL(amu_granularity_get_ms(AMU_GRANULARITY_RAW), 0);
	CU_ASSERT_EQUAL(amu_granularity_get_ms(AMU_GRANULARITY_MINUTE), 60000);
	CU_ASSERT_EQUAL(amu_granularity_get_ms(AMU_GRANULARITY_HOUR), 3600000);
	CU_ASSERT_EQUAL(amu_granularity_get_ms(AMU_GRANULARITY_DAY), 86400000);
}

/* ---------------------------------------------------------------- CSV */

static const char *const all_csv_files[] = { "battery.csv",   "heart_rate.csv",
					     "location.csv",  "respiratory_rate.csv",
					     "skin_temp.csv", "sleep_stage.csv",
					     "spo2.csv",      "steps.csv",
					     "toy_event.csv", NULL };

static void
test_csv_raw(void)
{
	g_autoptr(GPtrArray) files = NULL;
	g_autoptr(Scratch) scratch = scratch_export(AMU_EXPORT_FORMAT_CSV,
						    AMU_GRANULARITY_RAW,
						    raw_samples,
						    G_N_ELEMENTS(raw_samples),
						    &files);
	g_autofree char *heart = read_text(scratch->out, "heart_rate.csv");
	g_autofree char *spo2 = read_text(scratch->out, "spo2.csv");
	g_autofree char *sleep = read_text(scratch->out, "sleep_stage.csv");
	g_autofree char *skin = read_text(scratch->out, "skin_temp.csv");
	g_autofree char *where = read_text(scratch->out, "location.csv");
	g_autofree char *toy = read_text(scratch->out, "toy_event.csv");

	CU_ASSERT_TRUE(files_are(files, all_csv_files));
	CU_ASSERT_TRUE(starts_with(
	  heart,
	  "time_utc,bpm" CRLF "1970-01-01T00:00:00.000Z,60" CRLF "2026-11-01T00:00:00.000Z,72" CRLF
	  "2026-11-01T00:00:01.000Z,73" CRLF "2026-11-01T23:59:59.999Z,20" CRLF
	  "2026-11-02T00:00:00.000Z,300" CRLF "2028-02-29T12:00:00.007Z,88" CRLF));
	CU_ASSERT_TRUE(starts_with(spo2,
				   "time_utc,spo2_percent" CRLF "2026-11-01T00:00:00.000Z,97.5" CRLF
				   "2026-11-01T00:00:01.000Z,100.0" CRLF
				   "2026-11-01T00:00:02.000Z,50.0" CRLF));
	CU_ASSERT_TRUE(starts_with(sleep,
				   "time_utc,stage" CRLF "2026-11-01T00:00:00.000Z,awake" CRLF
				   "2026-11-01T00:00:30.000Z,light" CRLF));
	CU_ASSERT_TRUE(
	  starts_with(skin,
		      "time_utc,skin_temp_celsius" CRLF "2026-11-01T00:00:00.000Z,33.25" CRLF
		      "2026-11-01T00:01:00.000Z,20.00" CRLF "2026-11-01T00:02:00.000Z,33.07" CRLF));
	CU_ASSERT_TRUE(starts_with(where,
				   "time_utc,latitude_deg,longitude_deg,elevation_m" CRLF
				   "2026-11-01T00:00:00.000Z,52.5200066,13.4049540,34.12" CRLF
				   "2026-11-01T00:00:01.000Z,-33.8688197,180.0000000,-0.05" CRLF
				   "2026-11-01T00:00:02.000Z,0.0000001,-0.0000001,0.00" CRLF));
	CU_ASSERT_TRUE(starts_with(toy,
				   "time_utc,kind,duration_ms,item" CRLF
				   "2026-11-01T00:00:00.000Z,button,0,0" CRLF
				   "2026-11-01T00:00:01.000Z,voice_clip,4200,3" CRLF));
	assert_reader_agrees(scratch, "csv", AMU_GRANULARITY_RAW);
}

static void
test_csv_hour(void)
{
	g_autoptr(GPtrArray) files = NULL;
	g_autoptr(Scratch) scratch = scratch_export(AMU_EXPORT_FORMAT_CSV,
						    AMU_GRANULARITY_HOUR,
						    hour_samples,
						    G_N_ELEMENTS(hour_samples),
						    &files);
	g_autofree char *heart = read_text(scratch->out, "heart_rate.csv");
	g_autofree char *steps = read_text(scratch->out, "steps.csv");

	CU_ASSERT_TRUE(files_are(files, all_csv_files));
	CU_ASSERT_TRUE(starts_with(heart,
				   "time_utc,end_utc,bpm" CRLF
				   "2026-11-01T00:00:00.000Z,2026-11-01T01:00:00.000Z,64" CRLF));
	CU_ASSERT_TRUE(starts_with(steps,
				   "time_utc,end_utc,steps" CRLF
				   "2026-11-01T00:00:00.000Z,2026-11-01T01:00:00.000Z,4200" CRLF
				   "2026-11-01T23:00:00.000Z,2026-11-02T00:00:00.000Z,60000" CRLF));
	assert_reader_agrees(scratch, "csv", AMU_GRANULARITY_HOUR);
}

/* the pipeline's order: by category, then time */
static gint
compare_samples(gconstpointer a, gconstpointer b)
{
	const AmuSample *x = a;
	const AmuSample *y = b;

	if (x->category != y->category)
		return x->category < y->category ? -1 : 1;
	if (x->timestamp_ms != y->timestamp_ms)
		return x->timestamp_ms < y->timestamp_ms ? -1 : 1;
	return 0;
}

/* Times across the whole range the writer accepts, against python's
 * calendar: leap years, centuries, the year 9999. */
static void
test_csv_times(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(GRand) rand = g_rand_new_with_seed(20261101);
	g_autoptr(GArray) samples = g_array_new(FALSE, FALSE, sizeof(AmuSample));
	g_autoptr(GPtrArray) files = NULL;
	static const gint64 edges[] = {
		0,
		G_GINT64_CONSTANT(951782400000),    /* 2000-02-29 */
		G_GINT64_CONSTANT(951868799999),    /* 2000-02-29T23:59:59.999 */
		G_GINT64_CONSTANT(4107542400000),   /* 2100-03-01 */
		G_GINT64_CONSTANT(253402214399999), /* 9999-12-30T23:59:59.999, the last accepted */
	};

	for (guint i = 0; i < G_N_ELEMENTS(edges); i++) {
		AmuSample sample = { edges[i], AMU_CATEGORY_HEART_RATE, { 60 } };
		g_array_append_val(samples, sample);
	}
	for (guint i = 0; i < 3000; i++) {
		AmuSample sample = { (gint64)g_rand_double_range(rand, 0, 253402214399999.0),
				     AMU_CATEGORY_STEPS,
				     { g_rand_int_range(rand, 0, 1001) } };
		g_array_append_val(samples, sample);
	}
	/* the steps run must be in time order */
	g_array_sort(samples, compare_samples);
	save_samples(scratch, (const AmuSample *)samples->data, samples->len);
	files = export_to(scratch->out,
			  AMU_EXPORT_FORMAT_CSV,
			  AMU_GRANULARITY_RAW,
			  (const AmuSample *)samples->data,
			  samples->len);
	CU_ASSERT_EQUAL(files->len, 2);
	assert_reader_agrees(scratch, "csv", AMU_GRANULARITY_RAW);
}

/* ---------------------------------------------------------------- JSON */

static void
test_json_raw(void)
{
	static const char *const names[] = { "samples.json", NULL };
	g_autoptr(GPtrArray) files = NULL;
	g_autoptr(Scratch) scratch = scratch_export(AMU_EXPORT_FORMAT_JSON,
						    AMU_GRANULARITY_RAW,
						    raw_samples,
						    G_N_ELEMENTS(raw_samples),
						    &files);
	g_autofree char *text = read_text(scratch->out, "samples.json");

	CU_ASSERT_TRUE(files_are(files, names));
	CU_ASSERT_TRUE(starts_with(
	  text,
	  "{\"format\":\"amulet-export\",\"version\":1,\n"
	  "\"device\":{\"name\":\"Zo\xc3\xab's \\\"band\\\" <1> & co\",\"id\":\"dev-0001\","
	  "\"model\":\"AB-2\",\"profile\":\"band\"},\n"
	  "\"grant_id\":\"grant-0007\",\"recipient\":\"Dr. Ng\",\"purpose\":\"sleep study\",\n"
	  "\"granularity\":\"raw\",\"from\":\"2026-11-01T00:00:00.000Z\","
	  "\"to\":\"2026-12-01T00:00:00.000Z\",\"created\":\"2026-12-02T00:00:00.123Z\",\n"
	  "\"samples\":[\n"
	  "{\"time\":\"1970-01-01T00:00:00.000Z\",\"category\":\"heart_rate\",\"bpm\":60},\n"));
	CU_ASSERT_TRUE(contains(text,
				"\n{\"time\":\"2026-11-01T00:00:00.000Z\",\"category\":\"spo2\","
				"\"spo2_percent\":97.5},\n"));
	CU_ASSERT_TRUE(
	  contains(text,
		   "\n{\"time\":\"2026-11-01T00:00:01.000Z\",\"category\":\"location\","
		   "\"latitude\":-33.8688197,\"longitude\":180.0000000,\"elevation_m\":-0.05},\n"));
	CU_ASSERT_TRUE(
	  contains(text,
		   "\n{\"time\":\"2026-11-01T00:00:01.000Z\",\"category\":\"toy_event\","
		   "\"kind\":\"voice_clip\",\"duration_ms\":4200,\"item\":3},\n"));
	CU_ASSERT_TRUE(g_str_has_suffix(text, "\"item\":2147483647}\n]}\n"));
	assert_reader_agrees(scratch, "json", AMU_GRANULARITY_RAW);
}

static void
test_json_hour(void)
{
	g_autoptr(GPtrArray) files = NULL;
	g_autoptr(Scratch) scratch = scratch_export(AMU_EXPORT_FORMAT_JSON,
						    AMU_GRANULARITY_HOUR,
						    hour_samples,
						    G_N_ELEMENTS(hour_samples),
						    &files);
	g_autofree char *text = read_text(scratch->out, "samples.json");

	CU_ASSERT_TRUE(contains(text, "\"granularity\":\"hour\""));
	CU_ASSERT_TRUE(contains(text, "\"category\":\"steps\",\"steps\":60000}"));
	assert_reader_agrees(scratch, "json", AMU_GRANULARITY_HOUR);
}

/* ---------------------------------------------------------------- FHIR */

static void
test_fhir_raw(void)
{
	static const char *const names[] = { "bundle.json", NULL };
	g_autoptr(GPtrArray) files = NULL;
	g_autoptr(Scratch) scratch = scratch_export(AMU_EXPORT_FORMAT_FHIR,
						    AMU_GRANULARITY_RAW,
						    raw_samples,
						    G_N_ELEMENTS(raw_samples),
						    &files);
	g_autofree char *text = read_text(scratch->out, "bundle.json");

	CU_ASSERT_TRUE(files_are(files, names));
	CU_ASSERT_TRUE(starts_with(text, "{\"resourceType\":\"Bundle\",\"id\":\""));
	/* what must not leave as a clinical observation */
	CU_ASSERT_PTR_NULL(strstr(text, "voice_clip"));
	CU_ASSERT_PTR_NULL(strstr(text, "52.52"));
	assert_reader_agrees(scratch, "fhir", AMU_GRANULARITY_RAW);
}

static void
test_fhir_hour(void)
{
	g_autoptr(GPtrArray) files = NULL;
	g_autoptr(Scratch) scratch = scratch_export(AMU_EXPORT_FORMAT_FHIR,
						    AMU_GRANULARITY_HOUR,
						    hour_samples,
						    G_N_ELEMENTS(hour_samples),
						    &files);

	assert_reader_agrees(scratch, "fhir", AMU_GRANULARITY_HOUR);
}

/* The same data exported twice gives the same ids, so a recipient's server
 * updates rather than duplicates; another granularity gives other ids. */
static void
test_fhir_ids_stable(void)
{
	g_autoptr(Scratch) first = scratch_new();
	g_autoptr(Scratch) second = scratch_new();
	g_autoptr(Scratch) hourly = scratch_new();
	g_autoptr(GPtrArray) files1 = export_to(first->out,
						AMU_EXPORT_FORMAT_FHIR,
						AMU_GRANULARITY_RAW,
						hour_samples,
						G_N_ELEMENTS(hour_samples));
	g_autoptr(GPtrArray) files2 = export_to(second->out,
						AMU_EXPORT_FORMAT_FHIR,
						AMU_GRANULARITY_RAW,
						hour_samples,
						G_N_ELEMENTS(hour_samples));
	g_autoptr(GPtrArray) files3 = export_to(hourly->out,
						AMU_EXPORT_FORMAT_FHIR,
						AMU_GRANULARITY_HOUR,
						hour_samples,
						G_N_ELEMENTS(hour_samples));
	g_autofree char *text1 = read_text(first->out, "bundle.json");
	g_autofree char *text2 = read_text(second->out, "bundle.json");
	g_autofree char *text3 = read_text(hourly->out, "bundle.json");
	const char *id = strstr(text1, "\"fullUrl\":\"urn:uuid:");
	g_autofree char *first_id = NULL;

	CU_ASSERT_STRING_EQUAL(text1, text2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(id);
	first_id = g_strndup(id, 56);
	CU_ASSERT_PTR_NULL(strstr(text3, first_id));
}

/* ---------------------------------------------------------------- GPX */

static void
assert_gpx_valid(Scratch *scratch)
{
	g_autofree char *path = g_build_filename(scratch->out, "track.gpx", NULL);
	const char *argv[] = { "xmllint", "--noout", "--schema", GPX_XSD, path, NULL };
	g_autofree char *xmllint = g_find_program_in_path("xmllint");

	CU_ASSERT_PTR_NOT_NULL_FATAL(xmllint);
	argv[0] = xmllint;
	CU_ASSERT_TRUE(run(argv));
}

static void
test_gpx_raw(void)
{
	static const char *const names[] = { "track.gpx", NULL };
	g_autoptr(GPtrArray) files = NULL;
	g_autoptr(Scratch) scratch = scratch_export(AMU_EXPORT_FORMAT_GPX,
						    AMU_GRANULARITY_RAW,
						    raw_samples,
						    G_N_ELEMENTS(raw_samples),
						    &files);
	g_autofree char *text = read_text(scratch->out, "track.gpx");

	CU_ASSERT_TRUE(files_are(files, names));
	CU_ASSERT_TRUE(contains(text,
				"   <trkpt lat=\"52.5200066\" lon=\"13.4049540\"><ele>34.12</ele>"
				"<time>2026-11-01T00:00:00.000Z</time></trkpt>\n"));
	/* GPX has no longitude 180: the same meridian is -180 */
	CU_ASSERT_TRUE(contains(text, "lat=\"-33.8688197\" lon=\"-180.0000000\"><ele>-0.05</ele>"));
	assert_gpx_valid(scratch);
	assert_reader_agrees(scratch, "gpx", AMU_GRANULARITY_RAW);
}

static void
test_gpx_hour(void)
{
	g_autoptr(GPtrArray) files = NULL;
	g_autoptr(Scratch) scratch = scratch_export(AMU_EXPORT_FORMAT_GPX,
						    AMU_GRANULARITY_HOUR,
						    hour_samples,
						    G_N_ELEMENTS(hour_samples),
						    &files);

	assert_gpx_valid(scratch);
	assert_reader_agrees(scratch, "gpx", AMU_GRANULARITY_HOUR);
}

static void
test_gpx_no_location(void)
{
	g_autoptr(GPtrArray) files = NULL;
	g_autoptr(Scratch) scratch =
	  scratch_export(AMU_EXPORT_FORMAT_GPX, AMU_GRANULARITY_RAW, raw_samples, 6, &files);
	g_autofree char *text = read_text(scratch->out, "track.gpx");

	CU_ASSERT_PTR_NULL(strstr(text, "<trk>"));
	assert_gpx_valid(scratch);
	assert_reader_agrees(scratch, "gpx", AMU_GRANULARITY_RAW);
}

/* ---------------------------------------------------------------- edges */

/* No samples: every format still writes a valid document (FHIR JSON has no
 * empty arrays, so the bundle has no entry at all), CSV writes no file. */
static void
test_empty(void)
{
	static const char *const modes[] = { "json", "csv", "fhir", "gpx" };

	for (int format = AMU_EXPORT_FORMAT_JSON; format <= AMU_EXPORT_FORMAT_GPX; format++) {
		g_autoptr(GPtrArray) files = NULL;
		g_autoptr(Scratch) scratch =
		  scratch_export(format, AMU_GRANULARITY_DAY, NULL, 0, &files);

		CU_ASSERT_EQUAL(files->len, format == AMU_EXPORT_FORMAT_CSV ? 0 : 1);
		assert_reader_agrees(scratch, modes[format - 1], AMU_GRANULARITY_DAY);
		if (format == AMU_EXPORT_FORMAT_GPX)
			assert_gpx_valid(scratch);
	}
}

/* A sample out of order or beyond what the formats can say is refused
 * before anything is written, and the export goes on. */
static void
test_refused_samples(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuExportWriter) writer =
	  amu_export_writer_new(AMU_EXPORT_FORMAT_CSV, scratch->out, &test_info, NULL);
	g_autoptr(GPtrArray) files = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *heart = NULL;
	const AmuSample good[] = {
		{ T0, AMU_CATEGORY_HEART_RATE, { 70 } },
		{ T0 + 1000, AMU_CATEGORY_HEART_RATE, { 71 } },
		{ T0, AMU_CATEGORY_STEPS, { 5 } },
	};
	const AmuSample bad[] = {
		{ T0 + 500, AMU_CATEGORY_STEPS, { 5 } }, /* fine: sets the time for the next */
		{ T0 + 400, AMU_CATEGORY_STEPS, { 5 } },
		{ T0 + 2000, AMU_CATEGORY_HEART_RATE, { 72 } }, /* heart rate's run has ended */
		{ T0 + 2000, (AmuCategory)42, { 1 } },
		{ -1, AMU_CATEGORY_STEPS, { 1 } },
		{ G_GINT64_CONSTANT(253402214400000), AMU_CATEGORY_STEPS, { 1 } },
		{ T0 + 3000, AMU_CATEGORY_SLEEP_STAGE, { 4 } },
		{ T0 + 3000, AMU_CATEGORY_TOY_EVENT, { 0, 1, 1 } },
	};

	CU_ASSERT_PTR_NOT_NULL_FATAL(writer);
	for (guint i = 0; i < G_N_ELEMENTS(good); i++)
		CU_ASSERT_TRUE(amu_export_writer_add(writer, &good[i], NULL));
	CU_ASSERT_TRUE(amu_export_writer_add(writer, &bad[0], NULL));
	for (guint i = 1; i < G_N_ELEMENTS(bad); i++) {
		CU_ASSERT_FALSE(amu_export_writer_add(writer, &bad[i], &error));
		AMU_ASSERT_ERROR(error, AMU_ERROR_INVALID_ARGUMENT);
		g_clear_error(&error);
	}
	CU_ASSERT_TRUE(amu_export_writer_finish(writer, &files, &error));
	CU_ASSERT_EQUAL(files->len, 2);
	heart = read_text(scratch->out, "heart_rate.csv");
	CU_ASSERT_STRING_EQUAL(heart,
			       "time_utc,bpm" CRLF "2026-11-01T00:00:00.000Z,70" CRLF
			       "2026-11-01T00:00:01.000Z,71" CRLF);
}

static void
test_existing_file(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autofree char *taken = g_build_filename(scratch->out, "bundle.json", NULL);
	g_autofree char *missing = g_build_filename(scratch->out, "nowhere", NULL);
	g_autofree char *kept = NULL;
	g_autoptr(GError) error = NULL;
	AmuExportWriter *writer;

	g_assert(g_file_set_contents(taken, "mine", -1, NULL));
	writer = amu_export_writer_new(AMU_EXPORT_FORMAT_FHIR, scratch->out, &test_info, &error);
	CU_ASSERT_PTR_NULL(writer);
	AMU_ASSERT_ERROR(error, AMU_ERROR_EXISTS);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, taken));
	g_clear_error(&error);
	kept = read_text(scratch->out, "bundle.json");
	CU_ASSERT_STRING_EQUAL(kept, "mine");

	writer = amu_export_writer_new(AMU_EXPORT_FORMAT_JSON, missing, &test_info, &error);
	CU_ASSERT_PTR_NULL(writer);
	AMU_ASSERT_ERROR(error, AMU_ERROR_NOT_FOUND);
	amu_export_writer_free(NULL);
}

/* ---------------------------------------------------------------- digests */

/* Each file finish() reports against libsodium's SHA-256 of the file as it
 * is on disk, and against the directory: every file there is reported. */
static gboolean
digests_match_disk(const char *dir, GPtrArray *files)
{
	g_autoptr(GDir) listing = g_dir_open(dir, 0, NULL);
	gboolean ok = TRUE;
	guint n_on_disk = 0;

	CU_ASSERT_FATAL(sodium_init() >= 0);
	while (listing != NULL && g_dir_read_name(listing) != NULL)
		n_on_disk++;
	if (n_on_disk != files->len) {
		g_printerr("  %u files in %s, %u reported\n", n_on_disk, dir, files->len);
		ok = FALSE;
	}
	for (guint i = 0; i < files->len; i++) {
		const AmuExportFile *file = g_ptr_array_index(files, i);
		g_autofree char *path = g_build_filename(dir, file->name, NULL);
		g_autofree char *data = NULL;
		guint8 digest[crypto_hash_sha256_BYTES];
		char hex[sizeof(digest) * 2 + 1];
		gsize len = 0;

		if (!g_file_get_contents(path, &data, &len, NULL)) {
			g_printerr("  cannot read %s\n", path);
			ok = FALSE;
			continue;
		}
		crypto_hash_sha256(digest, (const guint8 *)data, len);
		sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
		if (strcmp(hex, file->sha256) != 0 || file->size != len) {
			g_printerr("  %s: reported %s, %" G_GUINT64_FORMAT
				   " bytes; on disk %s, %" G_GSIZE_FORMAT " bytes\n",
				   file->name,
				   file->sha256,
				   file->size,
				   hex,
				   len);
			ok = FALSE;
		}
	}
	return ok;
}

static guint64
largest_file(GPtrArray *files)
{
	guint64 largest = 0;

	for (guint i = 0; i < files->len; i++)
		largest = MAX(largest, ((const AmuExportFile *)g_ptr_array_index(files, i))->size);
	return largest;
}

/* every category, so CSV writes nine files */
static void
test_digests_every_format(void)
{
	for (int format = AMU_EXPORT_FORMAT_JSON; format <= AMU_EXPORT_FORMAT_GPX; format++) {
		g_autoptr(GPtrArray) files = NULL;
		g_autoptr(Scratch) scratch = scratch_export(
		  format, AMU_GRANULARITY_RAW, raw_samples, G_N_ELEMENTS(raw_samples), &files);

		CU_ASSERT_EQUAL(files->len, format == AMU_EXPORT_FORMAT_CSV ? 9 : 1);
		CU_ASSERT_TRUE(digests_match_disk(scratch->out, files));
	}
}

/* Many buffers' worth, ending part way into one: the first ones written in
 * the caller's thread, then every buffer of the writing thread used and
 * reused; each byte hashed once, in order, and the rest at close. */
static void
test_digests_larger_than_buffer(void)
{
	g_autoptr(GArray) heart = g_array_new(FALSE, FALSE, sizeof(AmuSample));
	g_autoptr(GArray) track = g_array_new(FALSE, FALSE, sizeof(AmuSample));

	for (gint64 i = 0; i < 120000; i++) {
		AmuSample beat = { T0 + i * 1000,
				   AMU_CATEGORY_HEART_RATE,
				   { 50 + (gint32)(i % 97) } };
		AmuSample fix = { T0 + i * 1000,
				  AMU_CATEGORY_LOCATION,
				  { 525200066 + (gint32)i * 17,
				    134049540 - (gint32)i * 13,
				    (gint32)(i % 5000) } };
		g_array_append_val(heart, beat);
		g_array_append_val(track, fix);
	}
	for (int format = AMU_EXPORT_FORMAT_JSON; format <= AMU_EXPORT_FORMAT_GPX; format++) {
		GArray *samples = format == AMU_EXPORT_FORMAT_GPX ? track : heart;
		/* FHIR is 600 bytes a sample: a sixth of them is enough */
		guint n = format == AMU_EXPORT_FORMAT_FHIR ? samples->len / 6 : samples->len;
		g_autoptr(GPtrArray) files = NULL;
		g_autoptr(Scratch) scratch = scratch_export(
		  format, AMU_GRANULARITY_RAW, (const AmuSample *)samples->data, n, &files);

		CU_ASSERT_EQUAL(files->len, 1);
		/* past the bytes written before the thread starts, by every buffer */
		CU_ASSERT_TRUE(largest_file(files) > AMU_EXPORT_STREAM_THREAD_AFTER + 4 * AMU_EXPORT_STREAM_BUFFER_SIZE);
		CU_ASSERT_TRUE(largest_file(files) % AMU_EXPORT_STREAM_BUFFER_SIZE != 0);
		CU_ASSERT_TRUE(digests_match_disk(scratch->out, files));
	}
}

/* No samples: only each document's head and tail, written at close from a
 * buffer never flushed before; CSV writes no file and reports none. */
static void
test_digests_empty(void)
{
	for (int format = AMU_EXPORT_FORMAT_JSON; format <= AMU_EXPORT_FORMAT_GPX; format++) {
		g_autoptr(GPtrArray) files = NULL;
		g_autoptr(Scratch) scratch =
		  scratch_export(format, AMU_GRANULARITY_RAW, NULL, 0, &files);

		CU_ASSERT_EQUAL(files->len, format == AMU_EXPORT_FORMAT_CSV ? 0 : 1);
		if (files->len > 0)
			CU_ASSERT_TRUE(largest_file(files) < AMU_EXPORT_STREAM_BUFFER_SIZE);
		CU_ASSERT_TRUE(digests_match_disk(scratch->out, files));
	}
}

/* A device name longer than the buffer: GPX's head and every FHIR entry
 * (which names the device twice) are each one piece bigger than the
 * buffer, written past it. */
static void
test_digests_record_larger_than_buffer(void)
{
	g_autofree char *name = g_strnfill(AMU_EXPORT_STREAM_BUFFER_SIZE + 1000, 'n');
	const AmuSample samples[] = {
		{ T0, AMU_CATEGORY_HEART_RATE, { 61 } },
		{ T0 + 1000, AMU_CATEGORY_HEART_RATE, { 62 } },
		{ T0, AMU_CATEGORY_LOCATION, { 525200066, 134049540, 3412 } },
	};
	AmuExportInfo info = test_info;

	info.device_name = name;
	for (int format = AMU_EXPORT_FORMAT_JSON; format <= AMU_EXPORT_FORMAT_GPX; format++) {
		g_autoptr(Scratch) scratch = scratch_new();
		g_autoptr(AmuExportWriter) writer =
		  amu_export_writer_new(format, scratch->out, &info, NULL);
		g_autoptr(GPtrArray) files = NULL;
		g_autoptr(GError) error = NULL;

		CU_ASSERT_PTR_NOT_NULL_FATAL(writer);
		for (gsize i = 0; i < G_N_ELEMENTS(samples); i++)
			CU_ASSERT_TRUE(amu_export_writer_add(writer, &samples[i], NULL));
		CU_ASSERT_TRUE(amu_export_writer_finish(writer, &files, &error));
		CU_ASSERT_PTR_NOT_NULL_FATAL(files);
		if (format == AMU_EXPORT_FORMAT_FHIR)
			CU_ASSERT_TRUE(largest_file(files) > 4 * AMU_EXPORT_STREAM_BUFFER_SIZE);
		if (format == AMU_EXPORT_FORMAT_GPX || format == AMU_EXPORT_FORMAT_JSON)
			CU_ASSERT_TRUE(largest_file(files) > AMU_EXPORT_STREAM_BUFFER_SIZE);
		CU_ASSERT_TRUE(digests_match_disk(scratch->out, files));
	}
}

/* ---------------------------------------------------------------- failing disks */

static char *
mount_tmpfs(unsigned long flags, const char *options)
{
	char *dir;

	if (geteuid() != 0) {
		g_print("  skipped: mounting a tmpfs needs root\n");
		return NULL;
	}
	dir = g_dir_make_tmp("amu-export-full-XXXXXX", NULL);
	g_assert(dir != NULL);
	if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | flags, options) != 0) {
		g_print("  skipped: cannot mount a tmpfs: %s\n", g_strerror(errno));
		g_rmdir(dir);
		g_free(dir);
		return NULL;
	}
	return dir;
}

static void
unmount_tmpfs(char *dir)
{
	CU_ASSERT_EQUAL(umount(dir), 0);
	g_rmdir(dir);
	g_free(dir);
}

/* the asserts between mount and unmount are not fatal, so that the tmpfs
 * always goes away */
#define EXPECT(condition)                                                                          \
	do {                                                                                       \
		gboolean expect_ok_ = (condition);                                                 \
		CU_ASSERT_TRUE(expect_ok_);                                                        \
		if (!expect_ok_)                                                                   \
			return;                                                                    \
	} while (0)

static gboolean
error_is(const GError *error, AmuError code, const char *file)
{
	if (error == NULL)
		return FALSE;
	if (error->domain != AMU_ERROR || error->code != (int)code ||
	    strstr(error->message, file) == NULL) {
		g_printerr("  expected error %d naming %s, got %d: %s\n",
			   (int)code,
			   file,
			   error->code,
			   error->message);
		return FALSE;
	}
	return TRUE;
}

static void
fill_disk_while_streaming(const char *dir, gint64 n_samples)
{
	g_autoptr(AmuExportWriter) writer = NULL;
	g_autoptr(GError) error = NULL;
	GPtrArray *files = NULL;
	gboolean failed = FALSE;

	writer = amu_export_writer_new(AMU_EXPORT_FORMAT_CSV, dir, &test_info, &error);
	EXPECT(writer != NULL);
	for (gint64 i = 0; i < n_samples && !failed; i++) {
		AmuSample sample = { T0 + i * 1000, AMU_CATEGORY_HEART_RATE, { 60 + i % 100 } };
		failed = !amu_export_writer_add(writer, &sample, &error);
	}
	EXPECT(failed);
	EXPECT(error_is(error, AMU_ERROR_NO_SPACE, "heart_rate.csv"));
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "free space"));
	g_clear_error(&error);
	/* it stays failed: the file has a hole in it */
	EXPECT(!amu_export_writer_finish(writer, &files, &error));
	EXPECT(error_is(error, AMU_ERROR_NO_SPACE, "heart_rate.csv"));
	CU_ASSERT_PTR_NULL(files);
}

static void
fill_disk_before_finish(const char *dir)
{
	g_autofree char *filler = g_build_filename(dir, "filler", NULL);
	g_autoptr(AmuExportWriter) writer = NULL;
	g_autoptr(GError) error = NULL;
	GPtrArray *files = NULL;
	char block[4096] = { 0 };
	FILE *fill = fopen(filler, "w");

	EXPECT(fill != NULL);
	while (fwrite(block, 1, sizeof(block), fill) == sizeof(block) && fflush(fill) == 0)
		;
	fclose(fill);
	writer = amu_export_writer_new(AMU_EXPORT_FORMAT_JSON, dir, &test_info, &error);
	EXPECT(writer != NULL);
	for (gsize i = 0; i < G_N_ELEMENTS(raw_samples); i++)
		EXPECT(amu_export_writer_add(writer, &raw_samples[i], NULL));
	EXPECT(!amu_export_writer_finish(writer, &files, &error));
	EXPECT(error_is(error, AMU_ERROR_NO_SPACE, "samples.json"));
	CU_ASSERT_PTR_NULL(files);
}

/* A full disk is reported: by add() while the samples stream, and by
 * finish() when what is left in the buffer does not fit; and when the
 * writing thread, past the file's first megabytes, is the one that finds
 * the disk full. */
static void
test_disk_full(void)
{
	char *dir = mount_tmpfs(0, "size=64k,mode=0700");

	if (dir == NULL)
		return;
	fill_disk_while_streaming(dir, 100000);
	empty_dir(dir);
	fill_disk_before_finish(dir);
	empty_dir(dir);
	unmount_tmpfs(dir);
	/* 3 MiB: full once the thread has taken over; 200,000 rows are 5.8 MB,
	 * so add() sees it while the rows still stream */
	dir = mount_tmpfs(0, "size=3m,mode=0700");
	if (dir == NULL)
		return;
	fill_disk_while_streaming(dir, 200000);
	unmount_tmpfs(dir);
}

static void
test_read_only(void)
{
	g_autoptr(Scratch) scratch = NULL;
	g_autoptr(GError) error = NULL;
	AmuExportWriter *writer;
	char *dir;

	/* root writes anywhere a mode forbids, but not on a read-only mount */
	if (geteuid() != 0) {
		scratch = scratch_new();
		g_assert(g_chmod(scratch->out, 0500) == 0);
		writer =
		  amu_export_writer_new(AMU_EXPORT_FORMAT_GPX, scratch->out, &test_info, &error);
		CU_ASSERT_PTR_NULL(writer);
		CU_ASSERT_TRUE(error_is(error, AMU_ERROR_PERMISSION_DENIED, "track.gpx"));
		g_chmod(scratch->out, 0700);
		return;
	}
	dir = mount_tmpfs(MS_RDONLY, "size=64k");
	if (dir == NULL)
		return;
	writer = amu_export_writer_new(AMU_EXPORT_FORMAT_GPX, dir, &test_info, &error);
	CU_ASSERT_PTR_NULL(writer);
	CU_ASSERT_TRUE(error_is(error, AMU_ERROR_PERMISSION_DENIED, "track.gpx"));
	amu_export_writer_free(writer);
	unmount_tmpfs(dir);
}

AMU_TEST_MAIN("export-writer",
	      { "names", test_names },
	      { "csv raw", test_csv_raw },
	      { "csv hour", test_csv_hour },
	      { "csv times", test_csv_times },
	      { "json raw", test_json_raw },
	      { "json hour", test_json_hour },
	      { "fhir raw", test_fhir_raw },
	      { "fhir hour", test_fhir_hour },
	      { "fhir ids stable", test_fhir_ids_stable },
	      { "gpx raw", test_gpx_raw },
	      { "gpx hour", test_gpx_hour },
	      { "gpx no location", test_gpx_no_location },
	      { "empty", test_empty },
	      { "refused samples", test_refused_samples },
	      { "existing file", test_existing_file },
	      { "digests every format", test_digests_every_format },
	      { "digests larger than buffer", test_digests_larger_than_buffer },
	      { "digests empty", test_digests_empty },
	      { "digests record larger than buffer", test_digests_record_larger_than_buffer },
	      { "disk full", test_disk_full },
	      { "read-only", test_read_only })
