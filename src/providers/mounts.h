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
/* The same with the loop device's flags (LO_FLAGS_*), offset and size limit
 * given, on the device prefer ("/dev/loopN") when it is free, else on any
 * free one: a volume's loop device made again as it was. Without
 * LO_FLAGS_AUTOCLEAR the device stays bound after *ret_fd is closed. */
int loop_attach_config(int file_fd, const char *name, const char *prefer, uint32_t flags, uint64_t offset,
                       uint64_t sizelimit, char **ret_dev, int *ret_fd);
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

/*
 * A revert's plan (ProviderRevert.plan, provider.h): lines of "key=value",
 * each value escaped ('\\' and newline) so that any path fits, written by
 * revert_plan and read back by every revert call, also after vssd died.
 */
/* Set key to value (replacing it): -ENOBUFS when the plan would not fit in
 * size bytes, the plan then unchanged; -EINVAL for a key that is not
 * [a-z0-9._-]. */
int plan_set(char *plan, size_t size, const char *key, const char *value);
/* The value of key, allocated; -ENOENT when it is not in the plan. */
int plan_get(const char *plan, const char *key, char **ret);

/*
 * The volume's mount, for a revert: recorded into the plan as mount.target,
 * mount.source, mount.fstype, mount.options (the superblock's options, as
 * the kernel shows them), mount.attrs (the mount's own: ro, nosuid, nodev,
 * noexec, atime) and mount.root (what of the filesystem is its root).
 * -ENOTDIR when mount_point is not the root of a mount (the visible one).
 */
int mount_plan_record(const char *mount_point, char *plan, size_t size);
/* Who holds the mount with this id (statx STATX_MNT_ID): "process 812
 * (bash)" for the first process with a file, a directory or a mapping on it,
 * or "/mnt/x/y is mounted on it" for a mount below target; written to who.
 * 1 when in use, 0 when not. A hint for a refusal's message: the unmount
 * itself (EBUSY) is what decides. */
int mount_users(uint64_t mount_id, const char *target, char *who, size_t who_size);
/* How many mounts source (a device) has: one filesystem mounted in two
 * places is in use at the other when one is unmounted. */
int mount_count_source(const char *source);
/* Unmount the plan's volume for a revert: a plain umount, -EBUSY when it is
 * in use (nothing changed), unless force: then it is detached (MNT_DETACH),
 * whoever holds it keeps what they have. 0 also when nothing is mounted at
 * the target any more (a revert resumed); -ESTALE when something other than
 * the plan's filesystem is mounted there. */
int mount_plan_unmount(const char *plan, bool force);
/* A new mount (detached, as fsmount gives it) of the plan's filesystem:
 * source (NULL: the plan's), its options but those named in drop (for
 * instance "subvolid"), then those in add ("subvol=/x"); mount.attrs as the
 * mount's. An option the plan has that the kernel no longer takes (one it
 * showed by default) is logged and left out; an added one must be taken.
 * drop and add are NULL-terminated, or NULL. */
int mount_plan_open(const char *plan, const char *source, const char *const *drop, const char *const *add,
                    int *ret_fd);
/* mount_plan_open(), then the mount put on the plan's target, with the new
 * mount API. 0 also when the target has a mount of that source already (a
 * revert resumed): the caller checks more if it must. */
int mount_plan_mount(const char *plan, const char *source, const char *const *drop, const char *const *add);
