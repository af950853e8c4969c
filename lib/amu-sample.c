/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-private.h"

/* One row per category: its name in the CLI, exports and consent scopes; how
 * many values a sample has; the range each may take (what the host accepts
 * from a device); their units; and how long the host keeps them by default
 * (OTA 22; docs/retention.md explains the choices). */
typedef struct {
	const char *name;
	guint n_values;
	gint32 min[AMU_SAMPLE_MAX_VALUES];
	gint32 max[AMU_SAMPLE_MAX_VALUES];
	const char *unit[AMU_SAMPLE_MAX_VALUES];
	guint retention_days;
} AmuCategoryInfo;

static const AmuCategoryInfo categories[] = {
	[AMU_CATEGORY_HEART_RATE] = {"heart_rate", 1, {20}, {300}, {"bpm"}, 365},
	[AMU_CATEGORY_STEPS] = {"steps", 1, {0}, {1000}, {"steps/min"}, 730},
	[AMU_CATEGORY_SPO2] = {"spo2", 1, {500}, {1000}, {"0.1 %"}, 365},
	[AMU_CATEGORY_SLEEP_STAGE] = {"sleep_stage", 1, {0}, {3}, {"stage"}, 365},
	[AMU_CATEGORY_SKIN_TEMP] = {"skin_temp", 1, {2000}, {4500}, {"0.01 degC"}, 365},
	[AMU_CATEGORY_RESPIRATORY_RATE] = {"respiratory_rate", 1, {0}, {1200}, {"0.1 /min"}, 365},
	[AMU_CATEGORY_LOCATION] = {"location",
				   3,
				   {-900000000, -1800000000, -100000},
				   {900000000, 1800000000, 1000000},
				   {"1e-7 deg", "1e-7 deg", "cm"},
				   90},
	[AMU_CATEGORY_BATTERY] = {"battery", 1, {0}, {100}, {"%"}, 30},
	[AMU_CATEGORY_TOY_EVENT] = {"toy_event",
				    3,
				    {1, 0, 0},
				    {4, 3600000, G_MAXINT32},
				    {"kind", "ms", "item"},
				    30},
};

gboolean
amu_category_is_valid(int category)
{
	return category >= AMU_CATEGORY_FIRST && category <= AMU_CATEGORY_LAST;
}

const char *
amu_category_to_string(AmuCategory category)
{
	if (!amu_category_is_valid(category))
		return NULL;
	return categories[category].name;
}

gboolean
amu_category_from_string(const char *name, AmuCategory *category)
{
	g_return_val_if_fail(name != NULL, FALSE);
	for (int i = AMU_CATEGORY_FIRST; i <= AMU_CATEGORY_LAST; i++) {
		if (strcmp(categories[i].name, name) == 0) {
			if (category != NULL)
				*category = i;
			return TRUE;
		}
	}
	return FALSE;
}

guint
amu_category_get_n_values(AmuCategory category)
{
	if (!amu_category_is_valid(category))
		return 0;
	return categories[category].n_values;
}

gboolean
amu_category_get_value_range(AmuCategory category, guint index, gint32 *min, gint32 *max)
{
	if (!amu_category_is_valid(category) || index >= categories[category].n_values)
		return FALSE;
	if (min != NULL)
		*min = categories[category].min[index];
	if (max != NULL)
		*max = categories[category].max[index];
	return TRUE;
}

const char *
amu_category_get_unit(AmuCategory category, guint index)
{
	if (!amu_category_is_valid(category) || index >= categories[category].n_values)
		return NULL;
	return categories[category].unit[index];
}

guint
amu_category_get_default_retention_days(AmuCategory category)
{
	if (!amu_category_is_valid(category))
		return 0;
	return categories[category].retention_days;
}
