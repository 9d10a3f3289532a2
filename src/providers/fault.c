/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <vss/hresult.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/util.h"
#include "providers/fault.h"

static const char *const step_names[_STEP_MAX] = {
	[STEP_BEGIN_PREPARE] = "begin_prepare",
	[STEP_END_PREPARE] = "end_prepare",
	[STEP_PRE_COMMIT] = "pre_commit",
	[STEP_HOLD] = "hold",
	[STEP_COMMIT] = "commit",
	[STEP_RELEASE] = "release",
	[STEP_POST_COMMIT] = "post_commit",
	[STEP_PRE_FINAL_COMMIT] = "pre_final_commit",
	[STEP_POST_FINAL_COMMIT] = "post_final_commit",
	[STEP_ABORT] = "abort",
	[STEP_DELETE] = "delete",
};

const char *provider_step_name(ProviderStep s)
{
	return s < _STEP_MAX ? step_names[s] : "?";
}

typedef struct Fault {
	ProviderStep step;
	unsigned member;        /* 0 = every member */
	int result;             /* injected result, 0 for a pure delay */
	usec_t delay;
	atomic_int remaining;   /* how many more times; -1: always */
} Fault;

struct FaultTable {
	Fault *faults;
	size_t n;
};

static const struct {
	const char *name;
	int value;
} errnos[] = {
	{ "ENOSPC", ENOSPC }, { "EDQUOT", EDQUOT }, { "EIO", EIO },       { "EROFS", EROFS },
	{ "EPERM", EPERM },   { "EACCES", EACCES }, { "EBUSY", EBUSY },   { "ENOENT", ENOENT },
	{ "EINVAL", EINVAL }, { "ENOMEM", ENOMEM }, { "EEXIST", EEXIST }, { "EOPNOTSUPP", EOPNOTSUPP },
};

/* Longest delay a test may ask for: an hour. */
#define DELAY_MAX_MS 3600000

static int parse_one(char *entry, Fault *ret)
{
	char *step, *member, *action, *times;
	uint64_t v;

	/* strsep, not strtok: "commit::1:EIO" must not pass as "commit:1:EIO". */
	step = strsep(&entry, ":");
	member = strsep(&entry, ":");
	action = entry;
	if (!step || !member || !action || !*step || !*member || !*action)
		return -EINVAL;

	*ret = (Fault){ .step = _STEP_MAX, .remaining = -1 };
	times = strchr(action, '*');
	if (times) {
		*times++ = '\0';
		if (parse_u64(times, &v) < 0 || v == 0 || v > 1000000)
			return -EINVAL;
		ret->remaining = (int)v;
	}
	for (unsigned s = 0; s < _STEP_MAX; s++)
		if (streq(step, step_names[s]))
			ret->step = s;
	if (ret->step == _STEP_MAX)
		return -EINVAL;

	if (streq(member, "*"))
		ret->member = 0;
	else if (parse_u64(member, &v) < 0 || v == 0 || v > 4096)
		return -EINVAL;
	else
		ret->member = (unsigned)v;

	if (streq(action, "veto")) {
		ret->result = VSS_E_PROVIDER_VETO;
		return 0;
	}
	if (strncmp(action, "delay=", 6) == 0) {
		if (parse_u64(action + 6, &v) < 0 || v > DELAY_MAX_MS)
			return -EINVAL;
		ret->delay = v * USEC_PER_MSEC;
		return 0;
	}
	for (size_t i = 0; i < ELEMENTSOF(errnos); i++)
		if (streq(action, errnos[i].name)) {
			ret->result = -errnos[i].value;
			return 0;
		}
	return -EINVAL;
}

int fault_table_parse(const char *spec, FaultTable **ret)
{
	_cleanup_free_ char *copy = strdup(spec);
	FaultTable *t;
	char *rest, *e;

	if (!copy)
		return -ENOMEM;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	rest = *copy ? copy : NULL;
	while ((e = strsep(&rest, ","))) {
		_cleanup_free_ char *shown = strdup(e);
		Fault f, *nf;

		if (parse_one(e, &f) < 0) {
			log_error("VSS_FAULTS: cannot parse \"%s\"", shown ?: "?");
			fault_table_free(t);
			return -EINVAL;
		}
		nf = array_grow((void **)&t->faults, &t->n, sizeof(*nf));
		if (!nf) {
			fault_table_free(t);
			return -ENOMEM;
		}
		*nf = f;
	}
	*ret = t;
	return 0;
}

FaultTable *fault_table_free(FaultTable *t)
{
	if (t) {
		free(t->faults);
		free(t);
	}
	return NULL;
}

int fault_inject(FaultTable *t, ProviderStep step, unsigned member)
{
	if (!t)
		return 0;
	for (size_t i = 0; i < t->n; i++) {
		Fault *f = &t->faults[i];
		int left;

		if (f->step != step || (f->member != 0 && f->member != member))
			continue;
		/* Count down a limited fault; several workers may race here. */
		left = atomic_load(&f->remaining);
		while (left > 0 && !atomic_compare_exchange_weak(&f->remaining, &left, left - 1))
			;
		if (left == 0)
			continue;
		if (f->delay > 0)
			sleep_usec(f->delay);
		if (f->result != 0)
			return f->result;
	}
	return 0;
}
