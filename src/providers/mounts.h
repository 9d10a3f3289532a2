/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What providers need to know of mounts and loop devices, read through
 * libmount (the kernel's /proc/self/mountinfo), sysfs and the loop ioctls.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

typedef struct MountEntry {
	char *target;
	char *source;
	char *fstype;
	uint64_t id;    /* the mount id, as statx STATX_MNT_ID gives it */
} MountEntry;

void mount_entry_clear(MountEntry *e);

/* The mount holding path (the visible one, when mounts are stacked). */
int mount_lookup(const char *path, MountEntry *ret);
/* Where source (a device) is mounted; -ENOENT when it is not. */
int mount_find_source(const char *source, char **ret_target);
/* Whether fd is on one of this process's mounts, reachable by the name the
 * kernel has for it: not in another mount namespace (through /proc/PID/root),
 * not on a detached mount. */
bool mount_is_own(int fd);
/* Every mount point, the last mounted first; NULL-terminated. */
int mount_targets(char ***ret);
/* Whether something is mounted exactly at path. */
bool mount_is_target(const char *path);

/* The file behind a loop device ("/dev/loop3"); -ENODEV when dev is not a
 * loop device or has no file. */
int loop_backing_file(const char *dev, char **ret);
/* The loop devices ("/dev/loopN") reading the file st describes (by its
 * inode: under any of its names), NULL-terminated. */
int loop_devices_of(const struct stat *st, char ***ret);
/* The loop device ("/dev/loopN") whose block device is dev; -ENODEV when
 * dev is not a loop device. */
int loop_of_device(dev_t dev, char **ret);
/* Whether loop device dev is backed by the file st describes (the loop
 * driver's own record, not a name): 1 or 0, and the device's number. */
int loop_backed_by(const char *dev, const struct stat *st, dev_t *ret_rdev);
/* The device of the filesystem holding the file behind dev, a loop device
 * (the loop driver's own record): what dev's writes go to. -ENODEV when dev
 * is not a loop device. */
int loop_backing_device(dev_t dev, dev_t *ret);
/* Whether the filesystem on device dev lies on the one on below: it is
 * that one, or its loop device reads a file on it (or on a filesystem that
 * does, and so on). Frozen, below stalls dev's writes as well. Followed by
 * device numbers and the loop driver's records, never by names, which a
 * bind mount or a link multiplies. */
bool device_rests_on(dev_t dev, dev_t below);
/* Attach the file open as file_fd (read-write) to a free loop device that
 * goes away with its last user (autoclear). The device stays open in
 * *ret_fd: close it once it is mounted, or it goes at once. */
int loop_attach(int file_fd, const char *name, char **ret_dev, int *ret_fd);
/* The filesystem type libblkid finds on the device or in the file open as
 * fd ("ext4", "xfs"), or NULL. */
char *fs_probe_type(int fd);
/* Mount the filesystem of type fstype on source (a block device) read-only,
 * nosuid, nodev on the directory dir_fd (an O_PATH fd), with the new mount
 * API; an XFS gets nouuid (a snapshot has its origin's UUID). no_recovery:
 * its journal is not replayed (XFS norecovery, ext noload), for a snapshot
 * on a read-only device cut while its filesystem was frozen, whose journal
 * holds nothing not already in place. */
int mount_readonly_at(const char *fstype, const char *source, bool no_recovery, int dir_fd);
