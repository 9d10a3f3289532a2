/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <time.h>

#include "basic/hresult-table.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/util.h"
#include "providers/fault.h"
#include "providers/provider.h"
#include "tests.h"

static const char *const step_names[_STEP_MAX] = {
	"begin_prepare", "end_prepare", "pre_commit", "hold", "commit", "release",
	"post_commit", "pre_final_commit", "post_final_commit", "abort", "delete",
};

static FaultTable *parse_ok(const char *spec)
{
	FaultTable *t = NULL;

	if (fault_table_parse(spec, &t) < 0)
		TEST_FAIL("fault_table_parse(\"%s\") refused a valid spec", spec);
	test_checks++;
	ASSERT_NOT_NULL(t);
	return t;
}

static void test_step_names(void)
{
	for (ProviderStep s = 0; s < _STEP_MAX; s++)
		ASSERT_STREQ(step_names[s], provider_step_name(s));
	ASSERT_STREQ("?", provider_step_name(_STEP_MAX));
}

static void test_no_table(void)
{
	/* Unset VSS_FAULTS: nothing is ever injected. */
	for (ProviderStep s = 0; s < _STEP_MAX; s++)
		ASSERT_EQ_INT(0, fault_inject(NULL, s, 1));
	ASSERT_NULL(fault_table_free(NULL));
}

static void test_every_step_and_action(void)
{
	static const struct {
		const char *name;
		int value;
	} errnos[] = {
		/* The ones fault.h names, then the other common ones. */
		{ "ENOSPC", ENOSPC }, { "EDQUOT", EDQUOT }, { "EIO", EIO },       { "EROFS", EROFS },
		{ "EPERM", EPERM },   { "EACCES", EACCES }, { "EBUSY", EBUSY },   { "ENOENT", ENOENT },
		{ "EINVAL", EINVAL }, { "ENOMEM", ENOMEM }, { "EEXIST", EEXIST }, { "EOPNOTSUPP", EOPNOTSUPP },
	};

	for (ProviderStep s = 0; s < _STEP_MAX; s++) {
		char spec[64];
		FaultTable *t;

		snprintf(spec, sizeof(spec), "%s:2:veto", step_names[s]);
		t = parse_ok(spec);
		/* Only that step, only that member. */
		for (ProviderStep o = 0; o < _STEP_MAX; o++) {
			ASSERT_HR(o == s ? VSS_E_PROVIDER_VETO : 0, fault_inject(t, o, 2));
			ASSERT_EQ_INT(0, fault_inject(t, o, 1));
			ASSERT_EQ_INT(0, fault_inject(t, o, 3));
		}
		/* A veto is an HRESULT, not an errno, to the provider layer. */
		ASSERT_TRUE(provider_result_is_hr(fault_inject(t, s, 2)));
		fault_table_free(t);
	}

	for (size_t i = 0; i < ELEMENTSOF(errnos); i++) {
		char spec[64];
		FaultTable *t;
		int r;

		snprintf(spec, sizeof(spec), "commit:1:%s", errnos[i].name);
		t = parse_ok(spec);
		r = fault_inject(t, STEP_COMMIT, 1);
		ASSERT_EQ_INT(-errnos[i].value, r);
		ASSERT_FALSE(provider_result_is_hr(r));
		fault_table_free(t);
	}
}

static void test_members(void)
{
	FaultTable *t;

	/* '*' is every member, including 0, the member-less delete. */
	t = parse_ok("hold:*:EIO");
	for (unsigned m = 0; m < 70; m++)
		ASSERT_EQ_INT(-EIO, fault_inject(t, STEP_HOLD, m));
	ASSERT_EQ_INT(0, fault_inject(t, STEP_COMMIT, 1));
	fault_table_free(t);

	/* provider_invoke_delete passes member 0: only '*' reaches it. */
	t = parse_ok("delete:1:EBUSY");
	ASSERT_EQ_INT(0, fault_inject(t, STEP_DELETE, 0));
	ASSERT_EQ_INT(-EBUSY, fault_inject(t, STEP_DELETE, 1));
	fault_table_free(t);

	/* Several entries; the first that matches decides. */
	t = parse_ok("pre_commit:1:ENOSPC,pre_commit:*:EIO,commit:3:EROFS,pre_commit:2:veto");
	ASSERT_EQ_INT(-ENOSPC, fault_inject(t, STEP_PRE_COMMIT, 1));
	ASSERT_EQ_INT(-EIO, fault_inject(t, STEP_PRE_COMMIT, 2));
	ASSERT_EQ_INT(-EIO, fault_inject(t, STEP_PRE_COMMIT, 9));
	ASSERT_EQ_INT(-EROFS, fault_inject(t, STEP_COMMIT, 3));
	ASSERT_EQ_INT(0, fault_inject(t, STEP_COMMIT, 1));
	fault_table_free(t);

	t = parse_ok("abort:4096:EIO");
	ASSERT_EQ_INT(-EIO, fault_inject(t, STEP_ABORT, 4096));
	ASSERT_EQ_INT(0, fault_inject(t, STEP_ABORT, 4095));
	fault_table_free(t);

	/* An empty specification injects nothing. */
	t = parse_ok("");
	for (ProviderStep s = 0; s < _STEP_MAX; s++)
		ASSERT_EQ_INT(0, fault_inject(t, s, 1));
	fault_table_free(t);
}

static usec_t elapsed_since(usec_t start)
{
	return now_usec(CLOCK_MONOTONIC) - start;
}

static void test_delay(void)
{
	FaultTable *t;
	usec_t start;

	/* A delay alone sleeps, then lets the step run. */
	t = parse_ok("hold:1:delay=30");
	start = now_usec(CLOCK_MONOTONIC);
	ASSERT_EQ_INT(0, fault_inject(t, STEP_HOLD, 1));
	ASSERT_TRUE(elapsed_since(start) >= 30 * USEC_PER_MSEC);
	/* Other members are not delayed; only the lower bound is checked,
	 * since an upper one would make the test depend on machine load. */
	ASSERT_EQ_INT(0, fault_inject(t, STEP_HOLD, 2));
	fault_table_free(t);

	/* A delay and then a failure of the same step: both happen. */
	t = parse_ok("commit:*:delay=20,commit:1:EIO");
	start = now_usec(CLOCK_MONOTONIC);
	ASSERT_EQ_INT(-EIO, fault_inject(t, STEP_COMMIT, 1));
	ASSERT_TRUE(elapsed_since(start) >= 20 * USEC_PER_MSEC);
	fault_table_free(t);

	t = parse_ok("commit:1:delay=0");
	ASSERT_EQ_INT(0, fault_inject(t, STEP_COMMIT, 1));
	fault_table_free(t);
}

static void test_rejected(void)
{
	static const char *const bad[] = {
		"commit",
		"commit:1",
		"commit:1:",
		"prepare:1:EIO",              /* no such step */
		"COMMIT:1:EIO",
		"commit:0:EIO",               /* members are 1-based */
		"commit:-1:EIO",
		"commit:x:EIO",
		"commit:+1:EIO",
		"commit:1:EFOO",              /* no such errno */
		"commit:1:5",
		"commit:1:vetoes",
		"commit:1:delay=",
		"commit:1:delay=abc",
		"commit:1:delay=-5",
		"commit:1:EIO:extra",
		"commit:1:EIO,bogus",         /* one bad entry spoils the lot */
		"commit::1:EIO",              /* empty fields are not skipped */
		"::commit:1:EIO",
		"commit:1:EIO,,commit:2:EIO",
		"commit:1:delay= -1",         /* no blanks or signs in numbers */
		"commit: 1:EIO",
		"commit:1:delay=3600001",     /* at most an hour */
	};

	static int sentinel;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		FaultTable *t = (FaultTable *)&sentinel;

		if (fault_table_parse(bad[i], &t) != -EINVAL)
			TEST_FAIL("fault_table_parse(\"%s\") did not refuse it", bad[i]);
		test_checks++;
		/* Nothing is handed out on failure. */
		ASSERT_TRUE(t == (FaultTable *)&sentinel);
	}
}

/* provider.h: ENOSPC and EDQUOT are "insufficient storage", a provider's
 * permitted HRESULT passes, anything else is an unexpected provider error. */
static void test_result_to_hr(void)
{
	/* The outcomes backup.h lists for DoSnapshotSet that a provider itself
	 * causes: they must reach the requestor unchanged. */
	static const vss_hr kept[] = {
		VSS_E_INSUFFICIENT_STORAGE, VSS_E_PROVIDER_VETO, VSS_E_FLUSH_WRITES_TIMEOUT,
		VSS_E_HOLD_WRITES_TIMEOUT, VSS_E_REBOOT_REQUIRED,
	};
	/* Codes that belong to vssd, writers or COM in general: a provider
	 * returning one has misbehaved. */
	static const vss_hr not_a_providers[] = {
		VSS_E_UNEXPECTED, VSS_E_SNAPSHOT_SET_IN_PROGRESS, VSS_E_WRITER_NOT_RESPONDING,
		VSS_E_WRITERERROR_TIMEOUT, VSS_E_PROVIDER_ALREADY_REGISTERED, VSS_E_CORRUPT_XML_DOCUMENT,
		E_FAIL, E_UNEXPECTED, E_NOTIMPL, VSS_HR_(0x80000000), VSS_HR_(0x8004FFFF),
	};
	static const int other_errnos[] = {
		EIO, EROFS, EPERM, EACCES, EBUSY, ENOENT, EINVAL, EEXIST, EOPNOTSUPP, EAGAIN, 4095,
	};
	size_t n;
	const struct vss_hr_entry *table = vss_hr_table(&n);

	ASSERT_HR(S_OK, provider_result_to_hr(0));
	ASSERT_HR(S_OK, provider_result_to_hr(1));
	ASSERT_HR(S_OK, provider_result_to_hr(INT_MAX));
	ASSERT_HR(S_OK, provider_result_to_hr(S_FALSE));

	ASSERT_HR(VSS_E_INSUFFICIENT_STORAGE, provider_result_to_hr(-ENOSPC));
	ASSERT_HR(VSS_E_INSUFFICIENT_STORAGE, provider_result_to_hr(-EDQUOT));
	for (size_t i = 0; i < ELEMENTSOF(other_errnos); i++)
		ASSERT_HR(VSS_E_UNEXPECTED_PROVIDER_ERROR, provider_result_to_hr(-other_errnos[i]));
	ASSERT_HR(E_OUTOFMEMORY, provider_result_to_hr(-ENOMEM));

	for (size_t i = 0; i < ELEMENTSOF(kept); i++)
		ASSERT_HR(kept[i], provider_result_to_hr(kept[i]));
	for (size_t i = 0; i < ELEMENTSOF(not_a_providers); i++)
		ASSERT_HR(VSS_E_UNEXPECTED_PROVIDER_ERROR, provider_result_to_hr(not_a_providers[i]));

	/* Whatever the permitted list holds, a failure never becomes a
	 * success, nor a code other than itself or the catch-all. */
	for (size_t i = 0; i < n; i++) {
		vss_hr hr = table[i].hr, mapped;

		if (VSS_SUCCEEDED(hr))
			continue;
		ASSERT_TRUE(provider_result_is_hr(hr));
		mapped = provider_result_to_hr(hr);
		ASSERT_TRUE(mapped == hr || mapped == VSS_E_UNEXPECTED_PROVIDER_ERROR);
	}

	/* The two ranges do not overlap. */
	ASSERT_FALSE(provider_result_is_hr(-1));
	ASSERT_FALSE(provider_result_is_hr(-4095));
	ASSERT_FALSE(provider_result_is_hr(0));
	ASSERT_TRUE(provider_result_is_hr(INT32_MIN));
	ASSERT_TRUE(provider_result_is_hr(INT32_MIN / 2 - 1));
}

static void test_result_string(void)
{
	char buf[128];

	ASSERT_STREQ("success", provider_result_string(0, buf, sizeof(buf)));
	ASSERT_STREQ("VSS_E_PROVIDER_VETO (0x80042306)",
		     provider_result_string(VSS_E_PROVIDER_VETO, buf, sizeof(buf)));
	ASSERT_STREQ(strerror(ENOSPC), provider_result_string(-ENOSPC, buf, sizeof(buf)));
	/* Truncated, never overrun. */
	ASSERT_STREQ("VSS_E", provider_result_string(VSS_E_PROVIDER_VETO, buf, 6));
}

/* The seam itself: a fault replaces the step, and a missing optional step
 * succeeds. */
static unsigned calls;

static int counting_step(ProviderMember *m)
{
	calls++;
	return 7;
}

static int counting_end_prepare(ProviderMember **members, size_t n)
{
	calls += (unsigned)n;
	return 0;
}

static int fake_delete(const char *path, const char *data)
{
	calls++;
	return strcmp(path, "/snap") == 0 ? 0 : -ENOENT;
}

static void test_invoke(void)
{
	static const provider_ops ops = {
		.version = PROVIDER_OPS_VERSION,
		.name = "fake",
		.begin_prepare = counting_step,
		.end_prepare = counting_end_prepare,
		.commit = counting_step,
		.abort = counting_step,
		.delete_snapshot = fake_delete,
	};
	ProviderMember m1 = { .ops = &ops, .index = 1 }, m2 = { .ops = &ops, .index = 2 };
	ProviderMember *both[] = { &m1, &m2 }, *second_first[] = { &m2, &m1 };
	FaultTable *t = parse_ok("commit:2:ENOSPC,end_prepare:2:veto,hold:*:EIO,delete:*:EROFS");

	calls = 0;
	ASSERT_EQ_INT(7, provider_invoke(NULL, STEP_COMMIT, &m1));
	ASSERT_EQ_UINT(1, calls);
	ASSERT_EQ_INT(7, provider_invoke(t, STEP_COMMIT, &m1));
	ASSERT_EQ_UINT(2, calls);
	/* The fault stands in for the provider, which is never called. */
	ASSERT_EQ_INT(-ENOSPC, provider_invoke(t, STEP_COMMIT, &m2));
	ASSERT_EQ_UINT(2, calls);
	/* Optional steps the provider lacks succeed... */
	ASSERT_EQ_INT(0, provider_invoke(NULL, STEP_RELEASE, &m1));
	ASSERT_EQ_INT(0, provider_invoke(NULL, STEP_POST_COMMIT, &m1));
	/* ...unless a fault is injected there. */
	ASSERT_EQ_INT(-EIO, provider_invoke(t, STEP_HOLD, &m1));
	ASSERT_EQ_UINT(2, calls);

	/* end_prepare: once per provider, faults match its first member. */
	ASSERT_EQ_INT(0, provider_invoke_end_prepare(t, both, 0));
	ASSERT_EQ_UINT(2, calls);
	ASSERT_EQ_INT(0, provider_invoke_end_prepare(t, both, 2));
	ASSERT_EQ_UINT(4, calls);
	ASSERT_HR(VSS_E_PROVIDER_VETO, provider_invoke_end_prepare(t, second_first, 2));
	ASSERT_EQ_UINT(4, calls);

	ASSERT_EQ_INT(0, provider_invoke_delete(NULL, &ops, "/snap", NULL));
	ASSERT_EQ_INT(-ENOENT, provider_invoke_delete(NULL, &ops, "/other", NULL));
	ASSERT_EQ_UINT(6, calls);
	ASSERT_EQ_INT(-EROFS, provider_invoke_delete(t, &ops, "/snap", NULL));
	ASSERT_EQ_UINT(6, calls);
	fault_table_free(t);

	/* A delete belongs to no member of a set: a numbered fault never
	 * reaches it, so the provider runs. */
	t = parse_ok("delete:1:EROFS");
	ASSERT_EQ_INT(0, provider_invoke_delete(t, &ops, "/snap", NULL));
	ASSERT_EQ_UINT(7, calls);
	fault_table_free(t);
}

static void test_points(void)
{
	static const char *const names[_POINT_MAX] = {
		"freeze", "thaw", "clone", "sync", "snapshot", "remove",
		"mount", "umount", "loop", "catalog", "fork", "exec", "space",
	};
	FaultTable *t;

	for (FaultPoint p = 0; p < _POINT_MAX; p++)
		ASSERT_STREQ(names[p], fault_point_name(p));
	ASSERT_STREQ("?", fault_point_name(_POINT_MAX));

	/* No table: nothing is injected, nothing is counted. */
	fault_table_set_global(NULL);
	for (FaultPoint p = 0; p < _POINT_MAX; p++)
		ASSERT_EQ_INT(0, fault_point(p));

	/* The Nth call of a point, counted per point; steps are not points. */
	t = parse_ok("clone:2:EIO,commit:*:ENOSPC,catalog:*:ENOSPC*2,fork:3:EAGAIN");
	fault_table_set_global(t);
	ASSERT_EQ_INT(0, fault_point(POINT_CLONE));
	ASSERT_EQ_INT(-EIO, fault_point(POINT_CLONE));
	ASSERT_EQ_INT(0, fault_point(POINT_CLONE));
	ASSERT_EQ_INT(0, fault_point(POINT_FREEZE));
	ASSERT_EQ_INT(-ENOSPC, fault_point(POINT_CATALOG));
	ASSERT_EQ_INT(-ENOSPC, fault_point(POINT_CATALOG));
	ASSERT_EQ_INT(0, fault_point(POINT_CATALOG));
	ASSERT_EQ_INT(0, fault_point(POINT_FORK));
	ASSERT_EQ_INT(0, fault_point(POINT_FORK));
	ASSERT_EQ_INT(-EAGAIN, fault_point(POINT_FORK));
	/* Steps and points are matched apart: the step entry is for steps
	 * only, the point entries reach no step. */
	ASSERT_EQ_INT(-ENOSPC, fault_inject(t, STEP_COMMIT, 2));
	for (ProviderStep s = 0; s < _STEP_MAX; s++)
		if (s != STEP_COMMIT)
			ASSERT_EQ_INT(0, fault_inject(t, s, 2));
	fault_table_set_global(NULL);
	fault_table_free(t);

	/* A delay on a point, then the call goes on. */
	t = parse_ok("sync:*:delay=20");
	fault_table_set_global(t);
	{
		usec_t start = now_usec(CLOCK_MONOTONIC);

		ASSERT_EQ_INT(0, fault_point(POINT_SYNC));
		ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) - start >= 20 * USEC_PER_MSEC);
	}
	fault_table_set_global(NULL);
	fault_table_free(t);
}

static void test_points_rejected(void)
{
	static const char *const bad[] = {
		"clone:1:veto",       /* an HRESULT means nothing to a system call */
		"clone:0:EIO",        /* calls are 1-based */
		"clone:1000001:EIO",
		"ficlone:1:EIO",      /* no such point */
		"clone:1:EFOO",
	};

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		FaultTable *t = NULL;

		if (fault_table_parse(bad[i], &t) != -EINVAL)
			TEST_FAIL("fault_table_parse(\"%s\") did not refuse it", bad[i]);
		test_checks++;
	}
}

/* revert:N reaches step N of a revert and nothing else. */
static void test_revert_steps(void)
{
	static const char *const bad[] = {
		"revert:1:veto", /* a revert's results are errnos */
		"revert:0:EIO",  /* steps are 1-based */
		"revert::EIO",
		"revert:1:",
	};
	FaultTable *t;

	fault_table_set_global(NULL);
	ASSERT_EQ_INT(0, fault_revert_step(1));

	t = parse_ok("revert:2:EIO,revert:4:ENOSPC*1,commit:*:EBUSY,sync:*:EROFS");
	fault_table_set_global(t);
	ASSERT_EQ_INT(0, fault_revert_step(1));
	ASSERT_EQ_INT(-EIO, fault_revert_step(2));
	ASSERT_EQ_INT(-EIO, fault_revert_step(2));
	ASSERT_EQ_INT(0, fault_revert_step(3));
	ASSERT_EQ_INT(-ENOSPC, fault_revert_step(4));
	ASSERT_EQ_INT(0, fault_revert_step(4));
	/* Not a member's step, nor a point. */
	ASSERT_EQ_INT(0, fault_inject(t, STEP_BEGIN_PREPARE, 2));
	ASSERT_EQ_INT(-EROFS, fault_point(POINT_SYNC));
	fault_table_set_global(NULL);
	fault_table_free(t);

	t = parse_ok("revert:*:delay=20");
	fault_table_set_global(t);
	{
		usec_t start = now_usec(CLOCK_MONOTONIC);

		ASSERT_EQ_INT(0, fault_revert_step(5));
		ASSERT_TRUE(now_usec(CLOCK_MONOTONIC) - start >= 20 * USEC_PER_MSEC);
	}
	fault_table_set_global(NULL);
	fault_table_free(t);

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		t = NULL;
		if (fault_table_parse(bad[i], &t) != -EINVAL)
			TEST_FAIL("fault_table_parse(\"%s\") did not refuse it", bad[i]);
		test_checks++;
	}
}

int main(void)
{
	/* Refused specifications are logged; expected here. */
	log_set_max_level(LOG_CRIT);

	RUN_TEST(test_step_names);
	RUN_TEST(test_no_table);
	RUN_TEST(test_every_step_and_action);
	RUN_TEST(test_members);
	RUN_TEST(test_delay);
	RUN_TEST(test_rejected);
	RUN_TEST(test_result_to_hr);
	RUN_TEST(test_result_string);
	RUN_TEST(test_invoke);
	RUN_TEST(test_points);
	RUN_TEST(test_points_rejected);
	RUN_TEST(test_revert_steps);
	TEST_SUMMARY();
	return 0;
}
