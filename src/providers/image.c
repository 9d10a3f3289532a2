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

#include <blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "basic/id.h"
#include "basic/macro.h"
#include "basic/util.h"
#include "providers/mounts.h"
#include "providers/provider.h"

/* How far nesting is followed before giving up counting. */
#define DEPTH_LIMIT 16

/* Filesystems the provider freezes inside an image. */
static bool guest_fstype(const char *t)
{
	return t && (streq(t, "ext4") || streq(t, "ext3") || streq(t, "ext2") || streq(t, "xfs"));
}

/* Whether the filesystem holding image can clone it: a zero-length clone of
 * the image onto its own end answers without changing anything, and needs no
 * free space. */
static bool can_reflink(const char *image)
{
	struct stat st;
	int fd;
	bool ok;

	fd = open(image, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	ok = fstat(fd, &st) == 0 &&
	     ioctl(fd, FICLONERANGE,
		   &(struct file_clone_range){ .src_fd = fd,
					       .src_offset = (uint64_t)st.st_size,
					       .dest_offset = (uint64_t)st.st_size }) == 0;
	close(fd);
	return ok;
}

/* The filesystem type in an image (libblkid reads its superblock), or NULL. */
static char *probe_fstype(const char *file)
{
	blkid_probe pr = blkid_new_probe_from_filename(file);
	const char *type = NULL;
	char *r = NULL;

	if (!pr)
		return NULL;
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
	if (blkid_do_safeprobe(pr) == 0 && blkid_probe_lookup_value(pr, "TYPE", &type, NULL) == 0 && type)
		r = strdup(type);
	blkid_free_probe(pr);
	return r;
}

static bool holds_filesystem(const char *file)
{
	_cleanup_free_ char *type = probe_fstype(file);

	return type != NULL;
}

typedef struct ImageInfo {
	char *image;       /* the backing file */
	char *guest_mount; /* where its filesystem is mounted, or NULL */
	char *host_mount;  /* mount point of the filesystem holding the image */
	char *host_fstype;
	unsigned depth;    /* image layers under the volume */
} ImageInfo;

static void image_info_clear(ImageInfo *i)
{
	free(i->image);
	free(i->guest_mount);
	free(i->host_mount);
	free(i->host_fstype);
	*i = (ImageInfo){ 0 };
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

/* What is behind a volume path: a mount point of a loop-backed filesystem,
 * or an image file. */
static int image_info(const char *volume, ImageInfo *ret)
{
	ImageInfo info = { 0 };
	MountEntry e = { 0 };
	struct stat st;
	int r;

	if (stat(volume, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode)) {
		r = mount_lookup(volume, &e);
		if (r < 0)
			return r;
		if (!streq(e.target, volume) || !guest_fstype(e.fstype) ||
		    loop_backing_file(e.source, &info.image) < 0) {
			mount_entry_clear(&e);
			return -ENODEV;
		}
		mount_entry_clear(&e);
		info.guest_mount = strdup(volume);
		if (!info.guest_mount) {
			image_info_clear(&info);
			return -ENOMEM;
		}
	} else if (S_ISREG(st.st_mode)) {
		_cleanup_(strv_freep) char **devs = NULL;

		info.image = strdup(volume);
		if (!info.image)
			return -ENOMEM;
		/* An image given directly may still be mounted somewhere:
		 * then that mount is what to hold. */
		if (loop_devices_of(info.image, &devs) >= 0)
			for (size_t i = 0; devs && devs[i] && !info.guest_mount; i++)
				(void)mount_find_source(devs[i], &info.guest_mount);
	} else {
		return -ENODEV;
	}

	r = mount_lookup(info.image, &e);
	if (r < 0) {
		image_info_clear(&info);
		return r;
	}
	info.host_mount = TAKE_PTR(e.target);
	info.host_fstype = TAKE_PTR(e.fstype);
	mount_entry_clear(&e);
	info.depth = image_depth(info.image);
	*ret = info;
	return 0;
}

static int image_is_volume_supported(const VolumeInfo *v)
{
	ImageInfo info = { 0 };
	bool ok;

	if (v->is_directory) {
		if (!v->is_mount_point || !guest_fstype(v->fs_type) || strncmp(v->source ?: "", "/dev/loop", 9) != 0)
			return 0;
	} else if (!holds_filesystem(v->path)) {
		return 0;
	}
	if (image_info(v->path, &info) < 0)
		return 0;
	ok = can_reflink(info.image);
	image_info_clear(&info);
	return ok;
}

static int image_locate(ProviderMember *m)
{
	_cleanup_free_ char *store = NULL;
	ImageInfo info = { 0 };
	char buf[VSS_ID_STRING_MAX];
	int r;

	r = image_info(m->volume, &info);
	if (r < 0)
		return r;
	/* Freezing the root filesystem would freeze vssd itself. */
	if (info.guest_mount && streq(info.guest_mount, "/")) {
		image_info_clear(&info);
		return VSS_E_VOLUME_NOT_SUPPORTED;
	}
	store = store_path(info.host_mount);
	if (!store || asprintf(&m->snapshot_path, "%s/%s.img", store, vss_id_format(&m->snapshot_id, buf)) < 0) {
		m->snapshot_path = NULL;
		image_info_clear(&info);
		return -ENOMEM;
	}
	m->provider_data = TAKE_PTR(info.image);
	m->image_file = strdup(m->provider_data);
	m->hold_path = TAKE_PTR(info.guest_mount);
	m->image_depth = info.depth;
	/* The clone shares its extents with the image until either changes. */
	m->attributes = VSS_VOLSNAP_ATTR_DIFFERENTIAL;
	image_info_clear(&info);
	return m->image_file ? 0 : -ENOMEM;
}

static int image_begin_prepare(ProviderMember *m)
{
	_cleanup_free_ char *store = path_parent(m->snapshot_path);
	MountEntry host = { 0 };
	struct statvfs sv;
	int r;

	if (!store)
		return -ENOMEM;
	r = mount_lookup(m->provider_data, &host);
	if (r < 0)
		return r;
	if (statvfs(host.target, &sv) < 0) {
		r = -errno;
	} else if (sv.f_flag & ST_RDONLY) {
		r = VSS_E_PROVIDER_VETO; /* the clone is a write to the host */
	} else {
		r = store_ensure(store, host.fstype);
	}
	mount_entry_clear(&host);
	if (r < 0)
		return r;
	m->state = VSS_SS_PREPARED;
	return 0;
}

static int image_pre_commit(ProviderMember *m)
{
	int fd, r = 0;

	/* Write out what the filesystem in the image and then the image
	 * itself hold in memory, so that the freeze and the clone have
	 * little left to flush. */
	if (m->hold_path) {
		fd = open(m->hold_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (syncfs(fd) < 0)
			r = -errno;
		close(fd);
		if (r < 0)
			return r;
	}
	fd = open(m->provider_data, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fdatasync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0)
		m->state = VSS_SS_PRECOMMITTED;
	return r;
}

static int image_commit(ProviderMember *m)
{
	int src, dst, r = 0;

	src = open(m->provider_data, O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return -errno;
	dst = open(m->snapshot_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (dst < 0) {
		r = -errno;
		close(src);
		return r;
	}
	if (ioctl(dst, FICLONE, src) < 0) {
		r = -errno;
		unlink(m->snapshot_path);
	}
	close(dst);
	close(src);
	if (r == 0)
		m->state = VSS_SS_COMMITTED;
	return r;
}

static int image_delete_snapshot(const char *snapshot_path, const char *provider_data)
{
	struct stat st;

	(void)provider_data;
	if (lstat(snapshot_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISREG(st.st_mode))
		return VSS_E_PROVIDER_VETO; /* not a clone of ours */
	return unlink(snapshot_path) < 0 ? -errno : 0;
}

static int image_snapshot_exists(const char *snapshot_path, const char *provider_data)
{
	struct stat st;

	(void)provider_data;
	return lstat(snapshot_path, &st) == 0 && S_ISREG(st.st_mode);
}

static int image_expose(const char *snapshot_path, const char *provider_data, const char *dir)
{
	_cleanup_free_ char *fstype = probe_fstype(snapshot_path), *dev = NULL;
	int fd, r = 0;

	(void)provider_data;
	if (!fstype)
		return VSS_E_PROVIDER_VETO; /* no filesystem in the clone */
	/* The clone is vss's own private copy, attached writable: a
	 * filesystem that needs its journal replayed gets it replayed into
	 * the clone (VSS's auto-recovery), never into the original. */
	r = loop_attach(snapshot_path, &dev, &fd);
	if (r < 0)
		return r;
	/* An XFS clone carries its origin's UUID, which is mounted already. */
	if (mount(dev, dir, fstype, MS_RDONLY | MS_NODEV | MS_NOSUID, streq(fstype, "xfs") ? "nouuid" : NULL) < 0)
		r = -errno;
	/* Mounted, the device lives as long as the mount (autoclear). */
	close(fd);
	return r;
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
	enum { BATCH = 256 };
	struct fiemap *fm;
	uint64_t start = 0;
	bool last = false;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	fm = malloc(sizeof(*fm) + BATCH * sizeof(struct fiemap_extent));
	if (!fm) {
		close(fd);
		return -ENOMEM;
	}
	while (!last) {
		*fm = (struct fiemap){
			.fm_start = start,
			.fm_length = FIEMAP_MAX_OFFSET - start,
			.fm_flags = sync ? FIEMAP_FLAG_SYNC : 0,
			.fm_extent_count = BATCH,
		};
		if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) {
			r = -errno;
			break;
		}
		if (fm->fm_mapped_extents == 0)
			break;
		for (unsigned i = 0; i < fm->fm_mapped_extents && r == 0; i++) {
			const struct fiemap_extent *e = &fm->fm_extents[i];

			if (!(e->fe_flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC)))
				r = ranges_add(rs, e->fe_physical, e->fe_length);
			last = e->fe_flags & FIEMAP_EXTENT_LAST;
			start = e->fe_logical + e->fe_length;
		}
		if (r < 0)
			break;
	}
	free(fm);
	close(fd);
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
	.is_volume_supported = image_is_volume_supported,
	.locate = image_locate,
	.begin_prepare = image_begin_prepare,
	.pre_commit = image_pre_commit,
	.commit = image_commit,
	.delete_snapshot = image_delete_snapshot,
	.snapshot_exists = image_snapshot_exists,
	.expose = image_expose,
	.space = image_space,
};
