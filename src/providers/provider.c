/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <btrfsutil.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "basic/fd-util.h"
#include "basic/hresult-table.h"
#include "basic/macro.h"
#include "basic/util.h"
#include "providers/mounts.h"
#include "providers/provider.h"
#include "providers/registry.h"

vss_hr provider_result_to_hr(int r)
{
	if (r >= 0)
		return S_OK;
	if (provider_result_is_hr(r)) {
		switch (r) {
		/* The codes a provider may return (docs/PROVIDERS.md). */
		case E_OUTOFMEMORY:
		case E_INVALIDARG:
		case E_ACCESSDENIED:
		case VSS_E_BAD_STATE:
		case VSS_E_OBJECT_NOT_FOUND:
		case VSS_E_INSUFFICIENT_STORAGE:
		case VSS_E_VOLUME_NOT_SUPPORTED:
		case VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER:
		case VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED:
		case VSS_E_PROVIDER_VETO:
		case VSS_E_FLUSH_WRITES_TIMEOUT:
		case VSS_E_HOLD_WRITES_TIMEOUT:
		case VSS_E_NESTED_VOLUME_LIMIT:
		case VSS_E_REBOOT_REQUIRED:
			return r;
		default:
			return VSS_E_UNEXPECTED_PROVIDER_ERROR;
		}
	}
	switch (-r) {
	case ENOSPC:
	case EDQUOT:
		return VSS_E_INSUFFICIENT_STORAGE;
	case ENOMEM:
		return E_OUTOFMEMORY;
	default:
		return VSS_E_UNEXPECTED_PROVIDER_ERROR;
	}
}

const char *provider_result_string(int r, char *buf, size_t size)
{
	if (r >= 0)
		snprintf(buf, size, "success");
	else if (provider_result_is_hr(r))
		snprintf(buf, size, "%s (0x%08x)", vss_hr_name(r), (unsigned)r);
	else
		snprintf(buf, size, "%s", strerror(-r));
	return buf;
}

const provider_ops *provider_find_by_id(const vss_id *id)
{
	size_t n;
	const provider_ops *const *all = provider_registry(&n);

	for (size_t i = 0; i < n; i++)
		if (vss_id_equal(&all[i]->id, id))
			return all[i];
	return NULL;
}

const provider_ops *provider_find_by_name(const char *name)
{
	size_t n;
	const provider_ops *const *all = provider_registry(&n);

	for (size_t i = 0; i < n; i++)
		if (streq(all[i]->name, name))
			return all[i];
	return NULL;
}

void provider_member_init(ProviderMember *m)
{
	*m = (ProviderMember){
		.volume_fd = -1, .hold_fd = -1, .backing_fd = -1, .store_root_fd = -1, .store_fd = -1,
	};
}

void provider_member_free_fields(ProviderMember *m)
{
	m->volume_fd = safe_close(m->volume_fd);
	m->hold_fd = safe_close(m->hold_fd);
	m->backing_fd = safe_close(m->backing_fd);
	m->store_root_fd = safe_close(m->store_root_fd);
	m->store_fd = safe_close(m->store_fd);
	free(m->volume);
	free(m->mount_point);
	free(m->snapshot_path);
	free(m->provider_data);
	free(m->hold_path);
	free(m->backing_file);
	m->volume = m->mount_point = m->snapshot_path = m->provider_data = m->hold_path = m->backing_file = NULL;
}

void volume_info_clear(VolumeInfo *v)
{
	free(v->path);
	free(v->mount_point);
	free(v->fs_type);
	free(v->source);
	safe_close(v->fd);
	*v = (VolumeInfo){ .fd = -1 };
}

typedef int (*member_step_fn)(ProviderMember *m);

static member_step_fn step_fn(const provider_ops *ops, ProviderStep step)
{
	switch (step) {
	case STEP_BEGIN_PREPARE:
		return ops->begin_prepare;
	case STEP_PRE_COMMIT:
		return ops->pre_commit;
	case STEP_COMMIT:
		return ops->commit;
	case STEP_POST_COMMIT:
		return ops->post_commit;
	case STEP_PRE_FINAL_COMMIT:
		return ops->pre_final_commit;
	case STEP_POST_FINAL_COMMIT:
		return ops->post_final_commit;
	case STEP_ABORT:
		return ops->abort;
	default:
		return NULL;
	}
}

int provider_invoke(FaultTable *faults, ProviderStep step, ProviderMember *m)
{
	member_step_fn fn;
	int r;

	r = fault_inject(faults, step, m->index);
	if (r != 0)
		return r;
	fn = step_fn(m->ops, step);
	if (fn)
		return fn(m);
	if (step == STEP_ABORT && m->snapshot_path)
		return m->ops->delete_snapshot(m->snapshot_path, m->provider_data);
	return 0;
}

int provider_invoke_end_prepare(FaultTable *faults, ProviderMember **members, size_t n)
{
	int r;

	if (n == 0)
		return 0;
	r = fault_inject(faults, STEP_END_PREPARE, members[0]->index);
	if (r != 0)
		return r;
	return members[0]->ops->end_prepare ? members[0]->ops->end_prepare(members, n) : 0;
}

int provider_invoke_commit_group(FaultTable *faults, ProviderMember **members, size_t n)
{
	int r;

	if (n == 0)
		return 0;
	r = fault_inject(faults, STEP_COMMIT, members[0]->index);
	return r ?: members[0]->ops->commit_group(members, n);
}

int provider_invoke_delete(FaultTable *faults, const provider_ops *ops,
                           const char *snapshot_path, const char *provider_data)
{
	int r;

	r = fault_inject(faults, STEP_DELETE, 0);
	if (r != 0)
		return r;
	return ops->delete_snapshot(snapshot_path, provider_data);
}

char *store_path(const char *mount_point)
{
	char *store;

	if (asprintf(&store, "%s%s.vss", mount_point, streq(mount_point, "/") ? "" : "/") < 0)
		return NULL;
	return store;
}

int mount_root_open(const char *mount_point, uint64_t mount_id, int *ret_fd)
{
	_cleanup_close_ int fd = -1;
	uint64_t id;
	bool root;
	int r;

	/* Mount points in the mount table are canonical: a symbolic link on
	 * the way is someone else's. */
	fd = open_no_symlinks(AT_FDCWD, mount_point, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	r = fd_mount_id(fd, &id, &root);
	if (r < 0)
		return r;
	if (id != mount_id || !root)
		return -ESTALE;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int store_verify(int fd, const char **ret_reason)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		*ret_reason = "the snapshot store .vss is not a directory";
	else if (st.st_uid != 0)
		*ret_reason = "the snapshot store .vss is not owned by root";
	else if ((st.st_mode & 0077) != 0)
		*ret_reason = "the snapshot store .vss is open to group or others (it must be mode 0700)";
	else
		return 0;
	return VSS_E_PROVIDER_VETO;
}

/* Open root_fd's store without following a symbolic link; -ENOENT when
 * there is none. */
static int store_open_existing(int root_fd, int *ret_fd, const char **ret_reason)
{
	int fd, r;

	fd = openat(root_fd, STORE_NAME, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		struct stat st;

		if (errno != ELOOP && errno != ENOTDIR)
			return -errno;
		*ret_reason = fstatat(root_fd, STORE_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)
				      ? "the snapshot store .vss is a symbolic link"
				      : "the snapshot store .vss is not a directory";
		return VSS_E_PROVIDER_VETO;
	}
	r = store_verify(fd, ret_reason);
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int store_check(int root_fd, const char **ret_reason)
{
	int fd = -1, r;

	r = store_open_existing(root_fd, &fd, ret_reason);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	close(fd);
	return 0;
}

int store_open(int root_fd, int *ret_fd, const char **ret_reason)
{
	_cleanup_close_ int fd = -1;
	struct statfs sfs;
	struct stat st;
	int r;

	r = store_open_existing(root_fd, ret_fd, ret_reason);
	if (r != -ENOENT)
		return r;
	if (fstatfs(root_fd, &sfs) < 0)
		return -errno;
	/* A subvolume on btrfs, so that snapshots of the volume holding it
	 * leave it out. Someone making a .vss first wins the race and gets
	 * refused below. */
	if (sfs.f_type == BTRFS_SUPER_MAGIC) {
		if (btrfs_util_create_subvolume_fd(root_fd, STORE_NAME, 0, NULL, NULL) != BTRFS_UTIL_OK &&
		    errno != EEXIST)
			return -errno;
	} else if (mkdirat(root_fd, STORE_NAME, 0700) < 0 && errno != EEXIST) {
		return -errno;
	}
	fd = openat(root_fd, STORE_NAME, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ELOOP && errno != ENOTDIR)
			return -errno;
		*ret_reason = "the snapshot store .vss is not a directory";
		return VSS_E_PROVIDER_VETO;
	}
	/* Snapshots keep their files' modes, but old paths and names should
	 * not become visible to everyone through the store. */
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_uid == 0 && fchmod(fd, 0700) < 0)
		return -errno;
	r = store_verify(fd, ret_reason);
	if (r < 0)
		return r;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int store_open_path(const char *store_path, int *ret_fd)
{
	const char *base = strrchr(store_path, '/'), *reason = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	if (!base || !streq(base + 1, STORE_NAME))
		return VSS_E_PROVIDER_VETO; /* not a path vss records */
	fd = open_no_symlinks(AT_FDCWD, store_path, O_RDONLY | O_DIRECTORY, 0);
	if (fd == -ELOOP)
		return VSS_E_PROVIDER_VETO;
	if (fd < 0)
		return fd;
	r = store_verify(fd, &reason);
	if (r < 0)
		return r;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int store_open_for(const char *snapshot_path, int *ret_fd, const char **ret_name)
{
	_cleanup_free_ char *store = path_parent(snapshot_path);
	const char *name = strrchr(snapshot_path, '/');
	int r;

	if (!store)
		return -ENOMEM;
	if (!name || !name[1])
		return VSS_E_PROVIDER_VETO; /* not a path vss records */
	r = store_open_path(store, ret_fd);
	if (r < 0)
		return r;
	*ret_name = name + 1;
	return 0;
}

int store_list(int store_fd, bool (*is_snapshot)(int store_fd, const struct dirent *de), provider_found_fn found,
	       void *userdata)
{
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	fd = fcntl(store_fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	while ((errno = 0, de = readdir(d))) {
		ProviderSnapshot s = { .name = de->d_name };

		if (streq(de->d_name, ".") || streq(de->d_name, "..") || !is_snapshot(store_fd, de))
			continue;
		if (VSS_FAILED(vss_id_parse(de->d_name, &s.snapshot_id)))
			s.snapshot_id = (vss_id){ 0 };
		r = found(&s, userdata);
		if (r < 0)
			break;
	}
	if (!de && errno > 0)
		r = -errno;
	closedir(d);
	return r;
}

int store_delete(const char *snapshot_path, int (*delete_in)(int store_fd, const char *name))
{
	_cleanup_close_ int store = -1;
	const char *name;
	int r;

	r = store_open_for(snapshot_path, &store, &name);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	return delete_in(store, name);
}

bool path_in_store(const char *path)
{
	size_t n = strlen(STORE_NAME);

	for (const char *p = path; (p = strstr(p, "/" STORE_NAME)); p++)
		if (p[1 + n] == '\0' || p[1 + n] == '/')
			return true;
	return false;
}

bool snapshot_in_store(const char *snapshot_path)
{
	const char *slash = strrchr(snapshot_path, '/');
	size_t n = strlen(STORE_NAME);

	return slash && slash - snapshot_path > (ptrdiff_t)n && snapshot_path[0] == '/' &&
	       strncmp(slash - n, STORE_NAME, n) == 0 && slash[-n - 1] == '/';
}

int revert_fail(ProviderRevert *r, int e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
	return e;
}

int revert_unmount_step(ProviderRevert *r, bool done)
{
	int k = fault_revert_step(1);

	if (k == 0 && !done) {
		k = mount_plan_unmount(r->plan, r->force_unmount);
		if (k == -EBUSY)
			return revert_fail(r, k, "%s is in use (nothing was changed)", r->volume);
		if (k == -ESTALE)
			return revert_fail(r, -EIO, "something else is mounted on %s now", r->volume);
	}
	if (k < 0)
		return revert_fail(r, k, "cannot unmount %s: %s", r->volume, strerror(-k));
	return 0;
}
