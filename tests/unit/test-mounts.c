/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "providers/mounts.h"
#include "providers/provider.h"
#include "tests.h"

/* A revert's plan gives back exactly what was put in, whatever the path
 * holds, and a key set again replaces its value. */
static void test_plan_round_trip(void)
{
	char plan[PROVIDER_REVERT_PLAN_MAX] = "";
	static const char *const values[] = { "/mnt/a b", "line\nbreak", "back\\slash\\n", "", "k=v=w" };
	char *v = NULL;

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char key[16];

		snprintf(key, sizeof(key), "k.%zu", i);
		ASSERT_OK(plan_set(plan, sizeof(plan), key, values[i]));
	}
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char key[16];

		snprintf(key, sizeof(key), "k.%zu", i);
		ASSERT_OK(plan_get(plan, key, &v));
		ASSERT_STREQ(values[i], v);
		free(v);
	}
	ASSERT_OK(plan_set(plan, sizeof(plan), "k.1", "again"));
	ASSERT_OK(plan_get(plan, "k.1", &v));
	ASSERT_STREQ("again", v);
	free(v);
	ASSERT_OK(plan_get(plan, "k.2", &v));
	ASSERT_STREQ("back\\slash\\n", v);
	free(v);
	/* A key is not the end of another. */
	ASSERT_ERRNO(-ENOENT, plan_get(plan, "1", &v));
	ASSERT_ERRNO(-ENOENT, plan_get(plan, "k", &v));
	ASSERT_ERRNO(-EINVAL, plan_set(plan, sizeof(plan), "a=b", "x"));
	ASSERT_ERRNO(-EINVAL, plan_set(plan, sizeof(plan), "A", "x"));
	ASSERT_ERRNO(-EINVAL, plan_set(plan, sizeof(plan), "a\nb", "x"));
}

/* What does not fit is refused, the plan unchanged. */
static void test_plan_full(void)
{
	char plan[32] = "", before[32];
	char *v = NULL;

	ASSERT_OK(plan_set(plan, sizeof(plan), "a", "0123456789"));
	memcpy(before, plan, sizeof(plan));
	ASSERT_ERRNO(-ENOBUFS, plan_set(plan, sizeof(plan), "b", "0123456789abcdef"));
	ASSERT_STREQ(before, plan);
	/* Replacing frees the old value's room first. */
	ASSERT_OK(plan_set(plan, sizeof(plan), "a", "0123456789abcdefghijklmn"));
	ASSERT_OK(plan_get(plan, "a", &v));
	ASSERT_STREQ("0123456789abcdefghijklmn", v);
	free(v);
}

int main(void)
{
	RUN_TEST(test_plan_round_trip);
	RUN_TEST(test_plan_full);
	TEST_SUMMARY();
	return 0;
}
