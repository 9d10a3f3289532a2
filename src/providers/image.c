/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The image provider. A volume is a filesystem (ext2/3/4, XFS) mounted from a
 * loop device whose backing file lies on a filesystem that can share extents
 * (XFS with reflink, btrfs), the way VM disk images are kept; or such an
 * image file given directly. Its snapshot is a reflink clone of the image
 * (FICLONE) in the store of the filesystem holding the image,
 * "<host mount point>/.vss/{snapshot-id}.img".
 *
 * A mounted image is held: the engine freezes its filesystem (hold_path)
 * while the clone is made, so the clone is the filesystem at one instant,
 * clean, and at the same instant as every other held member. An image given
 * directly that nothing mounts cannot be held: whoever writes to it (a VM)
 * is not known to vss, so its clone is crash-consistent on its own.
 */

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "basic/fd-util.h"
#include "basic/id.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/util.h"
#include "providers/extents.h"
#include "providers/mounts.h"
#include "providers/provider.h"

/* How far nesting is followed before giving up counting. */
#define DEPTH_LIMIT 16

/* Filesystems the provider freezes inside an image. */
static bool guest_fstype(const char *t)
{
	return t && (streq(t, "ext4") || streq(t, "ext3") || streq(t, "ext2") || streq(t, "xfs"));
}

/* Whether the filesystem holding the image open as fd can clone it: a
 * zero-length clone of the image onto its own end answers without changing
 * anything, and needs no free space. */
static bool can_reflink(int image_fd)
{
	_cleanup_close_ int fd = fd_reopen(image_fd, O_RDWR);
	struct stat st;

	return fd >= 0 && fstat(fd, &st) == 0 &&
	       ioctl(fd, FICLONERANGE,
		     &(struct file_clone_range){ .src_fd = fd,
						 .src_offset = (uint64_t)st.st_size,
						 .dest_offset = (uint64_t)st.st_size }) == 0;
}

static bool holds_filesystem(int fd)
{
	_cleanup_free_ char *type = fs_probe_type(fd);

	return type != NULL;
}

typedef struct ImageInfo {
	char *image;       /* the backing file */
	char *guest_mount; /* where its filesystem is mounted, or NULL */
	char *host_mount;  /* mount point of the filesystem holding the image */
	int image_fd;      /* the backing file, as the loop driver has it */
	int hold_fd;       /* the root of its filesystem's mount, or -1 */
	int host_fd;       /* the root of the host's mount */
} ImageInfo;

static void image_info_clear(ImageInfo *i)
{
	free(i->image);
	free(i->guest_mount);
	free(i->host_mount);
	safe_close(i->image_fd);
	safe_close(i->hold_fd);
	safe_close(i->host_fd);
	*i = (ImageInfo){ .image_fd = -1, .hold_fd = -1, .host_fd = -1 };
}

/* Count image layers: the image, then each filesystem holding it that is
 * itself on a loop device. */
static unsigned image_depth(const char *image)
{
	_cleanup_free_ char *path = strdup(image);
	unsigned depth = 1;

	while (path && depth < DEPTH_LIMIT) {
		MountEntry e = { 0 };
		char *next = NULL;

		if (mount_lookup(path, &e) < 0)
			break;
		if (loop_backing_file(e.source, &next) < 0) {
			mount_entry_clear(&e);
			break;
		}
		mount_entry_clear(&e);
		free(path);
		path = next;
		depth++;
	}
	return depth;
}

/* The image file behind the loop device dev, opened and checked to be the
 * file the loop driver reads (a name alone can be replaced). */
static int open_backing(const char *dev, ImageInfo *info)
{
	struct stat st;
	int r;

	r = loop_backing_file(dev, &info->image);
	if (r < 0)
		return r;
	info->image_fd = open(info->image, O_RDONLY | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC);
	if (info->image_fd < 0)
		return -errno;
	if (fstat(info->image_fd, &st) < 0)
		return -errno;
	r = loop_backed_by(dev, &st, NULL);
	return r < 0 ? r : r == 0 ? -ESTALE : 0;
}

/* For an image file given directly, the mount of its filesystem, if any:
 * that is what to hold. */
static int find_guest(ImageInfo *info)
{
	_cleanup_(strv_freep) char **devs = NULL;
	struct stat st;

	if (fstat(info->image_fd, &st) < 0)
		return -errno;
	if (loop_devices_of(&st, &devs) < 0)
		return 0;
	for (size_t i = 0; devs && devs[i]; i++) {
		_cleanup_free_ char *target = NULL;
		_cleanup_close_ int fd = -1;
		struct stat gst;
		dev_t rdev;

		if (loop_backed_by(devs[i], &st, &rdev) != 1 || mount_find_source(devs[i], &target) < 0)
			continue;
		fd = open_no_symlinks(AT_FDCWD, target, O_RDONLY | O_DIRECTORY, 0);
		if (fd < 0 || fstat(fd, &gst) < 0 || gst.st_dev != rdev)
			continue;
		info->guest_mount = TAKE_PTR(target);
		info->hold_fd = TAKE_FD(fd);
		return 0;
	}
	return 0;
}

/* What is behind a volume open as fd: the root of a loop-backed filesystem,
 * or an image file. Everything found by name is checked against the fd. */
static int image_info(int fd, ImageInfo *ret)
{
	ImageInfo info = { .image_fd = -1, .hold_fd = -1, .host_fd = -1 };
	MountEntry e = { 0 };
	uint64_t image_mount;
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode)) {
		_cleanup_free_ char *dev = NULL;

		r = loop_of_device(st.st_dev, &dev);
		if (r >= 0)
			r = open_backing(dev, &info);
		if (r >= 0)
			r = fd_get_path(fd, &info.guest_mount);
		if (r >= 0 && (info.hold_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
			r = -errno;
	} else if (S_ISREG(st.st_mode)) {
		r = fd_get_path(fd, &info.image);
		if (r >= 0 && (info.image_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
			r = -errno;
		if (r >= 0)
			r = find_guest(&info);
	} else {
		r = -ENODEV;
	}
	if (r >= 0)
		r = fd_mount_id(info.image_fd, &image_mount, NULL);
	if (r >= 0)
		r = mount_lookup(info.image, &e);
	if (r >= 0)
		r = mount_root_open(e.target, image_mount, &info.host_fd);
	if (r < 0) {
		mount_entry_clear(&e);
		image_info_clear(&info);
		return r;
	}
	info.host_mount = TAKE_PTR(e.target);
	mount_entry_clear(&e);
	*ret = info;
	return 0;
}

static int image_is_volume_supported(const VolumeInfo *v)
{
	ImageInfo info = { .image_fd = -1, .hold_fd = -1, .host_fd = -1 };
	bool ok;

	if (v->is_directory) {
		if (!v->is_mount_point || !guest_fstype(v->fs_type) || strncmp(v->source ?: "", "/dev/loop", 9) != 0)
			return 0;
	} else if (!v->is_regular || !holds_filesystem(v->fd)) {
		return 0;
	}
	if (image_info(v->fd, &info) < 0)
		return 0;
	ok = can_reflink(info.image_fd);
	image_info_clear(&info);
	return ok;
}

/* Whether fd is on the root filesystem: freezing it would freeze vssd. */
static bool on_root_fs(int fd)
{
	struct stat a, b;

	return fstat(fd, &a) < 0 || stat("/", &b) < 0 || a.st_dev == b.st_dev;
}

static int image_locate(ProviderMember *m)
{
	_cleanup_free_ char *store = NULL;
	ImageInfo info = { .image_fd = -1, .hold_fd = -1, .host_fd = -1 };
	char buf[VSS_ID_STRING_MAX];
	int r;

	r = image_info(m->volume_fd, &info);
	if (r < 0)
		return r;
	if (info.hold_fd >= 0 && on_root_fs(info.hold_fd)) {
		image_info_clear(&info);
		return VSS_E_VOLUME_NOT_SUPPORTED;
	}
	/* An exposed clone is mounted outside its store, but its image (the
	 * kernel's name for the file the loop device reads) is in it: vss's
	 * own snapshots are not volumes. */
	if (path_in_store(info.image)) {
		image_info_clear(&info);
		m->reason = "its image is a snapshot in a vss snapshot store (" STORE_NAME ")";
		return VSS_E_VOLUME_NOT_SUPPORTED;
	}
	r = store_check(info.host_fd, &m->reason);
	if (r < 0) {
		image_info_clear(&info);
		return r;
	}
	store = store_path(info.host_mount);
	if (!store || asprintf(&m->snapshot_path, "%s/%s.img", store, vss_id_format(&m->snapshot_id, buf)) < 0) {
		m->snapshot_path = NULL;
		image_info_clear(&info);
		return -ENOMEM;
	}
	m->provider_data = TAKE_PTR(info.image);
	m->backing_file = strdup(m->provider_data);
	m->hold_path = TAKE_PTR(info.guest_mount);
	m->backing_fd = TAKE_FD(info.image_fd);
	m->hold_fd = TAKE_FD(info.hold_fd);
	m->store_root_fd = TAKE_FD(info.host_fd);
	/* The clone shares its extents with the image until either changes. */
	m->attributes = VSS_VOLSNAP_ATTR_DIFFERENTIAL;
	image_info_clear(&info);
	return m->backing_file ? 0 : -ENOMEM;
}

/* An image in an image stalls when the outer one's filesystem is frozen,
 * and each layer multiplies the loop devices a snapshot's exposure needs:
 * MaxImageNesting bounds the layers. */
static int image_check_set(ProviderMember *const *members, size_t n, const ProviderPolicy *policy, char *reason,
                           size_t reason_size)
{
	const ProviderMember *m = members[n - 1];
	unsigned depth = image_depth(m->backing_file);

	if (depth <= policy->max_image_nesting)
		return 0;
	snprintf(reason, reason_size, "%s is in an image nested %u levels deep; at most %u are allowed (MaxImageNesting=)",
		 m->volume, depth, policy->max_image_nesting);
	return VSS_E_NESTED_VOLUME_LIMIT;
}

static const char *snapshot_name(const ProviderMember *m)
{
	return strrchr(m->snapshot_path, '/') + 1;
}

static int image_begin_prepare(ProviderMember *m)
{
	struct statvfs sv;
	int r;

	if (fstatvfs(m->backing_fd, &sv) < 0)
		return -errno;
	if (sv.f_flag & ST_RDONLY)
		return VSS_E_PROVIDER_VETO; /* the clone is a write to the host */
	if (m->store_fd < 0) {
		r = store_open(m->store_root_fd, &m->store_fd, &m->reason);
		if (r < 0)
			return r;
	}
	m->state = VSS_SS_PREPARED;
	return 0;
}

/*
 * The clone of an image is made in three passes, so that the hold holds
 * little: FICLONE costs a transaction per extent of the image, and an image
 * under random writes gains extents with every clone (each overwrite of a
 * shared block is a copy elsewhere), so a whole clone inside the hold grew
 * with the volume's age until sets failed (docs/ENGINE.md, "The image
 * clone").
 *
 *   end_prepare: the whole image is cloned while the volume is live, one
 *     member after another (each clone stalls its own volume's writes);
 *   pre_commit: the ranges written since are cloned again (FICLONERANGE),
 *     after the flush, so that what is left is what the last moments wrote;
 *   commit, inside the hold: what changed since is copied.
 *
 * Each pass compares the image's map with the clone's (providers/extents.h):
 * a block both map is shared, and a shared block is never written in place.
 * The pass before the hold clones ranges rather than copying them: a copied
 * block is not shared with the image, so the last pass would find it changed
 * and copy it again, inside the hold. The last pass copies small ranges (a
 * copy of a few blocks is cheaper than a transaction per range); what it
 * copied is made durable by post_commit, before the set is reported.
 */
typedef struct Pass {
	size_t extents;  /* in the map of the image */
	unsigned ranges; /* cloned or copied */
	uint64_t bytes;
	usec_t usec;
} Pass;

enum { PASS_WHOLE, PASS_CATCH_UP, PASS_LAST, _PASS_MAX };

typedef struct Pending {
	int fd;          /* the clone, in the store */
	ExtentMap base;  /* its map; empty when too large to keep */
	Pass pass[_PASS_MAX]; /* logged after the hold, never inside it */
} Pending;

/* A map kept per member is at most this many extents (32 MiB); beyond it,
 * the whole image is cloned again inside the hold. */
#define MAP_MAX_EXTENTS (1u << 20)
/* Ranges of the last pass this large or larger are cloned, not copied. */
#define COPY_MAX (1u << 20)
/* The pass after the flush stops cloning after this long: it runs under
 * the flush limit, and whatever it leaves, the last pass copies. */
#define CATCH_UP_USEC (1 * USEC_PER_SEC)

static void pending_free(ProviderMember *m)
{
	Pending *p = m->priv;

	if (!p)
		return;
	safe_close(p->fd);
	extent_map_free(&p->base);
	free(p);
	m->priv = NULL;
}

/* The map of the clone, kept only when it can be compared. */
static int read_base(Pending *p)
{
	int r;

	extent_map_free(&p->base);
	r = extent_map_read(p->fd, 0, MAP_MAX_EXTENTS, &p->base);
	return r == -E2BIG || r == -EOPNOTSUPP ? 0 : r;
}

static int clone_whole(int dst, int src)
{
	int r = fault_point(POINT_CLONE);

	if (r == 0 && ioctl(dst, FICLONE, src) < 0)
		r = -errno;
	return r;
}

static int image_end_prepare(ProviderMember **members, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ProviderMember *m = members[i];
		Pending *p;
		int r;

		p = calloc(1, sizeof(*p));
		if (!p)
			return -ENOMEM;
		m->priv = p;
		/* From here the clone exists: abort removes it. */
		p->fd = openat(m->store_fd, snapshot_name(m), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			       0600);
		if (p->fd < 0)
			return -errno;
		/* An image nobody holds is cloned whole inside commit: one
		 * FICLONE is the file at one instant, passes would not be. */
		if (m->hold_fd < 0)
			continue;
		p->pass[PASS_WHOLE].usec = now_usec(CLOCK_MONOTONIC);
		r = clone_whole(p->fd, m->backing_fd);
		if (r == 0)
			r = read_base(p);
		if (r < 0)
			return r;
		p->pass[PASS_WHOLE].usec = now_usec(CLOCK_MONOTONIC) - p->pass[PASS_WHOLE].usec;
		p->pass[PASS_WHOLE].extents = p->base.n;
	}
	return 0;
}

typedef struct Update {
	int dst, src;
	uint64_t size;
	bool copy;      /* the last pass: small ranges are copied */
	char *buf;      /* allocated at the first copy: most holds copy nothing */
	Pass *pass;
	usec_t give_up;  /* stop here, 0: never */
} Update;

static int copy_range(Update *u, uint64_t offset, uint64_t length)
{
	if (!u->buf && !(u->buf = malloc(COPY_MAX)))
		return -ENOMEM;
	while (length > 0) {
		ssize_t k = pread(u->src, u->buf, MIN(length, (uint64_t)COPY_MAX), (off_t)offset);

		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO; /* the image cannot shrink while held */
		for (ssize_t w = 0, d; w < k; w += d) {
			d = pwrite(u->dst, u->buf + w, (size_t)(k - w), (off_t)offset + w);
			if (d < 0)
				return -errno;
		}
		offset += (uint64_t)k;
		length -= (uint64_t)k;
	}
	return 0;
}

static int update_range(uint64_t offset, uint64_t length, void *userdata)
{
	Update *u = userdata;
	uint64_t bytes = length ?: u->size - offset;

	if (u->give_up > 0 && now_usec(CLOCK_MONOTONIC) >= u->give_up)
		return -ETIME;
	u->pass->ranges++;
	u->pass->bytes += bytes;
	if (u->copy && bytes < COPY_MAX)
		return copy_range(u, offset, bytes);
	if (ioctl(u->dst, FICLONERANGE,
		  &(struct file_clone_range){
			  .src_fd = u->src, .src_offset = offset, .src_length = length, .dest_offset = offset }) < 0)
		return -errno;
	return 0;
}

/* Bring the clone up to date with the image: 1 when it was, 0 when the
 * maps cannot be compared (too large, no FIEMAP, the size changed). */
static int update_clone(Pending *p, int image_fd, bool last)
{
	_cleanup_(extent_map_free) ExtentMap now = { 0 };
	Pass *pass = &p->pass[last ? PASS_LAST : PASS_CATCH_UP];
	usec_t start = now_usec(CLOCK_MONOTONIC);
	struct stat image, clone;
	struct statvfs sv;
	int r;

	if (p->base.n == 0 || fstat(image_fd, &image) < 0 || fstat(p->fd, &clone) < 0 ||
	    image.st_size != clone.st_size || fstatvfs(image_fd, &sv) < 0 || sv.f_bsize == 0 ||
	    (sv.f_bsize & (sv.f_bsize - 1)) != 0)
		return 0;
	/* Inside the hold, what the freeze wrote out must have its place
	 * in the map. */
	r = extent_map_read(image_fd, last ? FIEMAP_FLAG_SYNC : 0, MAP_MAX_EXTENTS, &now);
	if (r == -E2BIG || r == -EOPNOTSUPP)
		return 0;
	if (r < 0)
		return r;
	r = fault_point(POINT_CLONE);
	if (r == 0) {
		Update u = { .dst = p->fd, .src = image_fd, .size = (uint64_t)image.st_size, .copy = last,
			     .pass = pass, .give_up = last ? 0 : start + CATCH_UP_USEC };

		r = extent_map_diff(&p->base, &now, (uint64_t)image.st_size, sv.f_bsize, update_range, &u);
		free(u.buf);
	}
	/* A catch-up cut short is still a clone of some ranges more. */
	if (r == -ETIME)
		r = 0;
	pass->extents = now.n;
	pass->usec = now_usec(CLOCK_MONOTONIC) - start;
	return r < 0 ? r : 1;
}

static int image_pre_commit(ProviderMember *m)
{
	Pending *p = m->priv;
	int r = m->hold_fd >= 0 ? fault_point(POINT_SYNC) : 0;

	/* Write out what the filesystem in the image and then the image
	 * itself hold in memory, so that the freeze has little left to
	 * flush and the clone little left to catch up. */
	if (r == 0 && m->hold_fd >= 0 && syncfs(m->hold_fd) < 0)
		r = -errno;
	if (r == 0)
		r = fault_point(POINT_SYNC);
	if (r == 0 && fdatasync(m->backing_fd) < 0)
		r = -errno;
	if (r == 0 && !p)
		r = -EINVAL;
	if (r == 0)
		r = update_clone(p, m->backing_fd, false);
	/* The clone shares more with the image now: the last pass compares
	 * with what it holds. */
	if (r > 0)
		r = read_base(p);
	if (r < 0)
		return r;
	m->state = VSS_SS_PRECOMMITTED;
	return 0;
}

static int image_commit(ProviderMember *m)
{
	Pending *p = m->priv;
	int r = update_clone(p, m->backing_fd, true);

	if (r == 0)
		r = clone_whole(p->fd, m->backing_fd);
	if (r < 0)
		return r;
	m->state = VSS_SS_COMMITTED;
	return 0;
}

/* What the last pass copied is durable before the set is reported. */
static int image_post_commit(ProviderMember *m)
{
	Pending *p = m->priv;
	int r = fault_point(POINT_SYNC);

	if (r == 0 && fdatasync(p->fd) < 0)
		r = -errno;
	if (r < 0)
		return r;
	log_debug("image: clone of %s: whole, %zu extents, %.1f ms; then %u range(s), %" PRIu64
		  " KiB of %zu extents, %.1f ms; in the hold %u range(s), %" PRIu64 " KiB of %zu extents, %.1f ms",
		  m->volume, p->pass[PASS_WHOLE].extents, p->pass[PASS_WHOLE].usec / 1000.0,
		  p->pass[PASS_CATCH_UP].ranges, p->pass[PASS_CATCH_UP].bytes >> 10, p->pass[PASS_CATCH_UP].extents,
		  p->pass[PASS_CATCH_UP].usec / 1000.0, p->pass[PASS_LAST].ranges, p->pass[PASS_LAST].bytes >> 10,
		  p->pass[PASS_LAST].extents, p->pass[PASS_LAST].usec / 1000.0);
	pending_free(m);
	return 0;
}

/* Remove a clone from an open store: 0 also when it is gone already. */
static int delete_in(int store_fd, const char *name)
{
	struct stat st;
	int r;

	if (fstatat(store_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISREG(st.st_mode))
		return VSS_E_PROVIDER_VETO; /* not a clone of ours */
	r = fault_point(POINT_REMOVE);
	if (r == 0 && unlinkat(store_fd, name, 0) < 0 && errno != ENOENT)
		r = -errno;
	return r;
}

static int image_abort(ProviderMember *m)
{
	pending_free(m);
	/* Nothing can have been made before the store was opened. */
	return m->store_fd >= 0 ? delete_in(m->store_fd, snapshot_name(m)) : 0;
}

static int image_delete_snapshot(const char *snapshot_path, const char *provider_data)
{
	(void)provider_data;
	return store_delete(snapshot_path, delete_in);
}

/* The clone in its store, as st; -ENOENT when it is gone. */
static int stat_clone(const char *snapshot_path, int *ret_store, const char **ret_name, struct stat *st)
{
	int r = store_open_for(snapshot_path, ret_store, ret_name);

	if (r < 0)
		return r;
	if (fstatat(*ret_store, *ret_name, st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return S_ISREG(st->st_mode) ? 0 : VSS_E_PROVIDER_VETO;
}

static bool is_clone_entry(int store_fd, const struct dirent *de)
{
	struct stat st;

	if (de->d_type != DT_UNKNOWN)
		return de->d_type == DT_REG;
	return fstatat(store_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

static int image_list_snapshots(const char *store_path, provider_found_fn found, void *userdata)
{
	_cleanup_close_ int store = -1;
	int r;

	r = store_open_path(store_path, &store);
	if (r < 0)
		return r;
	return store_list(store, is_clone_entry, found, userdata);
}

static int image_expose(const char *snapshot_path, const char *provider_data, int dir_fd)
{
	_cleanup_close_ int store = -1, fd = -1, dev_fd = -1;
	_cleanup_free_ char *fstype = NULL, *dev = NULL;
	const char *name;
	struct stat st;
	int r;

	(void)provider_data;
	r = stat_clone(snapshot_path, &store, &name, &st);
	if (r < 0)
		return r;
	/* The clone is vss's own private copy, attached writable: a
	 * filesystem that needs its journal replayed gets it replayed into
	 * the clone (VSS's auto-recovery), never into the original. */
	fd = openat(store, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	fstype = fs_probe_type(fd);
	if (!fstype)
		return VSS_E_PROVIDER_VETO; /* no filesystem in the clone */
	r = loop_attach(fd, snapshot_path, &dev, &dev_fd);
	if (r < 0)
		return r;
	/* Mounted, the device lives as long as the mount (autoclear). */
	return mount_readonly_at(fstype, dev, false, dir_fd);
}

static int image_is_exposed_at(const char *snapshot_path, const char *provider_data, int dir_fd)
{
	_cleanup_close_ int store = -1;
	_cleanup_free_ char *dev = NULL;
	struct stat clone, st;
	const char *name;

	(void)provider_data;
	/* The mounted filesystem is on a loop device; that device reads the
	 * clone. */
	return stat_clone(snapshot_path, &store, &name, &clone) == 0 && fstat(dir_fd, &st) == 0 &&
	       loop_of_device(st.st_dev, &dev) == 0 && loop_backed_by(dev, &clone, NULL) == 1;
}

/* Physical extents of files, as sorted disjoint [start, end) ranges. */
typedef struct Ranges {
	uint64_t (*r)[2];
	size_t n;
} Ranges;

static int ranges_add(Ranges *rs, uint64_t start, uint64_t len)
{
	uint64_t *range = array_grow((void **)&rs->r, &rs->n, sizeof(*rs->r));

	if (!range)
		return -ENOMEM;
	range[0] = start;
	range[1] = start + len;
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return x[0] < y[0] ? -1 : x[0] > y[0];
}

static void ranges_normalize(Ranges *rs)
{
	size_t k = 0;

	/* A file with no extents has no array: qsort() must not see NULL. */
	if (rs->n == 0)
		return;
	qsort(rs->r, rs->n, sizeof(*rs->r), cmp_range);
	for (size_t i = 0; i < rs->n; i++) {
		if (k > 0 && rs->r[i][0] <= rs->r[k - 1][1]) {
			rs->r[k - 1][1] = MAX(rs->r[k - 1][1], rs->r[i][1]);
			continue;
		}
		rs->r[k][0] = rs->r[i][0];
		rs->r[k][1] = rs->r[i][1];
		k++;
	}
	rs->n = k;
}

static uint64_t ranges_bytes(const Ranges *rs)
{
	uint64_t b = 0;

	for (size_t i = 0; i < rs->n; i++)
		b += rs->r[i][1] - rs->r[i][0];
	return b;
}

/* Bytes of a not shared with b (both normalized). */
static uint64_t ranges_bytes_outside(const Ranges *a, const Ranges *b)
{
	uint64_t total = 0;
	size_t j = 0;

	for (size_t i = 0; i < a->n; i++) {
		uint64_t pos = a->r[i][0], end = a->r[i][1];

		while (j < b->n && b->r[j][1] <= pos)
			j++;
		for (size_t k = j; k < b->n && b->r[k][0] < end && pos < end; k++) {
			if (b->r[k][0] > pos)
				total += b->r[k][0] - pos;
			pos = MAX(pos, b->r[k][1]);
		}
		if (pos < end)
			total += end - pos;
	}
	return total;
}

/* Add a file's physical extents (FIEMAP); sync first if asked, so that
 * data still in memory has its place on disk. */
static int file_ranges(const char *path, bool sync, Ranges *rs)
{
	_cleanup_(extent_map_free) ExtentMap map = { 0 };
	_cleanup_close_ int fd = -1;
	int r = 0;

	/* Recorded paths are canonical: a link on the way is not ours. */
	fd = open_no_symlinks(AT_FDCWD, path, O_RDONLY | O_NOFOLLOW, 0);
	if (fd < 0)
		return fd;
	r = extent_map_read(fd, sync ? FIEMAP_FLAG_SYNC : 0, SIZE_MAX, &map);
	for (size_t i = 0; r == 0 && i < map.n; i++)
		if (!(map.extents[i].flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC)))
			r = ranges_add(rs, map.extents[i].physical, map.extents[i].length);
	return r;
}

/* Used: the extents of the clones that the image no longer has, each
 * counted once however many clones share it; allocated: all their extents. */
static int image_space(char *const *snapshot_paths, size_t n, const char *provider_data, int64_t *ret_used,
                       int64_t *ret_allocated)
{
	Ranges origin = { 0 }, clones = { 0 };
	int r;

	r = file_ranges(provider_data, true, &origin);
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = file_ranges(snapshot_paths[i], false, &clones);
	if (r >= 0) {
		ranges_normalize(&origin);
		ranges_normalize(&clones);
		*ret_used = (int64_t)ranges_bytes_outside(&clones, &origin);
		*ret_allocated = (int64_t)ranges_bytes(&clones);
	}
	free(origin.r);
	free(clones.r);
	return r;
}

/*
 * Revert: the image file is replaced by a clone of the snapshot's image,
 * and the volume's filesystem mounted again from it. In steps, each done
 * again or found done when a revert is resumed from its plan:
 *
 *   1 the volume is unmounted (EBUSY when in use, and nothing changed);
 *   2 its loop device lets go of the old image (LOOP_CLR_FD; an autoclear
 *     device went with its mount);
 *   3 the snapshot's image is cloned (FICLONE) to a temporary name next to
 *     the image (image.temp), with the image's owner and mode, and synced;
 *   4 the clone is renamed over the image and the directory synced: the
 *     commit point. The image's inode (image.ino) tells which side of it a
 *     resumed revert is on;
 *   5 a loop device reads the new image, as the old one did (its flags,
 *     offset and size limit; its number when it is free);
 *   6 the filesystem is mounted again where it was, with its options.
 */
static int plan_set_u64(char *plan, size_t size, const char *key, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return plan_set(plan, size, key, buf);
}

static int plan_get_u64(const char *plan, const char *key, uint64_t *ret)
{
	_cleanup_free_ char *v = NULL;
	int r = plan_get(plan, key, &v);

	return r < 0 ? r : parse_u64(v, ret);
}

static int image_revert_plan(ProviderRevert *r)
{
	_cleanup_free_ char *source = NULL, *fstype = NULL, *backing = NULL, *dir = NULL;
	_cleanup_close_ int store = -1, fd = -1, dev_fd = -1;
	struct loop_info64 info;
	char temp[PATH_MAX], who[256];
	const char *name, *base;
	struct stat image, clone;
	uint64_t mount_id;
	int k;

	if (!r->provider_data)
		return revert_fail(r, -EOPNOTSUPP, "the catalog does not say which image %s is in", r->volume);
	k = mount_plan_record(r->volume, r->plan, sizeof(r->plan));
	if (k == -ENOTDIR)
		return revert_fail(r, -EOPNOTSUPP, "%s is not mounted: only a mounted image's volume is reverted",
				   r->volume);
	if (k < 0)
		return revert_fail(r, k, "cannot read the mount of %s: %s", r->volume, strerror(-k));
	if (plan_get(r->plan, "mount.source", &source) < 0 || plan_get(r->plan, "mount.fstype", &fstype) < 0)
		return -EINVAL;
	if (!guest_fstype(fstype) || loop_backing_file(source, &backing) < 0)
		return revert_fail(r, -EOPNOTSUPP, "%s is not a filesystem in an image file", r->volume);
	fd = open_no_symlinks(AT_FDCWD, r->provider_data, O_RDONLY | O_NOFOLLOW, 0);
	if (fd < 0)
		return revert_fail(r, fd == -ENOENT ? -EOPNOTSUPP : fd, "cannot open the image %s: %s",
				   r->provider_data, strerror(-fd));
	if (fstat(fd, &image) < 0)
		return -errno;
	if (loop_backed_by(source, &image, NULL) != 1)
		return revert_fail(r, -EOPNOTSUPP, "%s is not mounted from %s, the image its snapshots are of", r->volume,
				   r->provider_data);
	k = mount_count_source(source);
	if (k > 1 && !r->force_unmount)
		return revert_fail(r, -EBUSY, "%s is in use: its filesystem (%s) is mounted elsewhere too", r->volume,
				   source);
	/* The loop device as it is, to be made again. */
	dev_fd = open(source, O_RDONLY | O_CLOEXEC);
	if (dev_fd < 0 || ioctl(dev_fd, LOOP_GET_STATUS64, &info) < 0)
		return revert_fail(r, -errno, "cannot read the loop device %s: %m", source);
	dev_fd = safe_close(dev_fd);

	k = stat_clone(r->snapshot_path, &store, &name, &clone);
	if (k == -ENOENT)
		return revert_fail(r, -ENOENT, "the snapshot %s is gone", r->snapshot_path);
	if (k < 0)
		return revert_fail(r, k < -4096 ? -EIO : k, "cannot open the snapshot %s", r->snapshot_path);
	if (clone.st_dev != image.st_dev)
		return revert_fail(r, -EOPNOTSUPP, "the snapshot %s is not on the filesystem of the image %s",
				   r->snapshot_path, r->provider_data);

	dir = path_parent(r->provider_data);
	if (!dir)
		return -ENOMEM;
	base = strrchr(r->provider_data, '/');
	base = base ? base + 1 : r->provider_data;
	if (snprintf(temp, sizeof(temp), ".%s.vss-revert-%s", base, name) >= NAME_MAX)
		return revert_fail(r, -EOPNOTSUPP, "the image's name %s is too long for a temporary name next to it",
				   base);
	k = plan_set(r->plan, sizeof(r->plan), "image.path", r->provider_data);
	if (k >= 0)
		k = plan_set(r->plan, sizeof(r->plan), "image.temp", temp);
	if (k >= 0)
		k = plan_set_u64(r->plan, sizeof(r->plan), "image.dev", (uint64_t)image.st_dev);
	if (k >= 0)
		k = plan_set_u64(r->plan, sizeof(r->plan), "image.ino", (uint64_t)image.st_ino);
	if (k >= 0)
		k = plan_set_u64(r->plan, sizeof(r->plan), "loop.flags", info.lo_flags);
	if (k >= 0)
		k = plan_set_u64(r->plan, sizeof(r->plan), "loop.offset", info.lo_offset);
	if (k >= 0)
		k = plan_set_u64(r->plan, sizeof(r->plan), "loop.sizelimit", info.lo_sizelimit);
	if (k < 0)
		return revert_fail(r, k, "the plan does not fit: %s", strerror(-k));

	if (!r->force_unmount) {
		_cleanup_close_ int vol = open_no_symlinks(AT_FDCWD, r->volume, O_PATH | O_DIRECTORY, 0);

		k = vol >= 0 ? fd_mount_id(vol, &mount_id, NULL) : vol;
		vol = safe_close(vol);
		if (k >= 0 && mount_users(mount_id, r->volume, who, sizeof(who)) > 0)
			return revert_fail(r, -EBUSY, "%s is in use: %s", r->volume, who);
	}
	return 0;
}

/* The plan's filesystem type ("" when it has none). */
static const char *fstype_of(const char *plan)
{
	static _Thread_local char buf[32];
	_cleanup_free_ char *t = NULL;

	buf[0] = '\0';
	if (plan_get(plan, "mount.fstype", &t) >= 0)
		snprintf(buf, sizeof(buf), "%s", t);
	return buf;
}

/* The image's directory and its name in it. */
static int open_image_dir(const char *image, int *ret_fd, const char **ret_name)
{
	_cleanup_free_ char *dir = path_parent(image);
	int fd;

	if (!dir)
		return -ENOMEM;
	fd = open_no_symlinks(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	*ret_fd = fd;
	*ret_name = strrchr(image, '/') ? strrchr(image, '/') + 1 : image;
	return 0;
}

static int image_revert(ProviderRevert *r)
{
	_cleanup_free_ char *image = NULL, *temp = NULL, *source = NULL, *dev = NULL;
	_cleanup_close_ int dir = -1, loop_fd = -1;
	uint64_t old_dev, old_ino, flags, offset, sizelimit;
	struct stat now, old = { 0 };
	const char *name;
	bool replaced;
	int k;

	if (plan_get(r->plan, "image.path", &image) < 0 || plan_get(r->plan, "image.temp", &temp) < 0 ||
	    plan_get(r->plan, "mount.source", &source) < 0 || plan_get_u64(r->plan, "image.dev", &old_dev) < 0 ||
	    plan_get_u64(r->plan, "image.ino", &old_ino) < 0 || plan_get_u64(r->plan, "loop.flags", &flags) < 0 ||
	    plan_get_u64(r->plan, "loop.offset", &offset) < 0 ||
	    plan_get_u64(r->plan, "loop.sizelimit", &sizelimit) < 0)
		return revert_fail(r, -EINVAL, "the revert's plan is not one of the image provider's");
	k = open_image_dir(image, &dir, &name);
	if (k < 0)
		return revert_fail(r, k, "cannot open the directory of %s: %s", image, strerror(-k));
	if (fstatat(dir, name, &now, AT_SYMLINK_NOFOLLOW) < 0)
		return revert_fail(r, -errno, "cannot find the image %s: %m", image);
	old.st_dev = (dev_t)old_dev;
	old.st_ino = (ino_t)old_ino;
	replaced = now.st_dev != old.st_dev || now.st_ino != old.st_ino;

	k = revert_unmount_step(r, replaced);
	if (k < 0)
		return k;

	/* Whether replaced or not: a loop device still on the old image is
	 * what would read it again. */
	k = fault_revert_step(2);
	if (k == 0 && loop_backed_by(source, &old, NULL) == 1) {
		_cleanup_close_ int fd = open(source, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || (ioctl(fd, LOOP_CLR_FD, 0) < 0 && errno != ENXIO))
			k = -errno;
	}
	if (k < 0)
		return revert_fail(r, k, "cannot detach %s from the image: %s", source, strerror(-k));

	k = fault_revert_step(3);
	if (k == 0 && !replaced) {
		_cleanup_close_ int store = -1, snap = -1, tmp = -1;
		struct stat clone;
		const char *snap_name;

		k = stat_clone(r->snapshot_path, &store, &snap_name, &clone);
		if (k == -ENOENT)
			return revert_fail(r, -ENOENT, "the snapshot %s is gone", r->snapshot_path);
		if (k >= 0 && (snap = openat(store, snap_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
			k = -errno;
		if (k >= 0 && (tmp = openat(dir, temp, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0)
			k = -errno;
		if (k >= 0)
			k = clone_whole(tmp, snap);
		if (k >= 0 && (fchown(tmp, now.st_uid, now.st_gid) < 0 || fchmod(tmp, now.st_mode & 07777) < 0))
			k = -errno;
		if (k >= 0)
			k = fault_point(POINT_SYNC);
		if (k >= 0 && fsync(tmp) < 0)
			k = -errno;
	}
	if (k < 0)
		return revert_fail(r, k < -4096 ? -EIO : k, "cannot clone the snapshot %s: %s", r->snapshot_path,
				   k < -4096 ? "not a clone of vss's" : strerror(-k));

	k = fault_revert_step(4);
	if (k == 0 && !replaced) {
		if (renameat(dir, temp, dir, name) < 0)
			k = -errno;
		if (k == 0)
			k = fault_point(POINT_SYNC);
		if (k == 0 && fsync(dir) < 0)
			k = -errno;
	}
	if (k < 0)
		return revert_fail(r, k, "cannot put the clone in place of %s: %s", image, strerror(-k));

	k = fault_revert_step(5);
	if (k == 0) {
		_cleanup_(strv_freep) char **devs = NULL;
		_cleanup_close_ int file = openat(dir, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);

		if (file < 0 || fstat(file, &now) < 0)
			k = -errno;
		/* Resumed after the device was made: it is found. */
		if (k == 0 && loop_devices_of(&now, &devs) >= 0 && devs && devs[0]) {
			dev = strdup(devs[0]);
			if (!dev)
				return -ENOMEM;
		} else if (k == 0)
			k = loop_attach_config(file, image, source, (uint32_t)flags, offset, sizelimit, &dev, &loop_fd);
	}
	if (k < 0)
		return revert_fail(r, k, "the image holds the snapshot now, but no loop device can read it: %s",
				   strerror(-k));

	/* Unmounted by force, the old XFS may live on for whoever held it,
	 * and has the same UUID; so may one unmounted here but mounted in
	 * another mount namespace too (a copy made by unshare), which no
	 * unmount here can see. XFS refuses a second mount of a UUID. */
	k = fault_revert_step(6);
	if (k == 0) {
		bool xfs = streq(fstype_of(r->plan), "xfs");

		k = mount_plan_mount(r->plan, dev, NULL,
				     r->force_unmount && xfs ? (const char *const[]){ "nouuid", NULL } : NULL);
		if (k == -EINVAL && xfs && !r->force_unmount) {
			log_warning("%s: its old XFS lives on elsewhere (another mount namespace), with the same UUID; "
				    "mounting it with nouuid", r->volume);
			k = mount_plan_mount(r->plan, dev, NULL, (const char *const[]){ "nouuid", NULL });
		}
	}
	if (k < 0)
		return revert_fail(r, k, "the image holds the snapshot now, but cannot be mounted again on %s: %s",
				   r->volume, strerror(-k));
	return 0;
}

const provider_ops image_provider = {
	.version = PROVIDER_OPS_VERSION,
	.name = "image",
	.version_string = "1.0",
	/* {e78e9371-7dfa-4cb4-9cb4-0b907e88ce85} */
	.id = { { 0xe7, 0x8e, 0x93, 0x71, 0x7d, 0xfa, 0x4c, 0xb4, 0x9c, 0xb4, 0x0b, 0x90, 0x7e, 0x88, 0xce, 0x85 } },
	/* {f3e11cfc-f240-47da-a5d4-a4399504f45f} */
	.version_id = { { 0xf3, 0xe1, 0x1c, 0xfc, 0xf2, 0x40, 0x47, 0xda, 0xa5, 0xd4, 0xa4, 0x39, 0x95, 0x04, 0xf4, 0x5f } },
	.class_id = { { 0xe7, 0x8e, 0x93, 0x71, 0x7d, 0xfa, 0x4c, 0xb4, 0x9c, 0xb4, 0x0b, 0x90, 0x7e, 0x88, 0xce, 0x85 } },
	.type = VSS_PROV_SOFTWARE,
	/* Inside the hold a member reads its map and copies a few blocks:
	 * each waits mostly for its own image's writeback. */
	.flags = PROVIDER_HOLDS_WRITES | PROVIDER_COMMITS_CONCURRENTLY,
	.is_volume_supported = image_is_volume_supported,
	.locate = image_locate,
	.check_set = image_check_set,
	.begin_prepare = image_begin_prepare,
	.end_prepare = image_end_prepare,
	.pre_commit = image_pre_commit,
	.commit = image_commit,
	.post_commit = image_post_commit,
	.abort = image_abort,
	.delete_snapshot = image_delete_snapshot,
	.list_snapshots = image_list_snapshots,
	.expose = image_expose,
	.is_exposed_at = image_is_exposed_at,
	.space = image_space,
	.revert_plan = image_revert_plan,
	.revert = image_revert,
};
