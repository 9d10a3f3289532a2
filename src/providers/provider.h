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
 * thaws (vssd/creation/freeze.h).
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

#include "basic/macro.h"

struct dirent;

#define PROVIDER_OPS_VERSION 5

#define PROVIDER_REVERT_PLAN_MAX 4096

/* One revert of a volume to one of its snapshots. */
typedef struct ProviderRevert {
	const char *volume;        /* the volume as the catalog records it (its mount point) */
	const char *snapshot_path; /* the snapshot, as recorded */
	const char *provider_data; /* as recorded; may be NULL */
	bool force_unmount;        /* the volume may be unmounted although in use (lazily) */
	/* Written by revert_plan, recorded in the catalog before revert is
	 * called, and given back unchanged to every revert call, including the
	 * one that resumes after vssd died: all a revert needs to finish
	 * (the mount's source, type, options and where; temporary names). NUL-terminated. */
	char plan[PROVIDER_REVERT_PLAN_MAX];
	/* Written by revert: */
	bool snapshot_consumed;    /* the snapshot is gone (an LVM merge); vssd drops its row */
	char message[256];         /* a refusal's reason, or what the user should know */
} ProviderRevert;

/* What vssd learned of a path before asking providers about it. The path
 * is resolved once, into fd; everything else is read from that fd or checked
 * against it. */
typedef struct VolumeInfo {
	char *path;             /* canonical: the kernel's name for fd */
	char *mount_point;      /* target of the mount holding it */
	char *fs_type;          /* of that mount */
	char *source;           /* its source (device) */
	int fd;                 /* the volume: O_RDONLY for a directory or a
	                         * regular file, O_PATH for anything else */
	uint64_t mount_id;      /* of the mount holding it (statx) */
	bool is_mount_point;    /* fd is the root of its mount */
	bool is_directory;
	bool is_regular;
} VolumeInfo;

void volume_info_clear(VolumeInfo *v);

/* One volume of a set being made. */
typedef struct ProviderMember {
	const struct provider_ops *ops;
	unsigned index;                 /* 1-based position in the set */
	unsigned set_size;              /* members in the set, of every
	                                 * provider; set by the engine */
	vss_id snapshot_id;
	vss_id set_id;
	int32_t context;
	char *volume;                   /* canonical volume path */
	char *mount_point;
	char *snapshot_path;            /* set by begin_prepare */
	char *provider_data;            /* opaque, kept in the catalog */
	int32_t attributes;             /* bits the provider adds */
	char *hold_path;                /* set by locate: the mount point to
	                                 * freeze during commit, for messages and
	                                 * the freeze marker; NULL when the
	                                 * member cannot be held (btrfs) */
	char *backing_file;             /* set by locate for a volume whose
	                                 * filesystem lives in a file (an image)
	                                 * or on a device of its own (a logical
	                                 * volume): its name, by which vssd finds
	                                 * members nested in one another */

	/* The member's anchors. Paths above are names for people and the
	 * catalog; every step acts on these, so that nothing renamed or
	 * swapped after AddToSnapshotSet changes what is frozen or copied.
	 * -1 when unset; closed by provider_member_free_fields(). */
	int volume_fd;                  /* taken from VolumeInfo.fd */
	uint64_t volume_mount_id;
	int hold_fd;                    /* set by locate with hold_path: a file
	                                 * of the filesystem to freeze */
	int backing_fd;                 /* set by locate with backing_file */
	int store_root_fd;              /* set by locate: the root of the
	                                 * filesystem whose store gets the snapshot */
	int store_fd;                   /* set by begin_prepare: that store */
	const char *reason;             /* static text: why a step refused */
	vss_snapshot_state state;
	void *priv;                     /* provider state; freed by abort or
	                                 * post_final_commit */
} ProviderMember;

/* A snapshot a provider found in a store (list_snapshots). */
typedef struct ProviderSnapshot {
	const char *name;               /* its entry in the store: the snapshot
	                                 * path is "<store>/<name>" */
	vss_id snapshot_id;             /* the ids the provider tagged it with;
	                                 * null when it has none on disk (btrfs
	                                 * and image: the name is the snapshot id,
	                                 * so snapshot_id is parsed from it) */
	vss_id set_id;
	const char *path;               /* list_all_snapshots: its snapshot path,
	                                 * as the catalog records it */
} ProviderSnapshot;

/* What vssd's configuration asks of every set, for check_set. */
typedef struct ProviderPolicy {
	unsigned max_image_nesting;     /* MaxImageNesting= */
} ProviderPolicy;

/* Capabilities (provider_ops.flags). */
enum {
	/* Its members can be held: vssd freezes the filesystem locate names
	 * in hold_fd (none for an image file that is not mounted), with every
	 * other member's, while the set is committed. Without it the provider
	 * makes each snapshot consistent by itself (btrfs), and the set is
	 * crash-consistent per volume. */
	PROVIDER_HOLDS_WRITES = 1 << 0,
	/* Its members' commits may run at the same time, each on its own
	 * worker, when every member of the set allows it; otherwise the
	 * engine commits one member (or one group) after another. */
	PROVIDER_COMMITS_CONCURRENTLY = 1 << 1,
};

/* Called for each snapshot found; a negative result stops the listing. */
typedef int (*provider_found_fn)(const ProviderSnapshot *s, void *userdata);

typedef struct provider_ops {
	unsigned version;               /* PROVIDER_OPS_VERSION */
	const char *name;               /* provider_name; --provider= takes it */
	const char *version_string;
	vss_id id;
	vss_id version_id;
	vss_id class_id;
	vss_provider_type type;

	unsigned flags;                 /* PROVIDER_* capabilities */

	/* 1: supported; 0: not this provider's kind of volume. */
	int (*is_volume_supported)(const VolumeInfo *v);

	/* Choose snapshot_path for a member being added to a set, without
	 * changing anything on disk: vssd records it before the set is cut, so
	 * that a crash mid-way can be cleaned up from the catalog. Gets
	 * volume_fd; sets hold_fd/hold_path, backing_fd/backing_file and
	 * store_root_fd from it (checked against it, never by name alone). */
	int (*locate)(ProviderMember *m);
	/* Optional: refuse the set's newest member, members[n - 1], for a
	 * reason of the provider's own (nesting deeper than policy allows),
	 * with a failing HRESULT and a message in reason. The other members
	 * are the set so far, of every provider. */
	int (*check_set)(ProviderMember *const *members, size_t n, const ProviderPolicy *policy, char *reason,
	                 size_t reason_size);

	/* The steps of a set get the fds locate set and act on them only;
	 * begin_prepare opens (or makes) the store, store_fd. */
	int (*begin_prepare)(ProviderMember *m);
	int (*end_prepare)(ProviderMember **members, size_t n);
	int (*pre_commit)(ProviderMember *m);
	int (*commit)(ProviderMember *m);
	/* Optional, instead of commit: every member of this provider in the
	 * set, committed in one call (one LVM batch, one `zfs snapshot` of all
	 * datasets, a SAN consistency group), inside the hold. 0 when all
	 * were made; on failure the engine aborts every member. */
	int (*commit_group)(ProviderMember **members, size_t n);
	int (*post_commit)(ProviderMember *m);          /* optional */
	int (*pre_final_commit)(ProviderMember *m);     /* optional */
	int (*post_final_commit)(ProviderMember *m);    /* optional */
	int (*abort)(ProviderMember *m);                /* optional: idempotent;
	                                                 * without it, abort deletes
	                                                 * snapshot_path (a fresh id:
	                                                 * if it exists, it is ours) */

	/* A finished snapshot, as recorded in the catalog: its store is
	 * opened with store_open_for() (no symbolic links, root's own) and the
	 * entry acted on relative to it. delete returns 0 when it is gone (also
	 * when it was already gone). */
	int (*delete_snapshot)(const char *snapshot_path, const char *provider_data);
	/* Every snapshot of this provider's kind in the store at store_path
	 * (as recorded: the directory of its snapshot paths), the store read
	 * once through one fd (store_open_path()), found called for each.
	 * Returns 0, found's negative result, -ENOENT when the store is gone,
	 * VSS_E_PROVIDER_VETO when it is no store of vss's, or another
	 * negative errno when the provider cannot tell. Reconcile asks it once
	 * per store rather than once per snapshot. */
	int (*list_snapshots)(const char *store_path, provider_found_fn found, void *userdata);
	/* Optional, for a provider that tags its snapshots with their ids (LVM
	 * tags, ZFS user properties): every snapshot of vss's it finds anywhere
	 * on the system, found called for each with both ids and its path.
	 * Reconcile then asks it once in all instead of per store, learns what
	 * exists by snapshot id, and deletes what is tagged but not in the
	 * catalog. 0, found's negative result, or a negative errno when it
	 * cannot tell (nothing is then deleted and no row dropped). */
	int (*list_all_snapshots)(provider_found_fn found, void *userdata);
	/* Mount a finished snapshot read-only, nosuid, nodev on dir_fd (an
	 * O_PATH fd of an empty directory), with the new mount API; vssd
	 * unmounts it (whatever it needed goes with the mount). */
	int (*expose)(const char *snapshot_path, const char *provider_data, int dir_fd);
	/* 1 when dir_fd is the root of a mount of this snapshot, 0 when not. */
	int (*is_exposed_at)(const char *snapshot_path, const char *provider_data, int dir_fd);
	/* The space a volume's snapshots take (they share provider_data):
	 * used, held by them alone (what deleting them all would free); and
	 * allocated, what they refer to, shared with the volume or not. -1
	 * each when the provider cannot tell. */
	int (*space)(char *const *snapshot_paths, size_t n, const char *provider_data, int64_t *ret_used,
	             int64_t *ret_allocated);
	/* Optional: take a key of the provider's [Provider] section in
	 * vssd.conf, at load, before any set. 0; -ENOKEY for a key it does not
	 * know; another negative errno or a failing HRESULT for a bad value,
	 * with *ret_reason (static text, may stay NULL) saying why. */
	int (*configure)(const char *key, const char *value, const char **ret_reason);

	/* optional (both or neither). Revert runs on a thread of its own, never on vssd's loop.
	 * revert_plan changes nothing on disk: it checks (volume mounted from what the snapshot is
	 * of, snapshot present, volume in use unless force_unmount) and fills r->plan.
	 * revert unmounts the volume, makes it hold what the snapshot holds, and mounts it again
	 * where it was with its options. It must roll forward: called again with the same plan
	 * after a crash at any point of an earlier call, it finishes that revert (or finds it done)
	 * and never leaves the volume half reverted. Before each of its steps n = 1, 2, ... it calls
	 * fault_revert_step(n) (src/providers/fault.h; VSS_FAULTS entry `revert:N:ACTION`), so tests
	 * can fail or stall (delay=MS, then SIGKILL vssd) at each step.
	 * Results: 0; -EBUSY volume in use (VSS_E_VOLUME_IN_USE), nothing changed; -EOPNOTSUPP this
	 * volume cannot be reverted (VSS_E_VOLUME_NOT_SUPPORTED), -ENOENT snapshot gone
	 * (VSS_E_OBJECT_NOT_FOUND), -ENOSPC (VSS_E_INSUFFICIENT_STORAGE); anything else
	 * VSS_E_UNEXPECTED_PROVIDER_ERROR. r->message says why. */
	int (*revert_plan)(ProviderRevert *r);
	int (*revert)(ProviderRevert *r);
} provider_ops;

/* The snapshot store of the filesystem mounted at mount_point,
 * "<mount_point>/.vss" (a subvolume on btrfs, so that snapshots of the volume
 * holding it leave it out). store_path returns NULL when out of memory. */
#define STORE_NAME ".vss"
char *store_path(const char *mount_point);
/* Open the root of the mount at mount_point (no symbolic links on the way)
 * and check that it is the mount with mount_id: -ESTALE when something else
 * is mounted there now. */
int mount_root_open(const char *mount_point, uint64_t mount_id, int *ret_fd);
/* A store must be a directory of root's that nobody else can change (0700):
 * otherwise whoever controls it could steer what vssd writes or deletes.
 * store_check refuses an existing store that is not (VSS_E_PROVIDER_VETO,
 * *ret_reason says why) and accepts a missing one; store_open opens the
 * store in root_fd, making it (fd-relative) when missing. */
int store_check(int root_fd, const char **ret_reason);
int store_open(int root_fd, int *ret_fd, const char **ret_reason);
/* The store holding a recorded snapshot path, opened without following
 * symbolic links and checked as above, and the snapshot's name in it;
 * -ENOENT when the store is gone. */
int store_open_for(const char *snapshot_path, int *ret_fd, const char **ret_name);
/* A recorded store path ("<mount>/.vss"), opened and checked as above. */
int store_open_path(const char *store_path, int *ret_fd);
/* Read an open store once: found for each entry is_snapshot accepts (given
 * the store and the entry, d_type DT_UNKNOWN on filesystems that do not
 * fill it), with snapshot_id parsed from its name. For list_snapshots. */
int store_list(int store_fd, bool (*is_snapshot)(int store_fd, const struct dirent *de), provider_found_fn found,
               void *userdata);
/* Delete a recorded snapshot with delete_in(store_fd, name) in its store,
 * opened by store_open_for(); 0 when the store is gone. */
int store_delete(const char *snapshot_path, int (*delete_in)(int store_fd, const char *name));
/* Whether a canonical path is a store or lies in one: vss's own snapshots
 * are not volumes. */
bool path_in_store(const char *path);
/* Whether a recorded snapshot path is an entry of a store, "<mount>/.vss/NAME":
 * the space it takes is on a filesystem vss watches (the host reserve).
 * Snapshots a provider keeps elsewhere (a storage array, a volume group) are
 * not. */
bool snapshot_in_store(const char *snapshot_path);


/* The registry: providers registered at start (from vssd.conf), in the
 * order they were, then the built-in ones; the order vss asks them in. */
const provider_ops *const *provider_registry(size_t *ret_count);
const provider_ops *provider_find_by_id(const vss_id *id);
const provider_ops *provider_find_by_name(const char *name);
/* Add a provider, before any set is made (its table must outlive its
 * registration): -EPROTO when ops->version is not PROVIDER_OPS_VERSION,
 * -EINVAL when it lacks a name, an id or a mandatory step, or has one of
 * revert_plan and revert without the other, -EEXIST when its
 * id or name is another's; logged, naming the provider. */
int provider_register(const provider_ops *ops);
/* Remove a provider registered with provider_register(); no-op otherwise. */
void provider_unregister(const provider_ops *ops);

/* For a provider's revert: write why into r->message and return e. */
int revert_fail(ProviderRevert *r, int e, const char *fmt, ...) _printf_(3, 4);
/* Step 1 of a revert (fault_revert_step(1) first): unmount the volume as
 * the plan has it (mount_plan_unmount()), unless done says the revert is
 * past its commit point. 0; -EBUSY in use, nothing changed; another
 * negative errno; r->message says why. */
int revert_unmount_step(ProviderRevert *r, bool done);

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

/* A member with no fields set and every fd at -1. */
void provider_member_init(ProviderMember *m);
void provider_member_free_fields(ProviderMember *m);

#include "providers/fault.h"

/* Run one provider step of one member through the fault seam; a missing
 * optional step succeeds. (STEP_HOLD and STEP_RELEASE are the engine's.) */
int provider_invoke(FaultTable *faults, ProviderStep step, ProviderMember *m);
/* end_prepare, commit_group: for the members of one provider (faults match
 * the first). */
int provider_invoke_end_prepare(FaultTable *faults, ProviderMember **members, size_t n);
int provider_invoke_commit_group(FaultTable *faults, ProviderMember **members, size_t n);
/* Delete a finished snapshot through the seam (member 0 matches only '*'). */
int provider_invoke_delete(FaultTable *faults, const provider_ops *ops,
                           const char *snapshot_path, const char *provider_data);

/*
 * Resolve a path given by a requestor, once: E_INVALIDARG when it is not
 * absolute, VSS_E_OBJECT_NOT_FOUND when it does not exist; otherwise *ret
 * describes it (not yet whether it is a volume) and holds it open.
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
