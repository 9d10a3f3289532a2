/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <btrfsutil.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "basic/hresult-table.h"
#include "basic/macro.h"
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

void provider_member_free_fields(ProviderMember *m)
{
	free(m->volume);
	free(m->mount_point);
	free(m->snapshot_path);
	free(m->provider_data);
	free(m->hold_path);
	free(m->image_file);
	m->volume = m->mount_point = m->snapshot_path = m->provider_data = m->hold_path = m->image_file = NULL;
}

void volume_info_clear(VolumeInfo *v)
{
	free(v->path);
	free(v->mount_point);
	free(v->fs_type);
	free(v->source);
	*v = (VolumeInfo){ 0 };
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

int store_ensure(const char *store, const char *fstype)
{
	struct stat st;

	if (lstat(store, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : VSS_E_PROVIDER_VETO;
	if (errno != ENOENT)
		return -errno;
	if (streq(fstype, "btrfs")) {
		if (btrfs_util_create_subvolume(store, 0, NULL, NULL) != BTRFS_UTIL_OK && errno != EEXIST)
			return -errno;
	} else if (mkdir(store, 0700) < 0 && errno != EEXIST) {
		return -errno;
	}
	/* Snapshots keep their files' modes, but old paths and names should
	 * not become visible to everyone through the store. */
	if (chmod(store, 0700) < 0)
		return -errno;
	return 0;
}
