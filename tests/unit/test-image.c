/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "providers/registry.h"
#include "tests.h"

/*
 * The space of image snapshots whose files have no extents at all (sparse or
 * empty): none used, none allocated (found by scan-build: the empty extent
 * list went to qsort() as NULL, which UBSan reports).
 */
static void test_space_of_files_without_extents(void)
{
	char dir[] = "/var/tmp/vss-test-image-XXXXXX", origin[sizeof(dir) + 16], clone[sizeof(dir) + 16];
	char *clones[] = { clone };
	int64_t used = -2, allocated = -2;
	int fd, r;

	ASSERT_NOT_NULL(mkdtemp(dir));
	snprintf(origin, sizeof(origin), "%s/origin", dir);
	snprintf(clone, sizeof(clone), "%s/clone", dir);
	fd = open(origin, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ_INT(0, ftruncate(fd, 1 << 20));
	close(fd);
	fd = open(clone, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ASSERT_TRUE(fd >= 0);
	close(fd);

	r = image_provider.space(clones, 1, origin, &used, &allocated);
	unlink(origin);
	unlink(clone);
	rmdir(dir);
	/* Where FIEMAP is missing (tmpfs) there is nothing to check. */
	if (r == -EOPNOTSUPP)
		return;
	ASSERT_OK(r);
	ASSERT_EQ_INT(0, used);
}

int main(void)
{
	RUN_TEST(test_space_of_files_without_extents);
	TEST_SUMMARY();
	return 0;
}
