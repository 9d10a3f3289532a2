/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "basic/fd-util.h"
#include "basic/macro.h"

int safe_close(int fd)
{
	if (fd >= 0)
		close(fd);
	return -1;
}

/* What openat2() does, one component at a time with O_NOFOLLOW, for where
 * it is missing (kernels before 5.6, valgrind). */
static int open_no_symlinks_by_walking(int dirfd, const char *path, int flags, mode_t mode)
{
	_cleanup_free_ char *copy = strdup(path);
	char *p = copy, *next;
	int dir, fd;
	struct stat st;

	if (!copy)
		return -ENOMEM;
	if (!*p)
		return -ENOENT;
	if (*p == '/' || dirfd == AT_FDCWD)
		dir = open(*p == '/' ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	else
		dir = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (dir < 0)
		return -errno;
	for (;;) {
		while (*p == '/')
			p++;
		next = strchr(p, '/');
		if (next)
			*next++ = '\0';
		while (next && *next == '/')
			next++;
		if (!next || !*next)
			break;
		fd = openat(dir, p, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		close(dir);
		if (fd < 0)
			return -errno;
		if (fstat(fd, &st) < 0) {
			int r = -errno;

			close(fd);
			return r;
		}
		if (!S_ISDIR(st.st_mode)) {
			close(fd);
			return S_ISLNK(st.st_mode) ? -ELOOP : -ENOTDIR;
		}
		dir = fd;
		p = next;
	}
	/* The last component: "/" itself, or a name that must not be a link
	 * (O_PATH opens a link itself rather than failing: check). */
	fd = openat(dir, *p ? p : ".", flags | O_NOFOLLOW | O_CLOEXEC, mode);
	close(dir);
	if (fd < 0)
		return -errno;
	if ((flags & O_PATH) && fstat(fd, &st) == 0 && S_ISLNK(st.st_mode)) {
		close(fd);
		return -ELOOP;
	}
	return fd;
}

int open_no_symlinks(int dirfd, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		/* O_TMPFILE holds O_DIRECTORY's bit: test it whole. */
		.mode = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? mode : 0,
		.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));

	if (fd < 0 && errno == ENOSYS)
		return open_no_symlinks_by_walking(dirfd, path, flags, how.mode);
	return fd < 0 ? -errno : (int)fd;
}

int fd_mount_id(int fd, uint64_t *ret_id, bool *ret_is_mount_root)
{
	struct statx sx;

	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &sx) < 0)
		return -errno;
	if (!(sx.stx_mask & STATX_MNT_ID))
		return -EOPNOTSUPP;
	if (ret_id)
		*ret_id = sx.stx_mnt_id;
	if (ret_is_mount_root)
		*ret_is_mount_root = (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
				     (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
	return 0;
}

int fd_get_path(int fd, char **ret)
{
	char proc[64], buf[4096];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, buf, sizeof(buf));
	if (n < 0)
		return -errno;
	if ((size_t)n >= sizeof(buf))
		return -ENAMETOOLONG;
	buf[n] = '\0';
	/* Not a path anyone can reach any more (unlinked, or another mount
	 * namespace's). */
	if (buf[0] != '/')
		return -ENOENT;
	*ret = strdup(buf);
	return *ret ? 0 : -ENOMEM;
}

int fd_reopen(int fd, int flags)
{
	char proc[64];
	int r;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	r = open(proc, flags | O_CLOEXEC);
	return r < 0 ? -errno : r;
}

bool fd_is_private_root_dir(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == 0 && (st.st_mode & 0077) == 0;
}
