/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <blkid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libmount.h>
#include <limits.h>
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
#include "basic/log.h"
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

/* LOOP_CONFIGURE on the loop device dev (of the name "/dev/loopN"): 0 with
 * the device open in *ret_fd, -EBUSY when another file is bound to it. */
static int loop_configure(const char *dev, const struct loop_config *config, int *ret_fd)
{
	int fd = open(dev, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, LOOP_CONFIGURE, config) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int loop_attach_config(int file_fd, const char *name, const char *prefer, uint32_t flags, uint64_t offset,
                       uint64_t sizelimit, char **ret_dev, int *ret_fd)
{
	struct loop_config config = {
		.fd = (unsigned)file_fd,
		.info = { .lo_flags = flags, .lo_offset = offset, .lo_sizelimit = sizelimit },
	};
	int ctl, dev_fd = -1, r = 0;
	char dev[64];

	r = fault_point(POINT_LOOP);
	if (r < 0)
		return r;
	snprintf((char *)config.info.lo_file_name, sizeof(config.info.lo_file_name), "%s", name);
	if (prefer && strncmp(prefer, "/dev/loop", 9) == 0 && strlen(prefer) < sizeof(dev) &&
	    loop_configure(prefer, &config, &dev_fd) == 0) {
		*ret_dev = strdup(prefer);
		if (!*ret_dev) {
			if (!(flags & LO_FLAGS_AUTOCLEAR))
				(void)ioctl(dev_fd, LOOP_CLR_FD, 0);
			close(dev_fd);
			return -ENOMEM;
		}
		*ret_fd = dev_fd;
		return 0;
	}
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return -errno;
	/* Another process may take the free device first: try again. */
	for (int attempt = 0; attempt < 16; attempt++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);

		if (n < 0) {
			r = -errno;
			break;
		}
		snprintf(dev, sizeof(dev), "/dev/loop%d", n);
		r = loop_configure(dev, &config, &dev_fd);
		if (r != -EBUSY)
			break;
	}
	close(ctl);
	if (r < 0)
		return r;
	*ret_dev = strdup(dev);
	if (!*ret_dev) {
		if (!(flags & LO_FLAGS_AUTOCLEAR))
			(void)ioctl(dev_fd, LOOP_CLR_FD, 0);
		close(dev_fd); /* autoclear detaches it */
		return -ENOMEM;
	}
	*ret_fd = dev_fd;
	return 0;
}

int loop_attach(int file_fd, const char *name, char **ret_dev, int *ret_fd)
{
	return loop_attach_config(file_fd, name, NULL, LO_FLAGS_AUTOCLEAR, 0, 0, ret_dev, ret_fd);
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

static bool streq_ptr(const char *a, const char *b)
{
	return a && b ? streq(a, b) : a == b;
}

/* Keys are plain, so that a line's key is what comes before its '='. */
static bool plan_key_valid(const char *key)
{
	if (!key || !*key)
		return false;
	for (const char *p = key; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return false;
	return true;
}

/* The line of key in plan, and its end (after its newline). */
static const char *plan_find(const char *plan, const char *key, const char **ret_end)
{
	size_t k = strlen(key);

	for (const char *line = plan; *line;) {
		const char *end = strchr(line, '\n');

		end = end ? end + 1 : line + strlen(line);
		if (strncmp(line, key, k) == 0 && line[k] == '=') {
			*ret_end = end;
			return line;
		}
		line = end;
	}
	return NULL;
}

int plan_set(char *plan, size_t size, const char *key, const char *value)
{
	const char *line, *end;
	size_t len, need;
	char *p;

	if (!plan_key_valid(key) || !value)
		return -EINVAL;
	len = strnlen(plan, size);
	if (len >= size)
		return -EINVAL;
	need = strlen(key) + 2; /* '=' and '\n' */
	for (const char *v = value; *v; v++)
		need += *v == '\\' || *v == '\n' ? 2 : 1;
	line = plan_find(plan, key, &end);
	if (len - (line ? (size_t)(end - line) : 0) + need >= size)
		return -ENOBUFS;
	if (line) {
		memmove((char *)line, end, len - (size_t)(end - plan) + 1);
		len -= (size_t)(end - line);
	}
	p = plan + len;
	p += sprintf(p, "%s=", key);
	for (const char *v = value; *v; v++) {
		if (*v == '\\' || *v == '\n') {
			*p++ = '\\';
			*p++ = *v == '\n' ? 'n' : '\\';
		} else
			*p++ = *v;
	}
	*p++ = '\n';
	*p = '\0';
	return 0;
}

int plan_get(const char *plan, const char *key, char **ret)
{
	const char *line, *end, *v;
	char *s, *o;

	if (!plan_key_valid(key))
		return -EINVAL;
	line = plan_find(plan, key, &end);
	if (!line)
		return -ENOENT;
	v = line + strlen(key) + 1;
	if (end > v && end[-1] == '\n')
		end--;
	s = o = malloc((size_t)(end - v) + 1);
	if (!s)
		return -ENOMEM;
	for (; v < end; v++) {
		if (*v == '\\' && v + 1 < end) {
			v++;
			*o++ = *v == 'n' ? '\n' : *v;
		} else
			*o++ = *v;
	}
	*o = '\0';
	*ret = s;
	return 0;
}

int mount_plan_record(const char *mount_point, char *plan, size_t size)
{
	_cleanup_(mnt_unref_tablep) struct libmnt_table *tb = mount_table();
	struct libmnt_fs *fs;
	char id[32];
	int r;

	if (!tb)
		return -errno ?: -ENOMEM;
	/* The visible mount, and only one whose root is exactly here. */
	fs = mnt_table_find_target(tb, mount_point, MNT_ITER_BACKWARD);
	if (!fs || !mnt_fs_get_source(fs) || !mnt_fs_get_fstype(fs))
		return -ENOTDIR;
	snprintf(id, sizeof(id), "%d", mnt_fs_get_id(fs));
	r = plan_set(plan, size, "mount.target", mnt_fs_get_target(fs));
	if (r >= 0)
		r = plan_set(plan, size, "mount.source", mnt_fs_get_source(fs));
	if (r >= 0)
		r = plan_set(plan, size, "mount.fstype", mnt_fs_get_fstype(fs));
	if (r >= 0)
		r = plan_set(plan, size, "mount.options", mnt_fs_get_fs_options(fs) ?: "");
	if (r >= 0)
		r = plan_set(plan, size, "mount.attrs", mnt_fs_get_vfs_options(fs) ?: "");
	if (r >= 0)
		r = plan_set(plan, size, "mount.root", mnt_fs_get_root(fs) ?: "/");
	if (r >= 0)
		r = plan_set(plan, size, "mount.id", id);
	return r;
}

/* Whether path (a /proc magic link: a process's file, directory, mapping)
 * is on the mount with mount_id. */
static bool on_mount(int dir_fd, const char *path, uint64_t mount_id)
{
	struct statx stx;

	return statx(dir_fd, path, 0, STATX_MNT_ID, &stx) == 0 && (stx.stx_mask & STATX_MNT_ID) &&
	       stx.stx_mnt_id == mount_id;
}

/* Whether any entry of the directory /proc/PID/<sub> is on the mount. */
static bool entries_on_mount(const char *dir, uint64_t mount_id)
{
	struct dirent *de;
	bool found = false;
	DIR *d = opendir(dir);

	if (!d)
		return false;
	while (!found && (de = readdir(d)))
		found = de->d_name[0] != '.' && on_mount(dirfd(d), de->d_name, mount_id);
	closedir(d);
	return found;
}

static bool process_uses(const char *pid, uint64_t mount_id)
{
	static const char *const links[] = { "cwd", "root", "exe" };
	static const char *const dirs[] = { "fd", "map_files" };
	char path[300];

	for (size_t i = 0; i < ELEMENTSOF(links); i++) {
		snprintf(path, sizeof(path), "/proc/%s/%s", pid, links[i]);
		if (on_mount(AT_FDCWD, path, mount_id))
			return true;
	}
	for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
		snprintf(path, sizeof(path), "/proc/%s/%s", pid, dirs[i]);
		if (entries_on_mount(path, mount_id))
			return true;
	}
	return false;
}

int mount_users(uint64_t mount_id, const char *target, char *who, size_t who_size)
{
	_cleanup_(strv_freep) char **targets = NULL;
	struct dirent *de;
	int found = 0;
	DIR *d;

	if (mount_targets(&targets) >= 0)
		for (size_t i = 0; targets && targets[i]; i++)
			if (!streq(targets[i], target) && path_is_below(targets[i], target)) {
				snprintf(who, who_size, "%s is mounted on it", targets[i]);
				return 1;
			}
	d = opendir("/proc");
	if (!d)
		return -errno;
	while (!found && (de = readdir(d))) {
		char comm[64] = "?", path[300];
		FILE *f;

		if (de->d_name[0] < '1' || de->d_name[0] > '9' || !process_uses(de->d_name, mount_id))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		f = fopen(path, "re");
		if (f) {
			if (fgets(comm, sizeof(comm), f))
				comm[strcspn(comm, "\n")] = '\0';
			fclose(f);
		}
		snprintf(who, who_size, "process %s (%s)", de->d_name, comm);
		found = 1;
	}
	closedir(d);
	return found;
}

int mount_count_source(const char *source)
{
	_cleanup_(mnt_unref_tablep) struct libmnt_table *tb = mount_table();
	struct libmnt_iter *it;
	struct libmnt_fs *fs;
	int n = 0;

	if (!tb)
		return -errno ?: -ENOMEM;
	it = mnt_new_iter(MNT_ITER_FORWARD);
	if (!it)
		return -ENOMEM;
	while (mnt_table_next_fs(tb, it, &fs) == 0)
		if (streq_ptr(mnt_fs_get_source(fs), source))
			n++;
	mnt_free_iter(it);
	return n;
}

int mount_plan_unmount(const char *plan, bool force)
{
	_cleanup_free_ char *target = NULL, *source = NULL, *fstype = NULL;
	MountEntry e = { 0 };
	bool ours;
	int r;

	r = plan_get(plan, "mount.target", &target);
	if (r >= 0)
		r = plan_get(plan, "mount.source", &source);
	if (r >= 0)
		r = plan_get(plan, "mount.fstype", &fstype);
	if (r < 0)
		return r == -ENOENT ? -EINVAL : r;
	if (!mount_is_target(target))
		return 0;
	r = mount_lookup(target, &e);
	if (r < 0)
		return r;
	ours = streq_ptr(e.target, target) && streq_ptr(e.source, source) && streq_ptr(e.fstype, fstype);
	mount_entry_clear(&e);
	if (!ours)
		return -ESTALE;
	if (umount2(target, UMOUNT_NOFOLLOW | (force ? MNT_DETACH : 0)) < 0)
		return -errno;
	return 0;
}

/* The mount attributes the new mount API takes for the options
 * /proc/self/mountinfo shows of a mount ("rw,nosuid,relatime"). */
static int mount_attrs_of(const char *vfs_options, uint64_t *ret)
{
	static const struct {
		const char *name;
		uint64_t attr;
	} table[] = {
		{ "ro", MOUNT_ATTR_RDONLY },       { "nosuid", MOUNT_ATTR_NOSUID },
		{ "nodev", MOUNT_ATTR_NODEV },     { "noexec", MOUNT_ATTR_NOEXEC },
		{ "noatime", MOUNT_ATTR_NOATIME }, { "strictatime", MOUNT_ATTR_STRICTATIME },
		{ "nodiratime", MOUNT_ATTR_NODIRATIME }, { "nosymfollow", MOUNT_ATTR_NOSYMFOLLOW },
	};
	_cleanup_free_ char *copy = strdup(vfs_options);
	char *opts = copy, *name, *value;
	size_t namesz, valuesz;
	uint64_t attrs = 0;

	if (!copy)
		return -ENOMEM;
	while (mnt_optstr_next_option(&opts, &name, &namesz, &value, &valuesz) == 0)
		for (size_t i = 0; i < ELEMENTSOF(table); i++)
			if (strlen(table[i].name) == namesz && strncmp(name, table[i].name, namesz) == 0)
				attrs |= table[i].attr;
	*ret = attrs;
	return 0;
}

static bool option_listed(const char *const *list, const char *name, size_t namesz)
{
	for (size_t i = 0; list && list[i]; i++)
		if (strlen(list[i]) == namesz && strncmp(list[i], name, namesz) == 0)
			return true;
	return false;
}

/* One option onto the filesystem context: "name" a flag, "name=value" a
 * string. */
static int fs_option(int fs, const char *name, size_t namesz, const char *value, size_t valuesz)
{
	_cleanup_free_ char *n = strndup(name, namesz), *v = value ? strndup(value, valuesz) : NULL;

	if (!n || (value && !v))
		return -ENOMEM;
	if (fsconfig(fs, v ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, n, v, 0) < 0)
		return -errno;
	return 0;
}

int mount_plan_open(const char *plan, const char *source, const char *const *drop, const char *const *add,
                    int *ret_fd)
{
	_cleanup_free_ char *psource = NULL, *fstype = NULL, *options = NULL, *vfs = NULL;
	_cleanup_close_ int fs = -1;
	char *opts, *name, *value;
	size_t namesz, valuesz;
	uint64_t attrs;
	int r, mnt;

	r = plan_get(plan, "mount.source", &psource);
	if (r >= 0)
		r = plan_get(plan, "mount.fstype", &fstype);
	if (r >= 0)
		r = plan_get(plan, "mount.options", &options);
	if (r >= 0)
		r = plan_get(plan, "mount.attrs", &vfs);
	if (r < 0)
		return r == -ENOENT ? -EINVAL : r;
	r = mount_attrs_of(vfs, &attrs);
	if (r < 0)
		return r;
	fs = fsopen(fstype, FSOPEN_CLOEXEC);
	if (fs < 0)
		return -errno;
	if (fsconfig(fs, FSCONFIG_SET_STRING, "source", source ?: psource, 0) < 0)
		return -errno;
	opts = options;
	while (mnt_optstr_next_option(&opts, &name, &namesz, &value, &valuesz) == 0) {
		/* rw is the default; what the superblock is, the mount's
		 * attributes say as well. */
		if ((namesz == 2 && strncmp(name, "rw", 2) == 0) || option_listed(drop, name, namesz))
			continue;
		/* An option given again in add is add's. */
		for (size_t i = 0; add && add[i]; i++)
			if (strncmp(add[i], name, namesz) == 0 && (add[i][namesz] == '=' || add[i][namesz] == '\0'))
				goto next;
		r = fs_option(fs, name, namesz, value, valuesz);
		if (r == -EINVAL || r == -EOPNOTSUPP)
			/* Shown by the kernel when the volume was mounted,
			 * refused now: a default it no longer names. */
			log_warning("mounting %s again: option %.*s refused (%s), left out", source ?: psource,
				    (int)namesz, name, strerror(-r));
		else if (r < 0)
			return r;
	next:;
	}
	for (size_t i = 0; add && add[i]; i++) {
		const char *eq = strchr(add[i], '=');

		r = fs_option(fs, add[i], eq ? (size_t)(eq - add[i]) : strlen(add[i]), eq ? eq + 1 : NULL,
			      eq ? strlen(eq + 1) : 0);
		if (r < 0)
			return r;
	}
	if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return -errno;
	mnt = fsmount(fs, FSMOUNT_CLOEXEC, (unsigned)attrs);
	if (mnt < 0)
		return -errno;
	*ret_fd = mnt;
	return 0;
}

int mount_plan_mount(const char *plan, const char *source, const char *const *drop, const char *const *add)
{
	_cleanup_free_ char *target = NULL, *psource = NULL, *fstype = NULL;
	_cleanup_close_ int mnt = -1, dir = -1;
	MountEntry e = { 0 };
	int r;

	r = plan_get(plan, "mount.target", &target);
	if (r >= 0)
		r = plan_get(plan, "mount.source", &psource);
	if (r >= 0)
		r = plan_get(plan, "mount.fstype", &fstype);
	if (r < 0)
		return r == -ENOENT ? -EINVAL : r;
	if (mount_is_target(target) && mount_lookup(target, &e) >= 0) {
		bool done = streq_ptr(e.target, target) && streq_ptr(e.source, source ?: psource) &&
			    streq_ptr(e.fstype, fstype);

		mount_entry_clear(&e);
		if (done)
			return 0;
	}
	r = mount_plan_open(plan, source, drop, add, &mnt);
	if (r < 0)
		return r;
	dir = open_no_symlinks(AT_FDCWD, target, O_PATH | O_DIRECTORY, 0);
	if (dir < 0)
		return dir;
	if (move_mount(mnt, "", dir, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return -errno;
	return 0;
}
