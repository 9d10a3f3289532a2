/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The provider interface: how the DoSnapshotSet engine drives a snapshot
 * technology. It follows IVssProviderCreateSnapshotSet (docs/PROVIDERS.md):
 *
 *   begin_prepare (per member) -> end_prepare (per provider, once per set)
 *   -> pre_commit (flush) -> [hold writes] -> commit (the point in time)
 *   -> [release writes] -> post_commit -> pre_final_commit
 *   -> post_final_commit
 *
 * and abort, which the engine calls on every member that saw begin_prepare
 * when anything fails, so that a set is all or nothing.
 *
 * Holding writes is the engine's, not the provider's: a member whose
 * filesystem can be frozen while its snapshot is made names it in hold_path,
 * and the engine freezes all of them at once, under a guard that always
 * thaws (vssd/freeze.h).
 *
 * Results: an int that is 0 (or positive) on success, a negative errno for a
 * system failure (-ENOSPC, -EIO, ...), or a failing vss_hr for a condition
 * the provider names itself (VSS_E_PROVIDER_VETO for a known refusal). The
 * two do not overlap: an errno is above -4096, an HRESULT failure below
 * INT32_MIN/2. provider_result_to_hr() maps both as the contract demands.
 *
 * The table is private to vssd for now; its first field is a version so that
 * out-of-tree providers can be added later without breaking old ones.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <vss/types.h>

#define PROVIDER_OPS_VERSION 1

/* What vssd learned of a path before asking providers about it. */
typedef struct VolumeInfo {
	char *path;             /* canonical (realpath) */
	char *mount_point;      /* target of the mount holding path */
	char *fs_type;          /* of that mount */
	char *source;           /* its source (device) */
	bool is_mount_point;    /* path is itself a mount point */
	bool is_directory;
} VolumeInfo;

void volume_info_clear(VolumeInfo *v);

/* One volume of a set being made. */
typedef struct ProviderMember {
	const struct provider_ops *ops;
	unsigned index;                 /* 1-based position in the set */
	vss_id snapshot_id;
	vss_id set_id;
	int32_t context;
	char *volume;                   /* canonical volume path */
	char *mount_point;
	char *snapshot_path;            /* set by begin_prepare */
	char *provider_data;            /* opaque, kept in the catalog */
	int32_t attributes;             /* bits the provider adds */
	char *hold_path;                /* set by locate: the mount point to
	                                 * freeze during commit; NULL when the
	                                 * member cannot be held (btrfs) */
	char *image_file;               /* set by locate for a volume that lives
	                                 * in an image file: that file */
	unsigned image_depth;           /* image layers under the volume (1: an
	                                 * image on a plain filesystem) */
	vss_snapshot_state state;
	void *priv;                     /* provider state; freed by abort or
	                                 * post_final_commit */
} ProviderMember;

typedef struct provider_ops {
	unsigned version;               /* PROVIDER_OPS_VERSION */
	const char *name;               /* provider_name; --provider= takes it */
	const char *version_string;
	vss_id id;
	vss_id version_id;
	vss_id class_id;
	vss_provider_type type;

	/* 1: supported; 0: not this provider's kind of volume. */
	int (*is_volume_supported)(const VolumeInfo *v);

	/* Choose snapshot_path for a member being added to a set, without
	 * changing anything on disk: vssd records it before the set is cut, so
	 * that a crash mid-way can be cleaned up from the catalog. */
	int (*locate)(ProviderMember *m);

	int (*begin_prepare)(ProviderMember *m);
	int (*end_prepare)(ProviderMember **members, size_t n);
	int (*pre_commit)(ProviderMember *m);
	int (*commit)(ProviderMember *m);
	int (*post_commit)(ProviderMember *m);          /* optional */
	int (*pre_final_commit)(ProviderMember *m);     /* optional */
	int (*post_final_commit)(ProviderMember *m);    /* optional */
	int (*abort)(ProviderMember *m);                /* optional: idempotent;
	                                                 * without it, abort deletes
	                                                 * snapshot_path (a fresh id:
	                                                 * if it exists, it is ours) */

	/* A finished snapshot, as recorded in the catalog. delete returns 0
	 * when it is gone (also when it was already gone); exists returns 1 or 0. */
	int (*delete_snapshot)(const char *snapshot_path, const char *provider_data);
	int (*snapshot_exists)(const char *snapshot_path, const char *provider_data);
	/* Mount a finished snapshot read-only on dir, an existing directory;
	 * vssd unmounts it (whatever it needed goes with the mount). */
	int (*expose)(const char *snapshot_path, const char *provider_data, const char *dir);
	/* The space a volume's snapshots take (they share provider_data):
	 * used, held by them alone (what deleting them all would free); and
	 * allocated, what they refer to, shared with the volume or not. -1
	 * each when the provider cannot tell. */
	int (*space)(char *const *snapshot_paths, size_t n, const char *provider_data, int64_t *ret_used,
	             int64_t *ret_allocated);
} provider_ops;

/* The snapshot store of the filesystem mounted at mount_point,
 * "<mount_point>/.vss" (a subvolume on btrfs, so that snapshots of the volume
 * holding it leave it out). store_path returns NULL when out of memory. */
char *store_path(const char *mount_point);
int store_ensure(const char *store, const char *fstype);


/* The registry: built-in providers, in the order vss asks them. */
const provider_ops *const *provider_registry(size_t *ret_count);
const provider_ops *provider_find_by_id(const vss_id *id);

/* Map a provider result to what the requestor sees: ENOSPC and EDQUOT become
 * VSS_E_INSUFFICIENT_STORAGE, ENOMEM E_OUTOFMEMORY, a provider's own permitted
 * HRESULT stays, and anything else becomes VSS_E_UNEXPECTED_PROVIDER_ERROR. */
vss_hr provider_result_to_hr(int r);

/* Whether a result is an HRESULT (as opposed to a negative errno). */
static inline bool provider_result_is_hr(int r)
{
	return r < -0x10000000;
}

/* Text for a provider result, for logs. */
const char *provider_result_string(int r, char *buf, size_t size);

void provider_member_free_fields(ProviderMember *m);

#include "providers/fault.h"

/* Run one provider step of one member through the fault seam; a missing
 * optional step succeeds. (STEP_HOLD and STEP_RELEASE are the engine's.) */
int provider_invoke(FaultTable *faults, ProviderStep step, ProviderMember *m);
/* end_prepare for the members of one provider (faults match the first). */
int provider_invoke_end_prepare(FaultTable *faults, ProviderMember **members, size_t n);
/* Delete a finished snapshot through the seam (member 0 matches only '*'). */
int provider_invoke_delete(FaultTable *faults, const provider_ops *ops,
                           const char *snapshot_path, const char *provider_data);

/*
 * Resolve a path given by a requestor. VSS_E_OBJECT_NOT_FOUND when it does
 * not exist; otherwise *ret describes it (not yet whether it is a volume).
 */
vss_hr volume_resolve(const char *path, VolumeInfo *ret);

/*
 * Choose the provider for a resolved path: the one named (NULL or the null id
 * for any). Results: S_OK; VSS_E_PROVIDER_NOT_REGISTERED for an unknown id;
 * VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER when the named one declines a
 * volume; VSS_E_VOLUME_NOT_SUPPORTED when no provider takes a mount point;
 * VSS_E_OBJECT_NOT_FOUND when the path is not a volume at all.
 */
vss_hr volume_select_provider(const VolumeInfo *v, const vss_id *provider_or_null,
                              const provider_ops **ret);
