/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * File descriptors as anchors: vssd resolves a path a client gave once, and
 * from then on acts on what it opened, never on the name again (a name can
 * be made to lead elsewhere between a check and an action).
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

static inline void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define _cleanup_close_ __attribute__((cleanup(closep)))

/* Close fd if open; returns -1, for "fd = safe_close(fd)". */
int safe_close(int fd);

/* Hand an owned fd over, leaving the cleanup variable at -1. */
#define TAKE_FD(fd)                      \
	({                               \
		int _fd_ = (fd);         \
		(fd) = -1;               \
		_fd_;                    \
	})

/* openat2() with RESOLVE_NO_SYMLINKS (and no magic links): a symbolic link
 * anywhere in path fails with -ELOOP. Returns the fd or a negative errno. */
int open_no_symlinks(int dirfd, const char *path, int flags, mode_t mode);

/* The mount id of what fd refers to (statx STATX_MNT_ID, as in
 * /proc/self/mountinfo), and whether it is the root of its mount. */
int fd_mount_id(int fd, uint64_t *ret_id, bool *ret_is_mount_root);

/* The path the kernel has for fd (readlink of /proc/self/fd/N). */
int fd_get_path(int fd, char **ret);

/* Open what fd (possibly O_PATH) refers to again, with flags. */
int fd_reopen(int fd, int flags);

/* Whether fd is a directory owned by root, with no access for group or
 * others (mode 0700, or stricter): a directory only root can change. */
bool fd_is_private_root_dir(int fd);
