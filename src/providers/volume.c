/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "basic/fd-util.h"
#include "basic/macro.h"
#include "basic/util.h"
#include "providers/mounts.h"
#include "providers/provider.h"

vss_hr volume_resolve(const char *path, VolumeInfo *ret)
{
	VolumeInfo v = { .fd = -1 };
	MountEntry e = { 0 };
	_cleanup_close_ int pfd = -1;
	uint64_t mount_id;
	struct stat st;
	bool root;
	int r;

	/* vssd's working directory is "/", but a relative path means the
	 * client's: a client makes it absolute. */
	if (!path || path[0] != '/')
		return E_INVALIDARG;
	/* Resolved here, once: the fd is the volume from now on. */
	pfd = open(path, O_PATH | O_CLOEXEC);
	if (pfd < 0)
		return errno == ENOMEM ? E_OUTOFMEMORY : VSS_E_OBJECT_NOT_FOUND;
	if (fstat(pfd, &st) < 0)
		return VSS_E_OBJECT_NOT_FOUND;
	v.is_directory = S_ISDIR(st.st_mode);
	v.is_regular = S_ISREG(st.st_mode);
	/* Opening a device or a FIFO could have effects: those stay O_PATH. */
	if (v.is_directory)
		v.fd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	else if (v.is_regular)
		v.fd = fd_reopen(pfd, O_RDONLY | O_NOCTTY);
	else
		v.fd = TAKE_FD(pfd);
	if (v.fd < 0)
		return VSS_E_OBJECT_NOT_FOUND;
	r = fd_get_path(v.fd, &v.path);
	if (r >= 0)
		r = fd_mount_id(v.fd, &mount_id, &root);
	if (r >= 0)
		r = mount_lookup(v.path, &e);
	if (r < 0) {
		volume_info_clear(&v);
		return r == -ENOMEM ? E_OUTOFMEMORY : r == -ENOENT ? VSS_E_OBJECT_NOT_FOUND : VSS_E_UNEXPECTED;
	}
	/* The name must lead to the mount the fd is on: else it changed
	 * under us, or the volume is hidden under another mount. */
	if (e.id != mount_id) {
		mount_entry_clear(&e);
		volume_info_clear(&v);
		return VSS_E_OBJECT_NOT_FOUND;
	}
	v.mount_point = TAKE_PTR(e.target);
	v.fs_type = TAKE_PTR(e.fstype);
	v.source = TAKE_PTR(e.source);
	v.mount_id = mount_id;
	v.is_mount_point = root;
	*ret = v;
	return S_OK;
}

vss_hr volume_select_provider(const VolumeInfo *v, const vss_id *provider_or_null,
                              const provider_ops **ret)
{
	const provider_ops *const *all;
	size_t n;

	/* vss's own snapshots and stores are not volumes. */
	if (path_in_store(v->path))
		return VSS_E_VOLUME_NOT_SUPPORTED;
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
