/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stddef.h>

#include "amu-peripheral.h"
#include "amulet/amulet.h"

G_BEGIN_DECLS

/* The simulated wearer's telemetry: a pure function of (profile, seed, start,
 * days), so a test or a benchmark that names a seed gets the same samples,
 * bit for bit, on any machine. Only integer arithmetic and our own PRNG are
 * used, never libm, g_random, the clock or the locale.
 *
 * Each day from @start_ms (a UTC midnight; clock times below are UTC) is
 * delivered category by category, each in ascending timestamp order, in calls
 * of at most AMU_SIMDATA_CHUNK samples; a call never mixes categories or
 * days and never has zero samples. @samples is only valid during the call.
 * Memory stays bounded by one day whatever @days is.
 *
 *   band, watch: heart_rate 1 Hz (86400/day), steps per minute (1440),
 *     spo2 and respiratory_rate every 5 min (288), skin_temp per minute
 *     (1440), battery every 15 min (96), sleep_stage 30 s epochs inside the
 *     night's sleep window (bedtime 22:30-00:30, waking 06:00-09:00)
 *   watch: also location at 1 Hz during each workout once GPS has a fix
 *   toy: battery every 15 min and 5-40 toy_event samples by day
 *
 * A band day is about 90,900 samples; a watch day adds 1,800-4,450 fixes
 * when there is a workout (most days), 93,400 a day on average; a toy day
 * is about 100-140. */

#define AMU_SIMDATA_CHUNK 4096

typedef void (*AmuSimdataFunc)(AmuCategory category,
			       const AmuSample *samples,
			       size_t n,
			       void *user_data);

void amu_simdata_generate(AmuPeripheralProfile profile,
			  guint64 seed,
			  gint64 start_ms,
			  guint days,
			  AmuSimdataFunc func,
			  void *user_data);
/* how many samples amu_simdata_generate() would deliver for the same arguments */
guint64 amu_simdata_count(AmuPeripheralProfile profile, guint64 seed, gint64 start_ms, guint days);

G_END_DECLS
