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

static const char *const point_names[_POINT_MAX] = {
	[POINT_FREEZE] = "freeze",
	[POINT_THAW] = "thaw",
	[POINT_CLONE] = "clone",
	[POINT_SYNC] = "sync",
	[POINT_SNAPSHOT] = "snapshot",
	[POINT_REMOVE] = "remove",
	[POINT_MOUNT] = "mount",
	[POINT_UMOUNT] = "umount",
	[POINT_LOOP] = "loop",
	[POINT_CATALOG] = "catalog",
	[POINT_FORK] = "fork",
	[POINT_EXEC] = "exec",
	[POINT_SPACE] = "space",
};

const char *provider_step_name(ProviderStep s)
{
	return s < _STEP_MAX ? step_names[s] : "?";
}

const char *fault_point_name(FaultPoint p)
{
	return p < _POINT_MAX ? point_names[p] : "?";
}

typedef enum FaultKind {
	KIND_STEP,
	KIND_POINT,
	KIND_REVERT,
} FaultKind;

typedef struct Fault {
	FaultKind kind;
	unsigned what;          /* a ProviderStep, or a FaultPoint; 0 for a revert */
	unsigned target;        /* the member, the call, or the revert step; 0 = every one */
	int result;             /* injected result, 0 for a pure delay */
	usec_t delay;
	atomic_int remaining;   /* how many more times; -1: always */
} Fault;

struct FaultTable {
	Fault *faults;
	size_t n;
	atomic_uint calls[_POINT_MAX];
};

static FaultTable *global;

static const struct {
	const char *name;
	int value;
} errnos[] = {
	{ "ENOSPC", ENOSPC }, { "EDQUOT", EDQUOT }, { "EIO", EIO },       { "EROFS", EROFS },
	{ "EPERM", EPERM },   { "EACCES", EACCES }, { "EBUSY", EBUSY },   { "ENOENT", ENOENT },
	{ "EINVAL", EINVAL }, { "ENOMEM", ENOMEM }, { "EEXIST", EEXIST }, { "EOPNOTSUPP", EOPNOTSUPP },
	{ "EAGAIN", EAGAIN }, { "EMFILE", EMFILE }, { "ENFILE", ENFILE }, { "ENODEV", ENODEV },
	{ "ENOEXEC", ENOEXEC },
};

/* Longest delay a test may ask for: an hour. */
#define DELAY_MAX_MS 3600000

static int parse_one(char *entry, Fault *ret)
{
	char *name, *target, *action, *times;
	uint64_t v;
	bool found = false;

	/* strsep, not strtok: "commit::1:EIO" must not pass as "commit:1:EIO". */
	name = strsep(&entry, ":");
	target = strsep(&entry, ":");
	action = entry;
	if (!name || !target || !action || !*name || !*target || !*action)
		return -EINVAL;

	*ret = (Fault){ .remaining = -1 };
	times = strchr(action, '*');
	if (times) {
		*times++ = '\0';
		if (parse_u64(times, &v) < 0 || v == 0 || v > 1000000)
			return -EINVAL;
		ret->remaining = (int)v;
	}
	for (unsigned s = 0; s < _STEP_MAX && !found; s++)
		if (streq(name, step_names[s])) {
			ret->what = s;
			found = true;
		}
	for (unsigned p = 0; p < _POINT_MAX && !found; p++)
		if (streq(name, point_names[p])) {
			ret->what = p;
			ret->kind = KIND_POINT;
			found = true;
		}
	if (!found && streq(name, "revert")) {
		ret->kind = KIND_REVERT;
		found = true;
	}
	if (!found)
		return -EINVAL;

	if (streq(target, "*"))
		ret->target = 0;
	else if (parse_u64(target, &v) < 0 || v == 0 || v > (ret->kind == KIND_POINT ? 1000000 : 4096))
		return -EINVAL;
	else
		ret->target = (unsigned)v;

	if (streq(action, "veto")) {
		/* An HRESULT means nothing to a system call, nor to a revert's
		 * step, whose results are errnos (provider.h). */
		if (ret->kind != KIND_STEP)
			return -EINVAL;
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

static const char *fault_name(FaultKind kind, unsigned what)
{
	return kind == KIND_STEP ? step_names[what] : kind == KIND_POINT ? point_names[what] : "revert";
}

/* The first matching entry that fails decides; delays add up on the way. */
static int inject(FaultTable *t, FaultKind kind, unsigned what, unsigned target)
{
	static const char *const target_names[] = {
		[KIND_STEP] = "member",
		[KIND_POINT] = "call",
		[KIND_REVERT] = "step",
	};

	for (size_t i = 0; i < t->n; i++) {
		Fault *f = &t->faults[i];
		int left;

		if (f->kind != kind || f->what != what || (f->target != 0 && f->target != target))
			continue;
		/* Count down a limited fault; several workers may race here. */
		left = atomic_load(&f->remaining);
		while (left > 0 && !atomic_compare_exchange_weak(&f->remaining, &left, left - 1))
			;
		if (left == 0)
			continue;
		if (f->delay > 0) {
			/* So that a test knows the stall has begun. */
			log_notice("VSS_FAULTS: delaying %s %s %u by %llu ms", fault_name(kind, what), target_names[kind],
				   target, (unsigned long long)(f->delay / USEC_PER_MSEC));
			sleep_usec(f->delay);
		}
		if (f->result != 0)
			return f->result;
	}
	return 0;
}

int fault_inject(FaultTable *t, ProviderStep step, unsigned member)
{
	return t ? inject(t, KIND_STEP, step, member) : 0;
}

void fault_table_set_global(FaultTable *t)
{
	global = t;
}

int fault_point(FaultPoint p)
{
	unsigned call;
	int r;

	if (!global)
		return 0;
	call = atomic_fetch_add(&global->calls[p], 1) + 1;
	r = inject(global, KIND_POINT, p, call);
	if (r != 0)
		log_notice("VSS_FAULTS: injected %s into %s call %u", strerror(-r), point_names[p], call);
	return r;
}

int fault_revert_step(unsigned n)
{
	int r;

	if (!global)
		return 0;
	r = inject(global, KIND_REVERT, 0, n);
	if (r != 0)
		log_notice("VSS_FAULTS: injected %s into revert step %u", strerror(-r), n);
	return r;
}
