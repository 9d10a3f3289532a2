/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "basic/macro.h"
#include "basic/util.h"
#include "providers/mounts.h"
#include "providers/provider.h"

vss_hr volume_resolve(const char *path, VolumeInfo *ret)
{
	VolumeInfo v = { 0 };
	MountEntry e = { 0 };
	struct stat st;
	int r;

	if (!path || path[0] == '\0')
		return E_INVALIDARG;
	v.path = realpath(path, NULL);
	if (!v.path)
		return errno == ENOMEM ? E_OUTOFMEMORY : VSS_E_OBJECT_NOT_FOUND;
	if (stat(v.path, &st) < 0) {
		volume_info_clear(&v);
		return VSS_E_OBJECT_NOT_FOUND;
	}
	v.is_directory = S_ISDIR(st.st_mode);
	r = mount_lookup(v.path, &e);
	if (r < 0) {
		volume_info_clear(&v);
		return r == -ENOMEM ? E_OUTOFMEMORY : VSS_E_UNEXPECTED;
	}
	v.mount_point = TAKE_PTR(e.target);
	v.fs_type = TAKE_PTR(e.fstype);
	v.source = TAKE_PTR(e.source);
	v.is_mount_point = streq(v.mount_point, v.path);
	*ret = v;
	return S_OK;
}

vss_hr volume_select_provider(const VolumeInfo *v, const vss_id *provider_or_null,
                              const provider_ops **ret)
{
	const provider_ops *const *all;
	size_t n;

	if (!vss_id_is_null(provider_or_null)) {
		const provider_ops *p = provider_find_by_id(provider_or_null);

		if (!p)
			return VSS_E_PROVIDER_NOT_REGISTERED;
		if (p->is_volume_supported(v) > 0) {
			*ret = p;
			return S_OK;
		}
		/* Say "not by this provider" only for something that is a
		 * volume at all: a mount point, or one another provider takes. */
		if (v->is_mount_point || volume_select_provider(v, NULL, &(const provider_ops *){ NULL }) == S_OK)
			return VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER;
		return VSS_E_OBJECT_NOT_FOUND;
	}

	all = provider_registry(&n);
	for (size_t i = 0; i < n; i++)
		if (all[i]->is_volume_supported(v) > 0) {
			*ret = all[i];
			return S_OK;
		}
	return v->is_mount_point ? VSS_E_VOLUME_NOT_SUPPORTED : VSS_E_OBJECT_NOT_FOUND;
}
