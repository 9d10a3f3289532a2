/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The freeze set's bookkeeping, without freezing anything: which fds it owns,
 * and its marker, written and read back without following what someone may
 * have planted at its name.
 */

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "basic/fd-util.h"
#include "basic/macro.h"
#include "vssd/creation/freeze.h"
#include "tests.h"

static char dir[] = "/tmp/vss-test-freeze-XXXXXX";

static void cleanup(void)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/" FREEZE_MARKER, dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/victim", dir);
	unlink(path);
	rmdir(dir);
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static unsigned open_fds(void)
{
	unsigned n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fd_is_open(fd);
	return n;
}

static int write_victim(const char *text)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/victim", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ_INT((int)strlen(text), (int)write(fd, text, strlen(text)));
	close(fd);
	return 0;
}

static void read_file(int dir_fd, const char *name, char *buf, size_t size)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	ASSERT_TRUE(fd >= 0);
	n = read(fd, buf, size - 1);
	ASSERT_TRUE(n >= 0);
	buf[n] = '\0';
	close(fd);
}

/* A member whose fd cannot be taken (a filesystem gone, EMFILE) fails the
 * set, and freeing it closes only what it took: not the caller's fds, not
 * anything opened before (vssd's catalog, lock, peers' sockets). */
static void test_failure_closes_nothing_foreign(void)
{
	_cleanup_close_ int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int foreign[8], members[3], bad;
	char *paths[3] = { dir, (char *)"/gone", dir };
	FreezeSet *s = NULL;
	unsigned before;

	for (size_t i = 0; i < ELEMENTSOF(foreign); i++) {
		foreign[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		ASSERT_TRUE(foreign[i] >= 0);
	}
	bad = 1000; /* a number that is not an open fd */
	ASSERT_FALSE(fd_is_open(bad));
	members[0] = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	members[1] = bad;
	members[2] = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ASSERT_TRUE(members[0] >= 0 && members[2] >= 0);
	before = open_fds();

	ASSERT_EQ_INT(-EBADF, freeze_set_new(members, paths, 3, dir_fd, &s));
	ASSERT_NULL(s);
	ASSERT_EQ_UINT(before, open_fds());
	for (size_t i = 0; i < ELEMENTSOF(foreign); i++)
		ASSERT_TRUE(fd_is_open(foreign[i]));
	ASSERT_TRUE(fd_is_open(members[0]) && fd_is_open(members[2]));
	ASSERT_TRUE(faccessat(dir_fd, FREEZE_MARKER, F_OK, AT_SYMLINK_NOFOLLOW) < 0);

	for (size_t i = 0; i < ELEMENTSOF(foreign); i++)
		close(foreign[i]);
	close(members[0]);
	close(members[2]);
}

/* The set holds its own duplicates: the caller may close its fds, and
 * freeing the set leaves the caller's open. */
static void test_set_owns_duplicates(void)
{
	_cleanup_close_ int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int members[2] = { -1, open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) };
	char *paths[2] = { NULL, dir };
	FreezeSet *s = NULL;
	unsigned before = open_fds();

	ASSERT_OK(freeze_set_new(members, paths, 2, dir_fd, &s));
	ASSERT_NOT_NULL(s);
	ASSERT_FALSE(freeze_held(s, 0));
	ASSERT_FALSE(freeze_held(s, 1));
	s = freeze_set_free(s);
	ASSERT_EQ_UINT(before, open_fds());
	ASSERT_TRUE(fd_is_open(members[1]));
	close(members[1]);
}

/* A link planted at the marker's name is replaced, never written through;
 * the marker names each held filesystem by device and path. */
static void test_marker_never_follows_a_link(void)
{
	_cleanup_close_ int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int members[1] = { open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) };
	char *paths[1] = { dir };
	char buf[4096], expected[PATH_MAX + 64];
	FreezeSet *s = NULL;
	struct stat st;

	write_victim("keep\n");
	ASSERT_OK(symlinkat("victim", dir_fd, FREEZE_MARKER));
	ASSERT_OK(freeze_set_new(members, paths, 1, dir_fd, &s));
	read_file(dir_fd, "victim", buf, sizeof(buf));
	ASSERT_STREQ("keep\n", buf);
	ASSERT_OK(fstatat(dir_fd, FREEZE_MARKER, &st, AT_SYMLINK_NOFOLLOW));
	ASSERT_TRUE(S_ISREG(st.st_mode));
	ASSERT_EQ_UINT(0600u, (unsigned)(st.st_mode & 07777));
	read_file(dir_fd, FREEZE_MARKER, buf, sizeof(buf));
	ASSERT_OK(fstat(members[0], &st));
	snprintf(expected, sizeof(expected), "%u:%u %s\n", major(st.st_dev), minor(st.st_dev), dir);
	ASSERT_NOT_NULL(strstr(buf, expected));
	s = freeze_set_free(s);
	ASSERT_TRUE(faccessat(dir_fd, FREEZE_MARKER, F_OK, AT_SYMLINK_NOFOLLOW) < 0);
	close(members[0]);
}

/* At start-up a planted link is removed unread; a line whose device is not
 * the path's any more is left alone. */
static void test_recover(void)
{
	_cleanup_close_ int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char line[PATH_MAX + 64];
	int fd;

	write_victim("/tmp\n");
	ASSERT_OK(symlinkat("victim", dir_fd, FREEZE_MARKER));
	ASSERT_EQ_INT(0, freeze_recover(dir_fd));
	ASSERT_TRUE(faccessat(dir_fd, FREEZE_MARKER, F_OK, AT_SYMLINK_NOFOLLOW) < 0);
	ASSERT_TRUE(faccessat(dir_fd, "victim", F_OK, 0) == 0);

	fd = openat(dir_fd, FREEZE_MARKER, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ASSERT_TRUE(fd >= 0);
	snprintf(line, sizeof(line), "# comment\n4095:4095 %s\nnot a line\n", dir);
	ASSERT_EQ_INT((int)strlen(line), (int)write(fd, line, strlen(line)));
	close(fd);
	/* Only root's own marker is read. */
	ASSERT_EQ_INT(geteuid() == 0 ? 2 : 0, freeze_recover(dir_fd));
	ASSERT_TRUE(faccessat(dir_fd, FREEZE_MARKER, F_OK, AT_SYMLINK_NOFOLLOW) < 0);
}

int main(void)
{
	if (!mkdtemp(dir))
		TEST_FAIL("mkdtemp: %s", strerror(errno));
	test_on_failure = cleanup;
	RUN_TEST(test_failure_closes_nothing_foreign);
	RUN_TEST(test_set_owns_duplicates);
	RUN_TEST(test_marker_never_follows_a_link);
	RUN_TEST(test_recover);
	cleanup();
	TEST_SUMMARY();
	return 0;
}
