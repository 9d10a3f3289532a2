/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What providers need to know of mounts and loop devices, read through
 * libmount (the kernel's /proc/self/mountinfo), sysfs and the loop ioctls.
 */

#include <stdbool.h>

typedef struct MountEntry {
	char *target;
	char *source;
	char *fstype;
} MountEntry;

void mount_entry_clear(MountEntry *e);

/* The mount holding path (the visible one, when mounts are stacked). */
int mount_lookup(const char *path, MountEntry *ret);
/* Where source (a device) is mounted; -ENOENT when it is not. */
int mount_find_source(const char *source, char **ret_target);
/* Whether something is mounted exactly at path. */
bool mount_is_target(const char *path);

/* The file behind a loop device ("/dev/loop3"); -ENODEV when dev is not a
 * loop device or has no file. */
int loop_backing_file(const char *dev, char **ret);
/* The loop devices ("/dev/loopN") a file is attached to, NULL-terminated. */
int loop_devices_of(const char *file, char ***ret);
/* Attach file to a free loop device that goes away with its last user
 * (autoclear). The device stays open in *ret_fd: close it once it is mounted,
 * or it goes at once. */
int loop_attach(const char *file, char **ret_dev, int *ret_fd);
