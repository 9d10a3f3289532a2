/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/log.h"
#include "vssd/freeze.h"
#include "tests.h"

/*
 * A freeze set that cannot open one of its members closes what it opened
 * and nothing else (found by scan-build: freeze_set_free() closed the slots
 * after the failed one, uninitialised; vssd could close its catalog, its
 * lock or a peer's socket). Nothing is frozen here: the set fails before.
 */
static void test_failed_open_closes_only_its_own(void)
{
	enum { N = 40 };
	char *paths[N] = { (char *)"/", (char *)"/nonexistent/vss-test-freeze" };
	char dir[] = "/tmp/vss-test-freeze-XXXXXX", marker[sizeof(dir) + 16];
	FreezeSet *s = NULL;
	int fds[2], *garbage;

	ASSERT_EQ_INT(0, pipe2(fds, O_CLOEXEC));
	/* The slots freeze_set_new() leaves unset get what this block held,
	 * as malloc() hands a freed block of the same size out again. */
	garbage = malloc(sizeof(int) * N);
	ASSERT_NOT_NULL(garbage);
	for (size_t i = 0; i < N; i++)
		garbage[i] = fds[0];
	free(garbage);

	ASSERT_NOT_NULL(mkdtemp(dir));
	snprintf(marker, sizeof(marker), "%s/marker", dir);
	ASSERT_TRUE(freeze_set_new(paths, N, marker, &s) < 0);
	ASSERT_NULL(s);
	ASSERT_TRUE(fcntl(fds[0], F_GETFD) >= 0);
	ASSERT_TRUE(fcntl(fds[1], F_GETFD) >= 0);
	ASSERT_EQ_INT(-1, access(marker, F_OK));
	close(fds[0]);
	close(fds[1]);
	ASSERT_EQ_INT(0, rmdir(dir));
}

int main(void)
{
	log_set_max_level(LOG_CRIT);
	RUN_TEST(test_failed_open_closes_only_its_own);
	TEST_SUMMARY();
	return 0;
}
