/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The btrfs provider. A volume is a btrfs subvolume (a mount point or a
 * subvolume directory); its snapshot is a read-only snapshot in the store
 * "<mount point>/.vss/", a subvolume of the same filesystem that later
 * snapshots of the volume do not contain.
 *
 * btrfs cannot take a snapshot while frozen (the snapshot needs a transaction
 * commit), so this provider cannot hold writes: pre_commit syncs the
 * filesystem and commit snapshots at once. Each member is then
 * crash-consistent on its own, not at one instant with the others.
 */

#include <btrfsutil.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/magic.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "basic/fd-util.h"
#include "basic/id.h"
#include "basic/macro.h"
#include "basic/log.h"
#include "providers/mounts.h"
#include "providers/provider.h"

/* libbtrfsutil reports what failed in its result and why in errno. */
static int errno_of(enum btrfs_util_error e)
{
	if (e == BTRFS_UTIL_OK)
		return 0;
	return errno > 0 ? -errno : -EIO;
}

static int btrfs_is_volume_supported(const VolumeInfo *v)
{
	if (!streq(v->fs_type, "btrfs") || !v->is_directory)
		return 0;
	return btrfs_util_is_subvolume_fd(v->fd) == BTRFS_UTIL_OK;
}

/* The snapshot's name in its store: the last part of snapshot_path. */
static const char *snapshot_name(const ProviderMember *m)
{
	return strrchr(m->snapshot_path, '/') + 1;
}

static int btrfs_locate(ProviderMember *m)
{
	_cleanup_free_ char *store = store_path(m->mount_point);
	char buf[VSS_ID_STRING_MAX];
	int r;

	if (!store || asprintf(&m->snapshot_path, "%s/%s", store, vss_id_format(&m->snapshot_id, buf)) < 0) {
		m->snapshot_path = NULL;
		return -ENOMEM;
	}
	/* The store is on the volume's own mount, found from its fd. */
	r = mount_root_open(m->mount_point, m->volume_mount_id, &m->store_root_fd);
	if (r < 0)
		return r;
	r = store_check(m->store_root_fd, &m->reason);
	if (r < 0)
		return r;
	m->attributes = VSS_VOLSNAP_ATTR_DIFFERENTIAL | VSS_VOLSNAP_ATTR_NO_AUTORECOVERY;
	return 0;
}

static int btrfs_begin_prepare(ProviderMember *m)
{
	struct statvfs sv;
	int r;

	if (fstatvfs(m->volume_fd, &sv) < 0)
		return -errno;
	if (sv.f_flag & ST_RDONLY)
		return VSS_E_PROVIDER_VETO; /* a snapshot is a write */
	if (m->store_fd < 0) {
		r = store_open(m->store_root_fd, &m->store_fd, &m->reason);
		if (r < 0)
			return r;
	}
	m->state = VSS_SS_PREPARED;
	return 0;
}

static int btrfs_pre_commit(ProviderMember *m)
{
	int r = 0;

	/* Write out dirty data now, so that the snapshot ioctl in commit has
	 * little left to flush and the members are cut close together (and
	 * the other members' writes are held for less time). A member alone
	 * in its set has nothing to be close to: the snapshot ioctl flushes
	 * the subvolume's dirty data and commits the transaction itself, so a
	 * sync first would only make it pay for a second commit
	 * (docs/BENCHMARKS.md). */
	if (m->set_size != 1)
		r = fault_point(POINT_SYNC) ?: errno_of(btrfs_util_sync_fd(m->volume_fd));

	if (r == 0)
		m->state = VSS_SS_PRECOMMITTED;
	return r;
}

static int btrfs_commit(ProviderMember *m)
{
	int r = fault_point(POINT_SNAPSHOT)
			?: errno_of(btrfs_util_create_snapshot_fd2(m->volume_fd, m->store_fd, snapshot_name(m),
								   BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY, NULL, NULL));

	if (r == 0)
		m->state = VSS_SS_COMMITTED;
	return r;
}

/* Open a store entry that must be a subvolume; -ENOENT when it is gone. */
static int open_snapshot(int store_fd, const char *name, int *ret_fd)
{
	int fd = openat(store_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? -ENOENT : errno == ELOOP || errno == ENOTDIR ? VSS_E_PROVIDER_VETO : -errno;
	if (btrfs_util_is_subvolume_fd(fd) != BTRFS_UTIL_OK) {
		close(fd);
		return VSS_E_PROVIDER_VETO; /* not ours to touch */
	}
	*ret_fd = fd;
	return 0;
}

static int delete_in(int store_fd, const char *name)
{
	_cleanup_close_ int fd = -1;
	int r;

	r = open_snapshot(store_fd, name, &fd);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	return fault_point(POINT_REMOVE) ?: errno_of(btrfs_util_delete_subvolume_fd(store_fd, name, 0));
}

static int btrfs_abort(ProviderMember *m)
{
	/* Nothing can have been made before the store was opened. */
	return m->store_fd >= 0 ? delete_in(m->store_fd, snapshot_name(m)) : 0;
}

/* What btrfs_util_is_subvolume_fd() asks (the store being on btrfs, checked
 * once), from one fstatat of the entry instead of an open. */
static bool is_subvolume_entry(int store_fd, const struct dirent *de)
{
	struct stat st;

	if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
		return false;
	return fstatat(store_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
	       st.st_ino == BTRFS_FIRST_FREE_OBJECTID;
}

/* The subvolumes right in the subvolume open as fd (at any depth of its
 * directories, not in subvolumes below), from the ROOT_REF items of the
 * subvolume in the root tree (a search returns thousands at once), without
 * a lookup of each entry: a stat instantiates each snapshot's tree root,
 * some 5 s of the first start after a mount with 100,000 snapshots. Root
 * only (vssd is). fn gets the inode of the directory holding each and its
 * name. -ENOTTY when fd is not a subvolume's root. */
static int root_refs(int fd, int (*fn)(uint64_t dirid, const char *name, void *userdata), void *userdata)
{
	enum { BUFFER = 256 * 1024 };
	_cleanup_free_ struct btrfs_ioctl_search_args_v2 *args = NULL;
	uint64_t id;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_ino != BTRFS_FIRST_FREE_OBJECTID)
		return -ENOTTY;
	if (btrfs_util_subvolume_id_fd(fd, &id) != BTRFS_UTIL_OK)
		return errno > 0 ? -errno : -EIO;
	args = malloc(sizeof(*args) + BUFFER);
	if (!args)
		return -ENOMEM;
	args->key = (struct btrfs_ioctl_search_key){
		.tree_id = BTRFS_ROOT_TREE_OBJECTID,
		.min_objectid = id,
		.max_objectid = id,
		.min_type = BTRFS_ROOT_REF_KEY,
		.max_type = BTRFS_ROOT_REF_KEY,
		.max_offset = UINT64_MAX,
		.max_transid = UINT64_MAX,
	};
	for (;;) {
		uint64_t last = 0;
		size_t off = 0;

		args->key.nr_items = UINT32_MAX;
		args->buf_size = BUFFER;
		if (ioctl(fd, BTRFS_IOC_TREE_SEARCH_V2, args) < 0)
			return -errno;
		if (args->key.nr_items == 0)
			return 0;
		for (uint32_t i = 0; i < args->key.nr_items; i++) {
			struct btrfs_ioctl_search_header sh;
			struct btrfs_root_ref ref;

			if (off + sizeof(sh) > BUFFER)
				return -EIO;
			memcpy(&sh, (const char *)args->buf + off, sizeof(sh));
			off += sizeof(sh);
			if (off + sh.len > BUFFER)
				return -EIO;
			last = sh.offset;
			if (sh.objectid == id && sh.type == BTRFS_ROOT_REF_KEY && sh.len >= sizeof(ref)) {
				char name[NAME_MAX + 1];
				uint16_t len;

				memcpy(&ref, (const char *)args->buf + off, sizeof(ref));
				len = le16toh(ref.name_len);
				if (len <= NAME_MAX && sizeof(ref) + len <= sh.len) {
					int r;

					memcpy(name, (const char *)args->buf + off + sizeof(ref), len);
					name[len] = '\0';
					r = fn(le64toh(ref.dirid), name, userdata);
					if (r < 0)
						return r;
				}
			}
			off += sh.len;
		}
		if (last == UINT64_MAX)
			return 0;
		args->key.min_offset = last + 1;
	}
}

typedef struct StoreListing {
	provider_found_fn found;
	void *userdata;
} StoreListing;

static int store_ref(uint64_t dirid, const char *name, void *userdata)
{
	StoreListing *l = userdata;
	ProviderSnapshot ps = { .name = name };

	/* In the store's top directory, not below it. */
	if (dirid != BTRFS_FIRST_FREE_OBJECTID)
		return 0;
	if (VSS_FAILED(vss_id_parse(name, &ps.snapshot_id)))
		ps.snapshot_id = VSS_ID_NULL;
	return l->found(&ps, l->userdata);
}

static int list_root_refs(int store_fd, provider_found_fn found, void *userdata)
{
	return root_refs(store_fd, store_ref, &(StoreListing){ .found = found, .userdata = userdata });
}

static int btrfs_list_snapshots(const char *store_path, provider_found_fn found, void *userdata)
{
	_cleanup_close_ int store = -1;
	struct statfs sf;
	int r;

	r = store_open_path(store_path, &store);
	if (r < 0)
		return r;
	if (fstatfs(store, &sf) < 0)
		return -errno;
	if (sf.f_type != BTRFS_SUPER_MAGIC)
		return 0; /* no subvolume in it */
	r = list_root_refs(store, found, userdata);
	/* A store that is a plain directory: each entry asked. */
	if (r == -ENOTTY)
		r = store_list(store, is_subvolume_entry, found, userdata);
	return r;
}

static int btrfs_delete_snapshot(const char *snapshot_path, const char *provider_data)
{
	(void)provider_data;
	return store_delete(snapshot_path, delete_in);
}

static int btrfs_expose(const char *snapshot_path, const char *provider_data, int dir_fd)
{
	_cleanup_close_ int store = -1, snap = -1, tree = -1;
	const char *name;
	int r;

	(void)provider_data;
	r = store_open_for(snapshot_path, &store, &name);
	if (r < 0)
		return r;
	r = open_snapshot(store, name, &snap);
	if (r < 0)
		return r;
	/* A detached copy of the snapshot's tree, made read-only, nosuid and
	 * nodev (it holds whatever the volume held), then put on the fd. */
	tree = open_tree(snap, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	if (tree < 0)
		return -errno;
	if (mount_setattr(tree, "", AT_EMPTY_PATH,
			  &(struct mount_attr){ .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV },
			  sizeof(struct mount_attr)) < 0)
		return -errno;
	r = fault_point(POINT_MOUNT);
	if (r < 0)
		return r;
	if (move_mount(tree, "", dir_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return -errno;
	return 0;
}

static int btrfs_is_exposed_at(const char *snapshot_path, const char *provider_data, int dir_fd)
{
	_cleanup_close_ int store = -1, snap = -1;
	struct stat a, b;
	const char *name;

	(void)provider_data;
	/* A subvolume has a device number of its own: the mount on dir_fd
	 * shows this snapshot when it shows the snapshot's root. */
	if (store_open_for(snapshot_path, &store, &name) < 0 || open_snapshot(store, name, &snap) < 0)
		return 0;
	return fstat(snap, &a) == 0 && fstat(dir_fd, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* A subvolume's qgroup counters (referenced, exclusive); -ENOENT when quotas
 * are off. */
static int qgroup_info(int fd, uint64_t *ret_rfer, uint64_t *ret_excl)
{
	struct btrfs_ioctl_search_args args = { 0 };
	struct btrfs_ioctl_search_key *sk = &args.key;
	const struct btrfs_ioctl_search_header *h;
	const struct btrfs_qgroup_info_item *item;
	uint64_t id;
	int r = 0;

	if (btrfs_util_subvolume_id_fd(fd, &id) != BTRFS_UTIL_OK)
		return errno > 0 ? -errno : -EIO;
	sk->tree_id = BTRFS_QUOTA_TREE_OBJECTID;
	sk->min_type = sk->max_type = BTRFS_QGROUP_INFO_KEY;
	sk->min_offset = sk->max_offset = id; /* level-0 qgroup = the subvolume */
	sk->max_transid = UINT64_MAX;
	sk->nr_items = 1;
	if (ioctl(fd, BTRFS_IOC_TREE_SEARCH, &args) < 0)
		r = -errno;
	else if (sk->nr_items == 0)
		r = -ENOENT;
	if (r < 0)
		return r;
	h = (const struct btrfs_ioctl_search_header *)args.buf;
	item = (const struct btrfs_qgroup_info_item *)(h + 1);
	*ret_rfer = le64toh(item->rfer);
	*ret_excl = le64toh(item->excl);
	return 0;
}

/* From btrfs quota groups when they are on: what only a snapshot holds is its
 * exclusive size. Without quotas there is no cheap answer. */
static int btrfs_space(char *const *snapshot_paths, size_t n, const char *provider_data, int64_t *ret_used,
                       int64_t *ret_allocated)
{
	uint64_t used = 0, allocated = 0;

	(void)provider_data;
	for (size_t i = 0; i < n; i++) {
		_cleanup_close_ int store = -1, fd = -1;
		uint64_t rfer = 0, excl = 0;
		const char *name;
		int r;

		/* Each snapshot through its store, as recorded. */
		r = store_open_for(snapshot_paths[i], &store, &name);
		if (r >= 0)
			r = open_snapshot(store, name, &fd);
		/* Accounting is brought up to date by a transaction commit. */
		if (r >= 0 && i == 0)
			r = fault_point(POINT_SYNC) ?: errno_of(btrfs_util_sync_fd(fd));
		if (r >= 0)
			r = qgroup_info(fd, &rfer, &excl);

		if (r == -ENOENT) {
			*ret_used = *ret_allocated = -1;
			return 0;
		}
		if (r < 0)
			return r;
		used += excl;
		allocated += rfer;
	}
	*ret_used = (int64_t)used;
	*ret_allocated = (int64_t)allocated;
	return 0;
}

/*
 * Revert: the volume, a subvolume mounted as its mount's root, is replaced
 * by a writable snapshot of the snapshot, made next to it under a temporary
 * name (btrfs.temp). In steps, each one done again or found done when a
 * revert is resumed from its plan:
 *
 *   1 the volume is unmounted (EBUSY when in use, and nothing changed);
 *   2 the writable snapshot is made (the snapshot's store lives in the
 *     volume, so a snapshot of it has an empty directory in its place);
 *   3 the store moves into it, with every snapshot;
 *   4 the two are swapped with one RENAME_EXCHANGE, and the filesystem
 *     committed: the commit point. Before it, the volume's own subvolume is
 *     still where it was; after it, the volume is the snapshot's copy;
 *   5 the volume is mounted again by its subvolume's path (its id changed);
 *   6 the old subvolume, now under the temporary name, is deleted.
 *
 * What was done is read from the disk, never guessed: the subvolume at the
 * volume's name is the volume's own as long as its UUID is the plan's
 * (btrfs.uuid).
 */
#define REVERT_SUFFIX ".vss-revert-"

static void uuid_hex(const uint8_t uuid[16], char buf[33])
{
	for (int i = 0; i < 16; i++)
		sprintf(buf + 2 * i, "%02x", uuid[i]);
}

static int subvolume_uuids(int fd, char uuid[33], char parent_uuid[33])
{
	struct btrfs_util_subvolume_info info;
	int r = errno_of(btrfs_util_subvolume_info_fd(fd, 0, &info));

	if (r < 0)
		return r;
	if (uuid)
		uuid_hex(info.uuid, uuid);
	if (parent_uuid)
		uuid_hex(info.parent_uuid, parent_uuid);
	return 0;
}

typedef struct Nested {
	char name[NAME_MAX + 1];
	bool found;
} Nested;

/* A subvolume in the volume other than its store: its snapshots do not hold
 * it, so a revert would lose it. */
static int nested_ref(uint64_t dirid, const char *name, void *userdata)
{
	Nested *n = userdata;

	if (dirid == BTRFS_FIRST_FREE_OBJECTID && streq(name, STORE_NAME))
		return 0;
	snprintf(n->name, sizeof(n->name), "%s", name);
	n->found = true;
	return -ECANCELED;
}

static int btrfs_revert_plan(ProviderRevert *r)
{
	_cleanup_free_ char *subvol = NULL, *root = NULL, *store = NULL, *want = NULL;
	_cleanup_close_ int fd = -1, store_fd = -1, snap = -1;
	char uuid[33], snap_uuid[33], who[256], temp[NAME_MAX + 1];
	const char *name, *base;
	Nested nested = { .found = false };
	uint64_t id, mount_id;
	struct stat st;
	int k;

	k = mount_plan_record(r->volume, r->plan, sizeof(r->plan));
	if (k == -ENOTDIR)
		return revert_fail(r, -EOPNOTSUPP, "%s is not the root of a mount: a revert replaces the subvolume "
				   "a mount shows", r->volume);
	if (k < 0)
		return revert_fail(r, k, "cannot read the mount of %s: %s", r->volume, strerror(-k));
	fd = open_no_symlinks(AT_FDCWD, r->volume, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return revert_fail(r, fd, "cannot open %s: %s", r->volume, strerror(-fd));
	if (fstat(fd, &st) < 0)
		return revert_fail(r, -errno, "cannot stat %s: %m", r->volume);
	if (st.st_ino != BTRFS_FIRST_FREE_OBJECTID || btrfs_util_subvolume_id_fd(fd, &id) != BTRFS_UTIL_OK)
		return revert_fail(r, -EOPNOTSUPP, "%s is not a btrfs subvolume's root", r->volume);
	if (id == BTRFS_FS_TREE_OBJECTID)
		return revert_fail(r, -EOPNOTSUPP,
				   "%s is the top-level subvolume (5), which cannot be replaced: revert needs the "
				   "volume to be a subvolume mounted with subvol=", r->volume);
	k = errno_of(btrfs_util_subvolume_path_fd(fd, id, &subvol));
	if (k < 0)
		return revert_fail(r, k, "cannot find the path of %s's subvolume: %s", r->volume, strerror(-k));
	/* Mounted as itself, not a directory of it or of another subvolume. */
	if (plan_get(r->plan, "mount.root", &root) < 0 || asprintf(&want, "/%s", subvol) < 0 ||
	    !streq(root, want))
		return revert_fail(r, -EOPNOTSUPP, "%s shows %s of its filesystem, not the subvolume %s", r->volume,
				   root ?: "?", subvol);
	k = root_refs(fd, nested_ref, &nested);
	if (nested.found)
		return revert_fail(r, -EOPNOTSUPP,
				   "%s holds the subvolume %s, which its snapshots do not contain; a revert would "
				   "lose it", r->volume, nested.name);
	if (k < 0)
		return revert_fail(r, k, "cannot list the subvolumes in %s: %s", r->volume, strerror(-k));

	/* The snapshot: in this volume's own store. */
	store = store_path(r->volume);
	if (!store)
		return -ENOMEM;
	if (strncmp(r->snapshot_path, store, strlen(store)) != 0 || r->snapshot_path[strlen(store)] != '/')
		return revert_fail(r, -EOPNOTSUPP, "%s is not in the store of %s", r->snapshot_path, r->volume);
	k = store_open_for(r->snapshot_path, &store_fd, &name);
	if (k >= 0)
		k = open_snapshot(store_fd, name, &snap);
	if (k == -ENOENT)
		return revert_fail(r, -ENOENT, "the snapshot %s is gone", r->snapshot_path);
	if (k < 0)
		return revert_fail(r, k < -4096 ? -EIO : k, "cannot open the snapshot %s", r->snapshot_path);
	k = subvolume_uuids(fd, uuid, NULL);
	if (k >= 0)
		k = subvolume_uuids(snap, snap_uuid, NULL);
	if (k < 0)
		return revert_fail(r, k, "cannot read the subvolumes' UUIDs: %s", strerror(-k));

	base = strrchr(subvol, '/');
	base = base ? base + 1 : subvol;
	if (snprintf(temp, sizeof(temp), ".%s" REVERT_SUFFIX "%s", base, name) >= (int)sizeof(temp))
		return revert_fail(r, -EOPNOTSUPP, "the subvolume's name %s is too long for a temporary name next to it",
				   base);
	k = plan_set(r->plan, sizeof(r->plan), "btrfs.subvol", subvol);
	if (k >= 0)
		k = plan_set(r->plan, sizeof(r->plan), "btrfs.uuid", uuid);
	if (k >= 0)
		k = plan_set(r->plan, sizeof(r->plan), "btrfs.snapshot-uuid", snap_uuid);
	if (k >= 0)
		k = plan_set(r->plan, sizeof(r->plan), "btrfs.temp", temp);
	if (k < 0)
		return revert_fail(r, k, "the plan does not fit: %s", strerror(-k));

	/* In use: a hint now, with who; the unmount decides. */
	if (!r->force_unmount && fd_mount_id(fd, &mount_id, NULL) >= 0) {
		fd = safe_close(fd);
		snap = safe_close(snap);
		store_fd = safe_close(store_fd);
		if (mount_users(mount_id, r->volume, who, sizeof(who)) > 0)
			return revert_fail(r, -EBUSY, "%s is in use: %s", r->volume, who);
	}
	return 0;
}

/* The subvolume at name in dir_fd: 1 with its uuids, 0 when there is none. */
static int subvolume_at(int dir_fd, const char *name, char uuid[33], char parent_uuid[33])
{
	_cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	int r;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_ino != BTRFS_FIRST_FREE_OBJECTID)
		return -ENOTTY;
	r = subvolume_uuids(fd, uuid, parent_uuid);
	return r < 0 ? r : 1;
}

/* The store (a subvolume named STORE_NAME) in the subvolume at name: 1 when
 * it is there, 0 when not. */
static int store_in(int dir_fd, const char *name)
{
	_cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstatat(fd, STORE_NAME, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	return S_ISDIR(st.st_mode) && st.st_ino == BTRFS_FIRST_FREE_OBJECTID;
}

static int btrfs_revert(ProviderRevert *r)
{
	_cleanup_free_ char *subvol = NULL, *uuid = NULL, *snap_uuid = NULL, *temp = NULL, *parent = NULL,
			    *subvol_opt = NULL;
	_cleanup_close_ int top = -1, dir = -1;
	const char *name, *snap_name = strrchr(r->snapshot_path, '/');
	char now[33], now_parent[33];
	bool swapped;
	int k;

	if (plan_get(r->plan, "btrfs.subvol", &subvol) < 0 || plan_get(r->plan, "btrfs.uuid", &uuid) < 0 ||
	    plan_get(r->plan, "btrfs.snapshot-uuid", &snap_uuid) < 0 || plan_get(r->plan, "btrfs.temp", &temp) < 0 ||
	    !snap_name)
		return revert_fail(r, -EINVAL, "the revert's plan is not one of the btrfs provider's");
	snap_name++;
	/* The whole filesystem, on a mount of vssd's own that nobody sees:
	 * the volume's parent directory is outside the volume. */
	k = mount_plan_open(r->plan, NULL, (const char *const[]){ "subvol", "subvolid", NULL },
			    (const char *const[]){ "subvolid=5", NULL }, &top);
	if (k < 0)
		return revert_fail(r, k, "cannot mount the filesystem of %s: %s", r->volume, strerror(-k));
	/* Opened for real: the mount's fd is an O_PATH one, which takes no
	 * ioctl. */
	name = strrchr(subvol, '/');
	if (name) {
		parent = strndup(subvol, (size_t)(name - subvol));
		name++;
		if (!parent)
			return -ENOMEM;
	} else
		name = subvol;
	dir = openat(top, parent ?: ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir < 0)
		return revert_fail(r, -errno, "cannot open the directory holding %s: %m", subvol);

	k = subvolume_at(dir, name, now, now_parent);
	if (k <= 0)
		return revert_fail(r, k ?: -ENOENT, "the subvolume %s is gone", subvol);
	swapped = !streq(now, uuid);
	if (swapped && !streq(now_parent, snap_uuid))
		return revert_fail(r, -EIO, "the subvolume %s is neither the volume nor its revert: changed by "
				   "someone else; left as it is", subvol);

	k = revert_unmount_step(r, swapped);
	if (k < 0)
		return k;

	k = fault_revert_step(2);
	if (k == 0 && !swapped) {
		k = subvolume_at(dir, temp, now, now_parent);
		if (k > 0 && !streq(now_parent, snap_uuid))
			return revert_fail(r, -EEXIST, "%s next to %s is not this revert's", temp, subvol);
		if (k == 0) {
			_cleanup_close_ int store = -1, snap = -1;
			_cleanup_free_ char *store_rel = NULL;

			/* The store is in the volume, or already moved. */
			k = store_in(dir, name);
			if (k >= 0 && asprintf(&store_rel, "%s/" STORE_NAME, k > 0 ? name : temp) < 0)
				return -ENOMEM;
			if (k >= 0)
				store = openat(dir, store_rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (k >= 0 && store < 0)
				k = -errno;
			if (k >= 0)
				k = open_snapshot(store, snap_name, &snap);
			if (k == -ENOENT)
				return revert_fail(r, -ENOENT, "the snapshot %s is gone", r->snapshot_path);
			if (k >= 0)
				k = fault_point(POINT_SNAPSHOT)
						?: errno_of(btrfs_util_create_snapshot_fd2(snap, dir, temp, 0, NULL, NULL));
		}
	}
	if (k < 0)
		return revert_fail(r, k < -4096 ? -EIO : k, "cannot make the writable copy of %s: %s",
				   r->snapshot_path, k < -4096 ? "not a snapshot of vss's" : strerror(-k));

	k = fault_revert_step(3);
	if (k == 0 && !swapped && (k = store_in(dir, name)) > 0) {
		_cleanup_close_ int from = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC),
				    to = openat(dir, temp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		/* The copy holds an empty directory where the store was. */
		if (from < 0 || to < 0)
			k = -errno;
		else if (unlinkat(to, STORE_NAME, AT_REMOVEDIR) < 0 && errno != ENOENT)
			k = -errno;
		else if (renameat(from, STORE_NAME, to, STORE_NAME) < 0)
			k = -errno;
		else
			k = 0;
	}
	if (k < 0)
		return revert_fail(r, k, "cannot move the snapshot store into the copy: %s", strerror(-k));

	k = fault_revert_step(4);
	if (k == 0 && !swapped) {
		if (renameat2(dir, name, dir, temp, RENAME_EXCHANGE) < 0)
			k = -errno;
		/* Durable before the volume is shown again. */
		if (k == 0)
			k = fault_point(POINT_SYNC) ?: errno_of(btrfs_util_sync_fd(dir));
	}
	if (k < 0)
		return revert_fail(r, k, "cannot put the copy in the volume's place: %s", strerror(-k));

	k = fault_revert_step(5);
	if (k == 0 && asprintf(&subvol_opt, "subvol=/%s", subvol) < 0)
		return -ENOMEM;
	if (k == 0)
		k = mount_plan_mount(r->plan, NULL, (const char *const[]){ "subvol", "subvolid", NULL },
				     (const char *const[]){ subvol_opt, NULL });
	if (k < 0)
		return revert_fail(r, k, "the volume holds the snapshot now, but cannot be mounted again on %s: %s",
				   r->volume, strerror(-k));

	k = fault_revert_step(6);
	if (k == 0 && (k = subvolume_at(dir, temp, now, NULL)) > 0) {
		if (!streq(now, uuid))
			return revert_fail(r, -EIO, "%s next to %s is not the volume's old subvolume; left as it is",
					   temp, subvol);
		k = fault_point(POINT_REMOVE) ?: errno_of(btrfs_util_delete_subvolume_fd(dir, temp, 0));
	}
	if (k < 0)
		return revert_fail(r, k, "the volume is reverted, but its old subvolume %s cannot be deleted: %s", temp,
				   strerror(-k));
	return 0;
}

const provider_ops btrfs_provider = {
	.version = PROVIDER_OPS_VERSION,
	.name = "btrfs",
	.version_string = "1.0",
	/* {497f1270-cb7a-4e25-a12c-7b3bcf6291e3} */
	.id = { { 0x49, 0x7f, 0x12, 0x70, 0xcb, 0x7a, 0x4e, 0x25, 0xa1, 0x2c, 0x7b, 0x3b, 0xcf, 0x62, 0x91, 0xe3 } },
	/* {1fd4e35a-faef-4b9b-aae7-2e9bad919f8e} */
	.version_id = { { 0x1f, 0xd4, 0xe3, 0x5a, 0xfa, 0xef, 0x4b, 0x9b, 0xaa, 0xe7, 0x2e, 0x9b, 0xad, 0x91, 0x9f, 0x8e } },
	.class_id = { { 0x49, 0x7f, 0x12, 0x70, 0xcb, 0x7a, 0x4e, 0x25, 0xa1, 0x2c, 0x7b, 0x3b, 0xcf, 0x62, 0x91, 0xe3 } },
	.type = VSS_PROV_SOFTWARE,
	.is_volume_supported = btrfs_is_volume_supported,
	.locate = btrfs_locate,
	.begin_prepare = btrfs_begin_prepare,
	.pre_commit = btrfs_pre_commit,
	.commit = btrfs_commit,
	.abort = btrfs_abort,
	.delete_snapshot = btrfs_delete_snapshot,
	.list_snapshots = btrfs_list_snapshots,
	.expose = btrfs_expose,
	.is_exposed_at = btrfs_is_exposed_at,
	.space = btrfs_space,
	.revert_plan = btrfs_revert_plan,
	.revert = btrfs_revert,
};
