/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * open_no_symlinks(): a link anywhere in the path fails with ELOOP, whatever
 * resolves it. Under valgrind, which lacks openat2(), this runs the fallback
 * that walks one component at a time, so both give the same answers.
 */

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "basic/fd-util.h"
#include "tests.h"

static char dir[] = "/tmp/vss-test-fd-util-XXXXXX";

static void cleanup(void)
{
	static const char *const names[] = { "d/f", "d/link-to-f", "link-to-d", "d/e", "d", NULL };
	char path[PATH_MAX];

	for (size_t i = 0; names[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (unlink(path) < 0)
			rmdir(path);
	}
	rmdir(dir);
}

static int open_in(const char *rel, int flags)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return open_no_symlinks(AT_FDCWD, path, flags, 0600);
}

static void test_links_refused(void)
{
	int dfd, fd;

	/* Plain names open, absolute or relative to a directory fd. */
	fd = open_in("d/f", O_RDONLY);
	ASSERT_TRUE(fd >= 0);
	close(fd);
	fd = open_in("d", O_PATH | O_DIRECTORY);
	ASSERT_TRUE(fd >= 0);
	dfd = fd;
	fd = open_no_symlinks(dfd, "f", O_RDONLY, 0);
	ASSERT_TRUE(fd >= 0);
	close(fd);
	fd = open_no_symlinks(dfd, "e/../f", O_RDONLY, 0);
	ASSERT_TRUE(fd >= 0);
	close(fd);
	/* A new file is made where asked. */
	fd = open_no_symlinks(dfd, "new", O_WRONLY | O_CREAT | O_EXCL, 0600);
	ASSERT_TRUE(fd >= 0);
	close(fd);
	ASSERT_EQ_INT(0, unlinkat(dfd, "new", 0));

	/* A link at the end, in the middle, or opened as O_PATH: ELOOP. */
	ASSERT_ERRNO(-ELOOP, open_in("d/link-to-f", O_RDONLY));
	ASSERT_ERRNO(-ELOOP, open_in("d/link-to-f", O_PATH));
	ASSERT_ERRNO(-ELOOP, open_in("link-to-d/f", O_RDONLY));
	ASSERT_ERRNO(-ELOOP, open_no_symlinks(dfd, "link-to-f", O_RDONLY, 0));
	/* A file where a directory is needed, and a name that is not there. */
	ASSERT_ERRNO(-ENOTDIR, open_in("d/f/x", O_RDONLY));
	ASSERT_ERRNO(-ENOENT, open_in("d/none", O_RDONLY));
	ASSERT_ERRNO(-ENOENT, open_no_symlinks(dfd, "", O_RDONLY, 0));
	close(dfd);
}

int main(void)
{
	char path[PATH_MAX];
	int fd;

	ASSERT_NOT_NULL(mkdtemp(dir));
	test_on_failure = cleanup;
	snprintf(path, sizeof(path), "%s/d", dir);
	ASSERT_EQ_INT(0, mkdir(path, 0700));
	snprintf(path, sizeof(path), "%s/d/e", dir);
	ASSERT_EQ_INT(0, mkdir(path, 0700));
	snprintf(path, sizeof(path), "%s/d/f", dir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ASSERT_TRUE(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/d/link-to-f", dir);
	ASSERT_EQ_INT(0, symlink("f", path));
	snprintf(path, sizeof(path), "%s/link-to-d", dir);
	ASSERT_EQ_INT(0, symlink("d", path));

	RUN_TEST(test_links_refused);
	cleanup();
	TEST_SUMMARY();
	return 0;
}
