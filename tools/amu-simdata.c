/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "amu-simdata.h"

/* The wearer is a "person" drawn from the seed alone (resting heart rate,
 * fitness, home, charging habit), and each day a "plan" drawn from the seed
 * and the absolute day number (wake and bed times, workout, walks). Plans are
 * pure functions so a day can look at yesterday's bedtime and tomorrow's
 * alarm to cut the nights that straddle midnight. What must flow smoothly
 * across midnight (heart rate, skin temperature, battery) is carried in
 * SimState from one day to the next. */

#define SECS_PER_DAY 86400
#define MS_PER_DAY ((gint64)SECS_PER_DAY * 1000)
#define MINUTES_PER_DAY 1440
#define EPOCH_SECS 30
#define EPOCHS_PER_DAY (SECS_PER_DAY / EPOCH_SECS)
/* the longest night: to bed at 22:30, up at 09:00 after a weekend lie-in */
#define MAX_NIGHT_EPOCHS ((SECS_PER_DAY - 81000 + 32400) / EPOCH_SECS)
#define STAGE_NONE 0xff /* out of bed */
#define MICRO_PERCENT 1000000
#define EPOC_SECS 2700 /* heart rate stays raised for 45 min after a workout */
#define TURN (1u << 24) /* headings and angles are in 1/2^24 turn */

/* independent random streams, so adding a draw to one sensor does not shift
 * every other one */
enum {
	STREAM_PERSON = 1,
	STREAM_PLAN,
	STREAM_NIGHT,
	STREAM_STEPS,
	STREAM_HEART,
	STREAM_SENSORS,
	STREAM_ROUTE,
	STREAM_BATTERY,
	STREAM_TOY,
};

typedef enum {
	WORKOUT_RUN,
	WORKOUT_CYCLE,
} WorkoutKind;

/* xoshiro256** seeded through splitmix64 */
typedef struct {
	guint64 s[4];
} Rng;

static guint64
mix64(guint64 x)
{
	x = (x ^ (x >> 30)) * G_GUINT64_CONSTANT(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * G_GUINT64_CONSTANT(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

static void
rng_init(Rng *rng, guint64 seed, gint64 day, guint64 stream)
{
	guint64 x = mix64(mix64(mix64(seed) ^ (guint64)day) ^ stream);

	for (guint i = 0; i < 4; i++) {
		x += G_GUINT64_CONSTANT(0x9e3779b97f4a7c15);
		rng->s[i] = mix64(x);
	}
}

static guint64
rng_next(Rng *rng)
{
	guint64 *s = rng->s;
	guint64 result = s[1] * 5;
	guint64 t = s[1] << 17;

	result = ((result << 7) | (result >> 57)) * 9;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = (s[3] << 45) | (s[3] >> 19);
	return result;
}

/* uniform in [lo, hi]; the modulo bias over 64 bits is far below noticing */
static gint32
rng_range(Rng *rng, gint32 lo, gint32 hi)
{
	guint64 span = (guint64)((gint64)hi - lo) + 1;

	return (gint32)(lo + (gint64)(rng_next(rng) % span));
}

static gboolean
rng_chance(Rng *rng, gint32 per_mille)
{
	return rng_range(rng, 0, 999) < per_mille;
}

/* triangular in [-spread, spread]: sensor noise clusters around zero.
 * C leaves the order of two calls in one expression to the compiler, so
 * every draw is its own statement, here and throughout. */
static gint32
rng_noise(Rng *rng, gint32 spread)
{
	gint32 a = rng_range(rng, -spread, spread);
	gint32 b = rng_range(rng, -spread, spread);

	return (a + b) / 2;
}

/* Bhaskara I's approximation (error below 0.002), in Q14: good enough to
 * steer a run and exact on every machine, unlike libm */
static gint32
sin_q14(guint32 angle)
{
	gint64 half = TURN / 2;
	gint64 x = angle % (TURN / 2);
	gint64 p = x * (half - x);
	gint32 r = (gint32)(4 * p * 16384 / (5 * half * half / 4 - p));

	return (angle % TURN) >= TURN / 2 ? -r : r;
}

static gint32
cos_q14(guint32 angle)
{
	return sin_q14(angle + TURN / 4);
}

typedef struct {
	gint32 rest_hr_m;  /* asleep, milli-bpm */
	gint32 day_hr_m;   /* awake and sitting, milli-bpm */
	gint32 peak_hr;    /* typical workout effort, bpm */
	gint32 cadence;    /* running steps/min */
	gint32 pace_mm;    /* running speed, mm/s */
	gint32 activity;   /* how much they move about by day, percent */
	gint32 skin;       /* awake skin temperature, 0.01 degC */
	gint32 spo2;       /* awake, 0.1 % */
	gint32 resp_awake; /* 0.1 /min */
	gint32 resp_asleep;
	gint32 drain_u;	   /* battery use per day, micro-percent */
	gint32 battery_u;  /* charge when the simulation starts */
	gint32 charge_weekday;
	gint32 charge_minute;
	gint32 home_lat; /* 1e-7 degrees */
	gint32 home_lon;
	gint32 home_elevation_mm;
	gint32 cos_lat_q14; /* metres east per degree shrink with latitude */
} Person;

typedef struct {
	gint32 weekday; /* 0 = Sunday */
	gint32 wake_s;	/* this morning, seconds after midnight, on an epoch */
	gint32 bed_s;	/* tonight, may be past midnight (> 86400) */
	gint32 rest_hr_m;
	gint32 day_hr_m;
	gboolean has_workout;
	WorkoutKind kind;
	gint32 workout_start_s; /* on a minute */
	gint32 workout_len_s;	/* whole minutes */
	gint32 peak_hr;
	gint32 gps_fix_s; /* seconds into the workout before the first fix */
	gint32 pace_mm;
	guint n_walks;
	gint32 walk_start_min[3];
	gint32 walk_len_min[3];
	gint32 charge_minute;
	gint32 n_toy_events;
} Plan;

/* what carries over midnight */
typedef struct {
	gboolean started;
	gint32 hr_m;
	gint32 hr_noise_m;
	gint32 hr_drift_m;
	gint32 hr_effort_m;
	gint32 hr_out;
	gint32 epoc_left;
	gint32 skin_m; /* 0.01 degC x 1000 */
	gint64 battery_u;
	gboolean charging;
	gint32 charge_hold;
	gint32 charge_rate_u;
	gint32 clip_number;
} SimState;

typedef struct {
	AmuPeripheralProfile profile;
	guint64 seed;
	Person person;
	SimState state;
	/* the day being generated */
	gint64 abs_day;
	gint64 day_ms;
	Plan plan;
	guint8 stage[EPOCHS_PER_DAY];
	guint16 steps[MINUTES_PER_DAY];
	guint8 hr_minute[MINUTES_PER_DAY];
	guint8 night[MAX_NIGHT_EPOCHS];
	/* output */
	AmuSimdataFunc func;
	void *user_data;
	AmuCategory category;
	size_t n_chunk;
	AmuSample chunk[AMU_SIMDATA_CHUNK];
} Generator;

static void
gen_flush(Generator *gen)
{
	if (gen->n_chunk == 0)
		return;
	gen->func(gen->category, gen->chunk, gen->n_chunk, gen->user_data);
	gen->n_chunk = 0;
}

static void
gen_push(Generator *gen, AmuCategory category, gint64 offset_ms, gint32 v0, gint32 v1, gint32 v2)
{
	AmuSample *sample;

	if (gen->n_chunk == AMU_SIMDATA_CHUNK || (gen->n_chunk > 0 && gen->category != category))
		gen_flush(gen);
	gen->category = category;
	sample = &gen->chunk[gen->n_chunk++];
	sample->timestamp_ms = gen->day_ms + offset_ms;
	sample->category = category;
	sample->values[0] = v0;
	sample->values[1] = v1;
	sample->values[2] = v2;
}

static void
person_init(Person *person, guint64 seed)
{
	Rng rng;
	gint64 lat_angle;

	rng_init(&rng, seed, 0, STREAM_PERSON);
	person->rest_hr_m = rng_range(&rng, 50000, 58000);
	person->day_hr_m = rng_range(&rng, 67000, 75000);
	person->peak_hr = rng_range(&rng, 142, 162);
	person->cadence = rng_range(&rng, 152, 164);
	person->pace_mm = rng_range(&rng, 2800, 3500);
	person->activity = rng_range(&rng, 80, 120);
	person->skin = rng_range(&rng, 3370, 3420);
	person->spo2 = rng_range(&rng, 966, 978);
	person->resp_awake = rng_range(&rng, 145, 160);
	person->resp_asleep = rng_range(&rng, 128, 140);
	person->drain_u = rng_range(&rng, 5500, 8500) * 1000;
	person->battery_u = rng_range(&rng, 55, 100) * MICRO_PERCENT;
	person->charge_weekday = rng_range(&rng, 0, 6);
	person->charge_minute = rng_range(&rng, 19 * 60, 21 * 60 + 30);
	/* somewhere in central Berlin */
	person->home_lat = 525200000 + rng_range(&rng, -300000, 300000);
	person->home_lon = 134050000 + rng_range(&rng, -500000, 500000);
	person->home_elevation_mm = rng_range(&rng, 30000, 50000);
	lat_angle = (gint64)person->home_lat * TURN / 3600000000;
	person->cos_lat_q14 = cos_q14((guint32)lat_angle);
}

static gboolean
overlaps(gint32 a_start, gint32 a_end, gint32 b_start, gint32 b_end)
{
	return a_start < b_end && b_start < a_end;
}

static void
plan_day(const Person *person, guint64 seed, gint64 abs_day, Plan *plan)
{
	Rng rng;
	gboolean weekend;
	gint32 workout_start_min = 0;
	gint32 workout_end_min = 0;
	gint32 candidates[3][2];
	guint n_candidates = 0;

	memset(plan, 0, sizeof(*plan));
	rng_init(&rng, seed, abs_day, STREAM_PLAN);
	plan->weekday = (gint32)(((abs_day % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
	weekend = plan->weekday == 0 || plan->weekday == 6;

	/* the alarm at 06:00-08:00, a lie-in of up to an hour at the weekend;
	 * to bed at 22:30-00:30, all on 30 s epochs */
	plan->wake_s = rng_range(&rng, 720, 960) * EPOCH_SECS;
	if (weekend)
		plan->wake_s += rng_range(&rng, 0, 120) * EPOCH_SECS;
	plan->bed_s = rng_range(&rng, 2700, 2940) * EPOCH_SECS;
	plan->rest_hr_m = person->rest_hr_m + rng_range(&rng, -2000, 2000);
	plan->day_hr_m = person->day_hr_m + rng_range(&rng, -2500, 2500);

	plan->has_workout = rng_chance(&rng, weekend ? 900 : 820);
	plan->kind = rng_chance(&rng, 300) ? WORKOUT_CYCLE : WORKOUT_RUN;
	plan->workout_len_s = rng_range(&rng, 32, 75) * 60;
	switch (rng_range(&rng, 0, 2)) {
	case 0: /* before work: the latest is 10:00, done by 11:15 */
		workout_start_min = plan->wake_s / 60 + rng_range(&rng, 20, 60);
		break;
	case 1:
		workout_start_min = rng_range(&rng, 12 * 60, 12 * 60 + 45);
		break;
	default: /* done by 20:45, well before bed */
		workout_start_min = rng_range(&rng, 17 * 60, 19 * 60 + 30);
		break;
	}
	plan->workout_start_s = workout_start_min * 60;
	/* GLib's CLAMP, MIN and MAX evaluate their arguments more than once:
	 * every random draw goes into a variable first */
	plan->peak_hr = person->peak_hr + rng_range(&rng, -6, 6);
	plan->peak_hr = CLAMP(plan->peak_hr, 134, 170);
	plan->pace_mm = person->pace_mm + rng_range(&rng, -200, 200);
	plan->pace_mm = CLAMP(plan->pace_mm, 2600, 3900);
	if (plan->kind == WORKOUT_CYCLE) {
		/* an easy ride through town: lower effort, a little faster */
		plan->peak_hr = MAX(plan->peak_hr - 8, 134);
		plan->pace_mm = rng_range(&rng, 3500, 3900);
	}
	plan->gps_fix_s = rng_range(&rng, 45, 120);
	if (plan->has_workout)
		workout_end_min = workout_start_min + plan->workout_len_s / 60;

	/* walks to and from work on weekdays, a longer one at the weekend; a
	 * walk that would run into the workout is not taken */
	if (weekend) {
		candidates[n_candidates][0] = rng_range(&rng, 10 * 60, 15 * 60);
		candidates[n_candidates++][1] = rng_range(&rng, 25, 60);
	} else {
		candidates[n_candidates][0] = plan->wake_s / 60 + rng_range(&rng, 50, 100);
		candidates[n_candidates++][1] = rng_range(&rng, 10, 20);
		candidates[n_candidates][0] = rng_range(&rng, 17 * 60, 18 * 60 + 30);
		candidates[n_candidates++][1] = rng_range(&rng, 10, 25);
	}
	if (rng_chance(&rng, 400)) {
		candidates[n_candidates][0] = rng_range(&rng, 12 * 60, 13 * 60);
		candidates[n_candidates++][1] = rng_range(&rng, 8, 15);
	}
	for (guint i = 0; i < n_candidates; i++) {
		gint32 start = candidates[i][0];
		gint32 end = start + candidates[i][1];
		gboolean clash = plan->has_workout &&
				 overlaps(start, end, workout_start_min - 15, workout_end_min + 15);

		for (guint j = 0; j < plan->n_walks; j++) {
			if (overlaps(start, end, plan->walk_start_min[j] - 5,
				     plan->walk_start_min[j] + plan->walk_len_min[j] + 5))
				clash = TRUE;
		}
		if (clash)
			continue;
		plan->walk_start_min[plan->n_walks] = start;
		plan->walk_len_min[plan->n_walks++] = candidates[i][1];
	}

	/* on the charger in the evening, once the workout is over */
	plan->charge_minute = person->charge_minute + rng_range(&rng, -30, 30);
	if (plan->has_workout && overlaps(plan->charge_minute, plan->charge_minute + 90,
					  workout_start_min, workout_end_min))
		plan->charge_minute = workout_end_min + 15;

	plan->n_toy_events = weekend ? rng_range(&rng, 15, 40) : rng_range(&rng, 5, 30);
}

static void
night_put(Rng *rng, guint8 *out, guint *i, guint n, guint8 stage, gint32 len)
{
	for (gint32 k = 0; k < len && *i < n; k++) {
		guint8 value = stage;

		/* deep sleep lightens now and then; arousals come from light and REM */
		if (stage == AMU_SLEEP_STAGE_DEEP && rng_chance(rng, 40))
			value = AMU_SLEEP_STAGE_LIGHT;
		else if (stage == AMU_SLEEP_STAGE_LIGHT && rng_chance(rng, 12))
			value = AMU_SLEEP_STAGE_AWAKE;
		else if (stage == AMU_SLEEP_STAGE_REM && rng_chance(rng, 12))
			value = AMU_SLEEP_STAGE_AWAKE;
		out[(*i)++] = value;
	}
}

/* The hypnogram of the night that ends on the morning of @abs_day: ~90 min
 * cycles of light, deep, light, REM, deep sleep front-loaded and REM growing
 * towards morning, brief awakenings mostly between cycles. */
static void
night_fill(guint64 seed, gint64 abs_day, guint n, guint8 *out)
{
	Rng rng;
	guint i = 0;
	gint32 final_wake;

	rng_init(&rng, seed, abs_day, STREAM_NIGHT);
	for (gint32 cycle = 0; i < n; cycle++) {
		gint32 len = rng_range(&rng, 160, 220);
		gint32 deep_pct = 42 - 12 * cycle + rng_range(&rng, -5, 5);
		gint32 rem_pct = 12 + 9 * cycle + rng_range(&rng, -3, 3);
		gint32 deep = len * MAX(deep_pct, 4) / 100;
		gint32 rem = len * MIN(rem_pct, 45) / 100;
		gint32 light = len - deep - rem;

		night_put(&rng, out, &i, n, AMU_SLEEP_STAGE_LIGHT, light * 6 / 10);
		night_put(&rng, out, &i, n, AMU_SLEEP_STAGE_DEEP, deep);
		night_put(&rng, out, &i, n, AMU_SLEEP_STAGE_LIGHT, light - light * 6 / 10);
		night_put(&rng, out, &i, n, AMU_SLEEP_STAGE_REM, rem);
		if (rng_chance(&rng, 350 + 100 * cycle))
			night_put(&rng, out, &i, n, AMU_SLEEP_STAGE_AWAKE, rng_range(&rng, 1, 4));
	}
	final_wake = rng_range(&rng, 1, 4);
	for (gint32 k = 0; k < final_wake && (guint)k < n; k++)
		out[n - 1 - k] = AMU_SLEEP_STAGE_AWAKE;
}

static gboolean
in_workout(const Plan *plan, gint32 s)
{
	return plan->has_workout && s >= plan->workout_start_s &&
	       s < plan->workout_start_s + plan->workout_len_s;
}

static gboolean
in_bed_minute(const Generator *gen, gint32 minute)
{
	return gen->stage[minute * 2] != STAGE_NONE || gen->stage[minute * 2 + 1] != STAGE_NONE;
}

/* this morning's end of last night, and the start of tonight up to midnight */
static void
fill_stages(Generator *gen, const Plan *yesterday, const Plan *tomorrow)
{
	const Plan *today = &gen->plan;
	gint32 night_start = yesterday->bed_s - SECS_PER_DAY;
	guint n = (guint)((today->wake_s - night_start) / EPOCH_SECS);

	memset(gen->stage, STAGE_NONE, sizeof(gen->stage));
	night_fill(gen->seed, gen->abs_day, n, gen->night);
	for (guint e = 0; e < n; e++) {
		gint32 t = night_start + (gint32)e * EPOCH_SECS;
		if (t >= 0)
			gen->stage[t / EPOCH_SECS] = gen->night[e];
	}
	if (today->bed_s >= SECS_PER_DAY)
		return;
	n = (guint)((SECS_PER_DAY + tomorrow->wake_s - today->bed_s) / EPOCH_SECS);
	night_fill(gen->seed, gen->abs_day + 1, n, gen->night);
	for (guint e = 0; e < n; e++) {
		gint32 t = today->bed_s + (gint32)e * EPOCH_SECS;
		if (t >= SECS_PER_DAY)
			break;
		gen->stage[t / EPOCH_SECS] = gen->night[e];
	}
}

/* how likely pottering about is, per mille of minutes, by time of day */
static gint32
activity_level(const Generator *gen, gint32 minute)
{
	const Plan *plan = &gen->plan;
	gint32 level;

	if (minute - plan->wake_s / 60 < 45)
		level = 550;
	else if (minute < 9 * 60)
		level = 320;
	else if (minute < 12 * 60)
		level = 220;
	else if (minute < 14 * 60)
		level = 380;
	else if (minute < 17 * 60)
		level = 220;
	else if (minute < 20 * 60)
		level = 320;
	else
		level = 140;
	if (plan->weekday == 0 || plan->weekday == 6)
		level = level * 6 / 5;
	return level * gen->person.activity / 100;
}

static void
fill_steps(Generator *gen)
{
	const Plan *plan = &gen->plan;
	Rng rng;
	gint32 stroll_left = 0;

	rng_init(&rng, gen->seed, gen->abs_day, STREAM_STEPS);
	for (gint32 m = 0; m < MINUTES_PER_DAY; m++) {
		gint32 steps = 0;
		gboolean walking = FALSE;

		for (guint i = 0; i < plan->n_walks; i++) {
			if (m >= plan->walk_start_min[i] &&
			    m < plan->walk_start_min[i] + plan->walk_len_min[i])
				walking = TRUE;
		}
		if (in_bed_minute(gen, m)) {
			stroll_left = 0;
		} else if (in_workout(plan, m * 60)) {
			/* the cadence is within 152-164 and the noise within 6 */
			if (plan->kind == WORKOUT_RUN)
				steps = gen->person.cadence + rng_noise(&rng, 6);
			else
				steps = rng_chance(&rng, 200) ? rng_range(&rng, 1, 4) : 0;
		} else if (walking) {
			steps = rng_range(&rng, 100, 125);
		} else if (stroll_left > 0) {
			steps = rng_range(&rng, 60, 105);
			stroll_left--;
		} else {
			gint32 level = activity_level(gen, m);
			gint32 r = rng_range(&rng, 0, 999);

			if (r < level / 25) {
				stroll_left = rng_range(&rng, 0, 3);
				steps = rng_range(&rng, 60, 105);
			} else if (r < level * 6 / 10) {
				steps = rng_range(&rng, 4, 40);
			} else if (rng_chance(&rng, 100)) {
				steps = rng_range(&rng, 1, 6);
			}
		}
		gen->steps[m] = (guint16)steps;
	}
}

/* heart rate while asleep: lowest around 03:30, lower in deep sleep, up in
 * REM and brief awakenings */
static gint32
heart_target_asleep(const Generator *gen, gint32 s, guint8 stage)
{
	gint32 from_nadir = ABS(s - 12600);
	gint32 target;

	if (from_nadir > SECS_PER_DAY / 2)
		from_nadir = SECS_PER_DAY - from_nadir;
	target = gen->plan.rest_hr_m + MIN(from_nadir, 18000) * 4 / 18;
	switch ((AmuSleepStage)stage) {
	case AMU_SLEEP_STAGE_AWAKE:
		return target + 9000;
	case AMU_SLEEP_STAGE_LIGHT:
		return target;
	case AMU_SLEEP_STAGE_DEEP:
		return target - 3000;
	case AMU_SLEEP_STAGE_REM:
		return target + 3500;
	}
	return target;
}

/* Heart rate as a milli-bpm value chasing a target (asleep, awake with the
 * steps of the minute and a slow drift, or the workout's effort) with a
 * time constant of its own, plus correlated noise; the bpm reported moves at
 * most 3 per second. */
static void
emit_heart_rate(Generator *gen)
{
	const Plan *plan = &gen->plan;
	SimState *state = &gen->state;
	Rng rng;
	gint32 minute_sum = 0;

	rng_init(&rng, gen->seed, gen->abs_day, STREAM_HEART);
	for (gint32 s = 0; s < SECS_PER_DAY; s++) {
		guint8 stage = gen->stage[s / EPOCH_SECS];
		gint32 target;
		gint32 tau;
		gint32 spread;
		gint32 bpm;

		if (s % 60 == 0) {
			state->hr_drift_m += rng_noise(&rng, 500);
			state->hr_drift_m -= state->hr_drift_m / 64;
			state->hr_drift_m = CLAMP(state->hr_drift_m, -7000, 7000);
		}
		if (stage != STAGE_NONE) {
			target = heart_target_asleep(gen, s, stage);
			tau = 90;
			spread = 600;
		} else if (in_workout(plan, s)) {
			gint32 elapsed = s - plan->workout_start_s;

			if (elapsed == 0)
				state->hr_effort_m = 0;
			if (elapsed % 10 == 0) {
				state->hr_effort_m += rng_noise(&rng, 1500);
				state->hr_effort_m = CLAMP(state->hr_effort_m, -4000, 4000);
			}
			/* effort plus cardiac drift over the session */
			target = plan->peak_hr * 1000 - 8000 +
				 6000 * elapsed / plan->workout_len_s + state->hr_effort_m;
			target = CLAMP(target, 126000, 176000);
			tau = 30;
			spread = 1200;
			if (elapsed == plan->workout_len_s - 1)
				state->epoc_left = EPOC_SECS;
		} else {
			target = plan->day_hr_m + state->hr_drift_m +
				 MIN(gen->steps[s / 60] * 160, 25000);
			if (s >= 21 * 3600)
				target -= 3000; /* winding down */
			tau = 60;
			spread = 1000;
			if (state->epoc_left > 0) {
				/* 30-40 bpm back down in the first minute, the rest
				 * over the next three quarters of an hour */
				target += 15000 * state->epoc_left / EPOC_SECS;
				state->epoc_left--;
			}
		}
		if (!state->started) {
			state->hr_m = target;
			state->started = TRUE;
		}
		state->hr_m += (target - state->hr_m) / tau;
		state->hr_noise_m = state->hr_noise_m * 15 / 16 + rng_noise(&rng, spread);
		bpm = (state->hr_m + state->hr_noise_m + 500) / 1000;
		if (state->hr_out > 0)
			bpm = CLAMP(bpm, state->hr_out - 3, state->hr_out + 3);
		bpm = CLAMP(bpm, 38, 190);
		state->hr_out = bpm;
		minute_sum += bpm;
		if (s % 60 == 59) {
			gen->hr_minute[s / 60] = (guint8)((minute_sum + 30) / 60);
			minute_sum = 0;
		}
		gen_push(gen, AMU_CATEGORY_HEART_RATE, (gint64)s * 1000, bpm, 0, 0);
	}
	gen_flush(gen);
}

static void
emit_steps(Generator *gen)
{
	for (gint32 m = 0; m < MINUTES_PER_DAY; m++)
		gen_push(gen, AMU_CATEGORY_STEPS, (gint64)m * 60000, gen->steps[m], 0, 0);
	gen_flush(gen);
}

static void
emit_sleep(Generator *gen)
{
	for (gint32 e = 0; e < EPOCHS_PER_DAY; e++) {
		if (gen->stage[e] != STAGE_NONE)
			gen_push(gen, AMU_CATEGORY_SLEEP_STAGE, (gint64)e * EPOCH_SECS * 1000,
				 gen->stage[e], 0, 0);
	}
	gen_flush(gen);
}

/* spot readings every 5 min: slightly lower and dipping now and then asleep */
static void
emit_spo2(Generator *gen, Rng *rng)
{
	for (gint32 m = 0; m < MINUTES_PER_DAY; m += 5) {
		gint32 value = gen->person.spo2;

		if (in_bed_minute(gen, m)) {
			value -= 12;
			if (rng_chance(rng, 150))
				value -= rng_range(rng, 10, 25);
		} else if (in_workout(&gen->plan, m * 60)) {
			value -= 5;
		}
		value += rng_noise(rng, 6);
		value = CLAMP(value, 940, 990);
		gen_push(gen, AMU_CATEGORY_SPO2, (gint64)m * 60000, value, 0, 0);
	}
	gen_flush(gen);
}

/* warmer in bed (the body sheds heat to fall asleep), cooler while sweating */
static void
emit_skin_temp(Generator *gen, Rng *rng)
{
	SimState *state = &gen->state;

	for (gint32 m = 0; m < MINUTES_PER_DAY; m++) {
		gint32 target = gen->person.skin;

		if (in_bed_minute(gen, m))
			target += 120;
		else if (in_workout(&gen->plan, m * 60))
			target -= 60;
		target *= 1000;
		state->skin_m += (target - state->skin_m) / 20 + rng_noise(rng, 1500);
		state->skin_m = CLAMP(state->skin_m, 3300000, 3600000);
		gen_push(gen, AMU_CATEGORY_SKIN_TEMP, (gint64)m * 60000,
			 CLAMP((state->skin_m + 500) / 1000, 3300, 3600), 0, 0);
	}
	gen_flush(gen);
}

/* slower and steadier asleep (except in REM), following the heart by day */
static void
emit_respiratory_rate(Generator *gen, Rng *rng)
{
	for (gint32 m = 0; m < MINUTES_PER_DAY; m += 5) {
		guint8 stage = gen->stage[m * 2];
		gint32 value;

		if (stage != STAGE_NONE) {
			value = gen->person.resp_asleep;
			if (stage == AMU_SLEEP_STAGE_DEEP)
				value -= 8;
			else if (stage == AMU_SLEEP_STAGE_REM || stage == AMU_SLEEP_STAGE_AWAKE)
				value += 10;
			value += rng_noise(rng, 5);
		} else {
			value = gen->person.resp_awake +
				(gen->hr_minute[m] - gen->plan.day_hr_m / 1000) * 6 / 10 +
				rng_noise(rng, 6);
		}
		gen_push(gen, AMU_CATEGORY_RESPIRATORY_RATE, (gint64)m * 60000,
			 CLAMP(value, 120, 200), 0, 0);
	}
	gen_flush(gen);
}

/* A loop from home: the heading turns once round over the session plus a
 * smooth random wiggle, the speed wanders around the day's pace, and the
 * ground rises and falls gently. Positions integrate in mm x 2^14. */
static void
emit_location(Generator *gen)
{
	const Plan *plan = &gen->plan;
	const Person *person = &gen->person;
	Rng rng;
	gint32 len = plan->workout_len_s - plan->gps_fix_s;
	guint32 heading;
	gint32 base_turn = (gint32)(TURN / (guint32)len);
	gint32 wiggle = 0;
	gint32 speed_mm = plan->pace_mm;
	gint32 grade = 0; /* per 100,000 */
	gint64 north_q = 0;
	gint64 east_q = 0;
	gint64 elevation_mm = person->home_elevation_mm;

	rng_init(&rng, gen->seed, gen->abs_day, STREAM_ROUTE);
	heading = (guint32)rng_range(&rng, 0, TURN - 1);
	if (rng_chance(&rng, 500))
		base_turn = -base_turn;
	for (gint32 k = 0; k < len; k++) {
		gint32 s = plan->workout_start_s + plan->gps_fix_s + k;
		gint64 lat = person->home_lat + north_q * 8983 / ((gint64)16384 * 100000);
		gint64 lon =
		    person->home_lon + east_q * 8983 / ((gint64)100000 * person->cos_lat_q14);

		gen_push(gen, AMU_CATEGORY_LOCATION, (gint64)s * 1000, (gint32)lat, (gint32)lon,
			 (gint32)(elevation_mm / 10));

		/* up to about 3 degrees a second of wiggle: corners, not zigzags */
		wiggle += rng_noise(&rng, 12000);
		wiggle -= wiggle / 32;
		wiggle = CLAMP(wiggle, -140000, 140000);
		heading += (guint32)(base_turn + wiggle);
		speed_mm += rng_noise(&rng, 40) + (plan->pace_mm - speed_mm) / 64;
		speed_mm = CLAMP(speed_mm, 2500, 4000);
		north_q += (gint64)speed_mm * cos_q14(heading);
		east_q += (gint64)speed_mm * sin_q14(heading);
		grade += rng_noise(&rng, 60);
		if (elevation_mm > person->home_elevation_mm + 20000)
			grade -= 20;
		else if (elevation_mm < person->home_elevation_mm - 10000)
			grade += 20;
		grade = CLAMP(grade, -4000, 4000);
		elevation_mm += (gint64)speed_mm * grade / 100000;
	}
	gen_flush(gen);
}

/* Discharges all day (a little faster with GPS on) and charges on the
 * wearer's weekly charging evening, or that evening if it starts the day
 * below 30 %; held at 100 % until taken off the charger. */
static void
emit_battery(Generator *gen)
{
	const Plan *plan = &gen->plan;
	SimState *state = &gen->state;
	Rng rng;
	gboolean charge_today;

	rng_init(&rng, gen->seed, gen->abs_day, STREAM_BATTERY);
	charge_today = plan->weekday == gen->person.charge_weekday ||
		       state->battery_u < 30 * MICRO_PERCENT;
	for (gint32 m = 0; m < MINUTES_PER_DAY; m++) {
		gint64 drain = gen->person.drain_u / MINUTES_PER_DAY;
		gint64 percent = (state->battery_u + MICRO_PERCENT / 2) / MICRO_PERCENT;

		if (m % 15 == 0)
			gen_push(gen, AMU_CATEGORY_BATTERY, (gint64)m * 60000,
				 (gint32)CLAMP(percent, 0, 100), 0, 0);
		if (charge_today && m == MIN(plan->charge_minute, MINUTES_PER_DAY - 1)) {
			state->charging = TRUE;
			state->charge_hold = rng_range(&rng, 10, 40);
			state->charge_rate_u = rng_range(&rng, 1200000, 1600000);
		}
		if (state->charging) {
			state->battery_u += state->charge_rate_u;
			state->battery_u = MIN(state->battery_u, 100 * MICRO_PERCENT);
			if (state->battery_u == 100 * MICRO_PERCENT && --state->charge_hold <= 0)
				state->charging = FALSE;
			continue;
		}
		if (gen->profile == AMU_PERIPHERAL_PROFILE_WATCH &&
		    in_workout(plan, m * 60 + plan->gps_fix_s))
			drain += MICRO_PERCENT / 60; /* GPS: 1 % an hour */
		state->battery_u = MAX(state->battery_u - drain, 0);
	}
	gen_flush(gen);
}

static int
compare_int(const void *a, const void *b)
{
	gint32 x = *(const gint32 *)a;
	gint32 y = *(const gint32 *)b;

	return (x > y) - (x < y);
}

/* Play comes in a few bursts between 07:30 and 19:30 (later at the
 * weekend): presses, recorded clips (their length only), games and stories. */
static void
emit_toy_events(Generator *gen)
{
	const Plan *plan = &gen->plan;
	Rng rng;
	gint32 times[40];
	gint32 centres[4];
	gint32 n = plan->n_toy_events;
	gint32 n_bursts;
	gint32 window_start = 27000;
	gint32 window_end = 70200;

	rng_init(&rng, gen->seed, gen->abs_day, STREAM_TOY);
	if (plan->weekday == 0 || plan->weekday == 6) {
		window_start += 1800;
		window_end += 1800;
	}
	n_bursts = rng_range(&rng, 1, 4);
	for (gint32 i = 0; i < n_bursts; i++)
		centres[i] = rng_range(&rng, window_start, window_end - 2700);
	for (gint32 i = 0; i < n; i++) {
		gint32 burst = rng_range(&rng, 0, n_bursts - 1);
		times[i] = centres[burst] + rng_range(&rng, 0, 2700);
	}
	qsort(times, (size_t)n, sizeof(times[0]), compare_int);
	for (gint32 i = 1; i < n; i++)
		times[i] = MAX(times[i], times[i - 1] + 1);

	for (gint32 i = 0; i < n; i++) {
		gint64 offset_ms = (gint64)times[i] * 1000 + rng_range(&rng, 0, 999);
		gint32 r = rng_range(&rng, 0, 99);
		AmuToyEventKind kind;
		gint32 duration_ms;
		gint32 item;

		if (r < 45) {
			kind = AMU_TOY_EVENT_BUTTON;
			duration_ms = 0;
			item = rng_range(&rng, 1, 4); /* which button */
		} else if (r < 65) {
			kind = AMU_TOY_EVENT_VOICE_CLIP;
			duration_ms = rng_range(&rng, 500, 30000);
			item = ++gen->state.clip_number;
		} else if (r < 85) {
			kind = AMU_TOY_EVENT_PLAY_SESSION;
			duration_ms = rng_range(&rng, 3, 40) * 60000;
			item = rng_range(&rng, 1, 12); /* which game */
		} else {
			kind = AMU_TOY_EVENT_STORY;
			duration_ms = rng_range(&rng, 2 * 60, 12 * 60) * 1000;
			item = rng_range(&rng, 1, 60);
		}
		gen_push(gen, AMU_CATEGORY_TOY_EVENT, offset_ms, kind, duration_ms, item);
	}
	gen_flush(gen);
}

static void
generate_day(Generator *gen)
{
	Plan yesterday;
	Plan tomorrow;
	Rng rng;
	gboolean health = FALSE;

	plan_day(&gen->person, gen->seed, gen->abs_day - 1, &yesterday);
	plan_day(&gen->person, gen->seed, gen->abs_day, &gen->plan);
	plan_day(&gen->person, gen->seed, gen->abs_day + 1, &tomorrow);
	switch (gen->profile) {
	case AMU_PERIPHERAL_PROFILE_BAND:
	case AMU_PERIPHERAL_PROFILE_WATCH:
		health = TRUE;
		break;
	case AMU_PERIPHERAL_PROFILE_TOY:
		break;
	}
	if (health) {
		fill_stages(gen, &yesterday, &tomorrow);
		fill_steps(gen);
		rng_init(&rng, gen->seed, gen->abs_day, STREAM_SENSORS);
		emit_heart_rate(gen);
		emit_steps(gen);
		emit_spo2(gen, &rng);
		emit_sleep(gen);
		emit_skin_temp(gen, &rng);
		emit_respiratory_rate(gen, &rng);
		if (gen->profile == AMU_PERIPHERAL_PROFILE_WATCH && gen->plan.has_workout)
			emit_location(gen);
	}
	emit_battery(gen);
	if (gen->profile == AMU_PERIPHERAL_PROFILE_TOY)
		emit_toy_events(gen);
}

void
amu_simdata_generate(AmuPeripheralProfile profile, guint64 seed, gint64 start_ms, guint days,
		     AmuSimdataFunc func, void *user_data)
{
	g_autofree Generator *gen = NULL;
	gint64 first_day;

	g_return_if_fail(func != NULL);

	/* the days are numbered from the epoch so a day's plan does not depend on
	 * where the run started; floor division for dates before 1970 */
	first_day = start_ms / MS_PER_DAY;
	if (start_ms % MS_PER_DAY < 0)
		first_day--;
	gen = g_new0(Generator, 1);
	gen->profile = profile;
	gen->seed = seed;
	gen->func = func;
	gen->user_data = user_data;
	person_init(&gen->person, seed);
	gen->state.battery_u = gen->person.battery_u;
	/* midnight usually finds the wearer in bed, where the skin is warmer */
	gen->state.skin_m = (gen->person.skin + 120) * 1000;
	for (guint d = 0; d < days; d++) {
		gen->abs_day = first_day + d;
		gen->day_ms = start_ms + (gint64)d * MS_PER_DAY;
		generate_day(gen);
	}
}

static void
count_cb(G_GNUC_UNUSED AmuCategory category, G_GNUC_UNUSED const AmuSample *samples, size_t n,
	 void *user_data)
{
	guint64 *total = user_data;

	*total += n;
}

guint64
amu_simdata_count(AmuPeripheralProfile profile, guint64 seed, gint64 start_ms, guint days)
{
	guint64 total = 0;

	amu_simdata_generate(profile, seed, start_ms, days, count_cb, &total);
	return total;
}
