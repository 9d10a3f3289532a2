/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <blkid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libmount.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "basic/fd-util.h"
#include "basic/macro.h"
#include "basic/util.h"
#include "providers/fault.h"
#include "providers/mounts.h"

static void mnt_unref_tablep(struct libmnt_table **t)
{
	mnt_unref_table(*t);
}

static struct libmnt_table *mount_table(void)
{
	return mnt_new_table_from_file("/proc/self/mountinfo");
}

void mount_entry_clear(MountEntry *e)
{
	free(e->target);
	free(e->source);
	free(e->fstype);
	*e = (MountEntry){ 0 };
}

int mount_lookup(const char *path, MountEntry *ret)
{
	_cleanup_(mnt_unref_tablep) struct libmnt_table *tb = mount_table();
	struct libmnt_fs *fs;
	MountEntry e = { 0 };

	if (!tb)
		return -errno ?: -ENOMEM;
	/* The last mount on a target is the visible one. */
	fs = mnt_table_find_mountpoint(tb, path, MNT_ITER_BACKWARD);
	if (!fs)
		return -ENOENT;
	e.target = strdup_or_null(mnt_fs_get_target(fs));
	e.source = strdup_or_null(mnt_fs_get_source(fs));
	e.fstype = strdup_or_null(mnt_fs_get_fstype(fs));
	e.id = (uint64_t)mnt_fs_get_id(fs);
	if (!e.target || !e.fstype) {
		mount_entry_clear(&e);
		return -ENOMEM;
	}
	*ret = e;
	return 0;
}

int mount_find_source(const char *source, char **ret_target)
{
	_cleanup_(mnt_unref_tablep) struct libmnt_table *tb = mount_table();
	struct libmnt_fs *fs;

	if (!tb)
		return -errno ?: -ENOMEM;
	fs = mnt_table_find_source(tb, source, MNT_ITER_BACKWARD);
	if (!fs)
		return -ENOENT;
	*ret_target = strdup(mnt_fs_get_target(fs));
	return *ret_target ? 0 : -ENOMEM;
}

bool mount_is_own(int fd)
{
	_cleanup_free_ char *path = NULL;
	MountEntry e = { 0 };
	uint64_t id;
	bool own;

	if (fd_mount_id(fd, &id, NULL) < 0 || fd_get_path(fd, &path) < 0 || mount_lookup(path, &e) < 0)
		return false;
	own = e.id == id;
	mount_entry_clear(&e);
	return own;
}

int mount_targets(char ***ret)
{
	_cleanup_(mnt_unref_tablep) struct libmnt_table *tb = mount_table();
	struct libmnt_iter *it;
	struct libmnt_fs *fs;
	char **list = NULL;
	int r = 0;

	if (!tb)
		return -errno ?: -ENOMEM;
	it = mnt_new_iter(MNT_ITER_BACKWARD);
	if (!it)
		return -ENOMEM;
	while (r >= 0 && mnt_table_next_fs(tb, it, &fs) == 0)
		if (mnt_fs_get_target(fs))
			r = strv_push_dup(&list, mnt_fs_get_target(fs));
	mnt_free_iter(it);
	if (r < 0) {
		strv_free(list);
		return r;
	}
	*ret = list;
	return 0;
}

bool mount_is_target(const char *path)
{
	_cleanup_(mnt_unref_tablep) struct libmnt_table *tb = mount_table();

	return tb && mnt_table_find_target(tb, path, MNT_ITER_BACKWARD) != NULL;
}

int loop_backing_file(const char *dev, char **ret)
{
	char path[128], buf[4096];
	const char *name;
	ssize_t n;
	int fd;

	if (!dev || strncmp(dev, "/dev/loop", 9) != 0)
		return -ENODEV;
	name = dev + 5;
	snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENODEV;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ENODEV;
	buf[n] = '\0';
	if (buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	/* The file was unlinked under the loop device: nothing to clone. */
	if (strlen(buf) > 10 && streq(buf + strlen(buf) - 10, " (deleted)"))
		return -ENODEV;
	*ret = strdup(buf);
	return *ret ? 0 : -ENOMEM;
}

int loop_devices_of(const struct stat *st, char ***ret)
{
	char **list = NULL;
	struct dirent *de;
	DIR *d;
	int r = 0;

	d = opendir("/sys/block");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char dev[300], *backing = NULL;

		if (strncmp(de->d_name, "loop", 4) != 0)
			continue;
		snprintf(dev, sizeof(dev), "/dev/%s", de->d_name);
		/* Only bound devices are asked; the file by its inode, since a
		 * name (a hard link, a rename) tells nothing. */
		if (loop_backing_file(dev, &backing) < 0)
			continue;
		free(backing);
		if (loop_backed_by(dev, st, NULL) == 1)
			r = strv_push_dup(&list, dev);
		if (r < 0)
			break;
	}
	closedir(d);
	if (r < 0) {
		strv_free(list);
		return r;
	}
	*ret = list;
	return 0;
}

int loop_of_device(dev_t dev, char **ret)
{
	char path[128], link[4096];
	const char *name;
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", major(dev), minor(dev));
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -ENODEV;
	link[n] = '\0';
	name = strrchr(link, '/');
	name = name ? name + 1 : link;
	if (strncmp(name, "loop", 4) != 0 || !name[4])
		return -ENODEV;
	return asprintf(ret, "/dev/%s", name) < 0 ? -ENOMEM : 0;
}

int loop_backed_by(const char *dev, const struct stat *st, dev_t *ret_rdev)
{
	struct loop_info64 info;
	struct stat dst;
	int fd, r;

	fd = open(dev, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &dst) < 0 || !S_ISBLK(dst.st_mode))
		r = -ENODEV;
	else if (ioctl(fd, LOOP_GET_STATUS64, &info) < 0)
		r = -errno;
	else
		r = info.lo_device == st->st_dev && info.lo_inode == st->st_ino;
	close(fd);
	if (r >= 0 && ret_rdev)
		*ret_rdev = dst.st_rdev;
	return r;
}

int loop_backing_device(dev_t dev, dev_t *ret)
{
	_cleanup_free_ char *name = NULL;
	struct loop_info64 info;
	struct stat st;
	int fd, r;

	r = loop_of_device(dev, &name);
	if (r < 0)
		return r;
	fd = open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	/* The node must be the device asked about, whatever /dev holds. */
	if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != dev)
		r = -ENODEV;
	else if (ioctl(fd, LOOP_GET_STATUS64, &info) < 0)
		r = errno == ENXIO ? -ENODEV : -errno;
	else
		*ret = (dev_t)info.lo_device;
	close(fd);
	return r;
}

/* Further than MaxImageNesting can allow. */
#define STACK_LIMIT 16

bool device_rests_on(dev_t dev, dev_t below)
{
	for (unsigned depth = 0; depth < STACK_LIMIT; depth++) {
		if (dev == below)
			return true;
		if (loop_backing_device(dev, &dev) < 0)
			return false;
	}
	return false;
}

int loop_attach(int file_fd, const char *name, char **ret_dev, int *ret_fd)
{
	struct loop_config config = { .info.lo_flags = LO_FLAGS_AUTOCLEAR };
	int ctl, dev_fd = -1, r = 0;
	char dev[64];

	r = fault_point(POINT_LOOP);
	if (r < 0)
		return r;
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return -errno;
	config.fd = (unsigned)file_fd;
	snprintf((char *)config.info.lo_file_name, sizeof(config.info.lo_file_name), "%s", name);
	/* Another process may take the free device first: try again. */
	for (int attempt = 0; attempt < 16; attempt++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);

		if (n < 0) {
			r = -errno;
			break;
		}
		snprintf(dev, sizeof(dev), "/dev/loop%d", n);
		dev_fd = open(dev, O_RDWR | O_CLOEXEC);
		if (dev_fd < 0) {
			r = -errno;
			break;
		}
		if (ioctl(dev_fd, LOOP_CONFIGURE, &config) == 0) {
			r = 0;
			break;
		}
		r = -errno;
		close(dev_fd);
		dev_fd = -1;
		if (r != -EBUSY)
			break;
	}
	close(ctl);
	if (r < 0)
		return r;
	*ret_dev = strdup(dev);
	if (!*ret_dev) {
		close(dev_fd); /* autoclear detaches it */
		return -ENOMEM;
	}
	*ret_fd = dev_fd;
	return 0;
}

char *fs_probe_type(int fd)
{
	blkid_probe pr = blkid_new_probe();
	const char *type = NULL;
	char *r = NULL;

	if (!pr)
		return NULL;
	if (blkid_probe_set_device(pr, fd, 0, 0) == 0) {
		blkid_probe_enable_superblocks(pr, 1);
		blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
		if (blkid_do_safeprobe(pr) == 0 && blkid_probe_lookup_value(pr, "TYPE", &type, NULL) == 0 && type)
			r = strdup(type);
	}
	blkid_free_probe(pr);
	return r;
}

int mount_readonly_at(const char *fstype, const char *source, bool no_recovery, int dir_fd)
{
	_cleanup_close_ int fs = -1, mnt = -1;
	int r;

	fs = fsopen(fstype, FSOPEN_CLOEXEC);
	if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "source", source, 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0 ||
	    /* A snapshot of an XFS carries its origin's UUID, which is mounted already. */
	    (streq(fstype, "xfs") && fsconfig(fs, FSCONFIG_SET_FLAG, "nouuid", NULL, 0) < 0) ||
	    (no_recovery && streq(fstype, "xfs") && fsconfig(fs, FSCONFIG_SET_FLAG, "norecovery", NULL, 0) < 0) ||
	    (no_recovery && strncmp(fstype, "ext", 3) == 0 && fsconfig(fs, FSCONFIG_SET_FLAG, "noload", NULL, 0) < 0) ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return -errno;
	mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	if (mnt < 0)
		return -errno;
	r = fault_point(POINT_MOUNT);
	if (r < 0)
		return r;
	if (move_mount(mnt, "", dir_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return -errno;
	return 0;
}
