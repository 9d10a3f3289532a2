/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VSS_TYPES_H
#define VSS_TYPES_H

/*
 * Identifiers, contexts, attribute bits and property structures, with the
 * numeric values VSS gives them on Windows.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vss/hresult.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A 128-bit identifier (snapshot, set, provider, writer), printed like a GUID. */
typedef struct vss_id {
	uint8_t bytes[16];
} vss_id;

/* "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}" plus the terminating NUL. */
#define VSS_ID_STRING_MAX 39

#define VSS_ID_NULL ((vss_id){ { 0 } })

/**
 * vss_id_format() - print an id as "{8-4-4-4-12}" in lower case.
 * @id: the id.
 * @buf: at least VSS_ID_STRING_MAX bytes.
 *
 * Return: @buf.
 */
char *vss_id_format(const vss_id *id, char buf[VSS_ID_STRING_MAX]);

/**
 * vss_id_parse() - read an id printed as a GUID.
 * @s: "{8-4-4-4-12}" or the same without braces, any case.
 * @ret: where the id is stored; untouched on failure.
 *
 * Return: S_OK; E_INVALIDARG when @s or @ret is NULL or @s is malformed.
 */
vss_hr vss_id_parse(const char *s, vss_id *ret);

/**
 * vss_id_is_null() - whether an id is all zeroes (GUID_NULL).
 * @id: the id; NULL counts as null.
 */
bool vss_id_is_null(const vss_id *id);

/**
 * vss_id_equal() - whether two ids are the same.
 */
bool vss_id_equal(const vss_id *a, const vss_id *b);

/* VSS_VOLUME_SNAPSHOT_ATTRIBUTES. */
enum {
	VSS_VOLSNAP_ATTR_PERSISTENT = 0x00000001,
	VSS_VOLSNAP_ATTR_NO_AUTORECOVERY = 0x00000002,
	VSS_VOLSNAP_ATTR_CLIENT_ACCESSIBLE = 0x00000004,
	VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE = 0x00000008,
	VSS_VOLSNAP_ATTR_NO_WRITERS = 0x00000010,
	VSS_VOLSNAP_ATTR_TRANSPORTABLE = 0x00000020,
	VSS_VOLSNAP_ATTR_NOT_SURFACED = 0x00000040,
	VSS_VOLSNAP_ATTR_NOT_TRANSACTED = 0x00000080,
	VSS_VOLSNAP_ATTR_HARDWARE_ASSISTED = 0x00010000,
	VSS_VOLSNAP_ATTR_DIFFERENTIAL = 0x00020000,
	VSS_VOLSNAP_ATTR_PLEX = 0x00040000,
	VSS_VOLSNAP_ATTR_IMPORTED = 0x00080000,
	VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY = 0x00100000,
	VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY = 0x00200000,
	VSS_VOLSNAP_ATTR_AUTORECOVER = 0x00400000,
	VSS_VOLSNAP_ATTR_ROLLBACK_RECOVERY = 0x00800000,
	VSS_VOLSNAP_ATTR_DELAYED_POSTSNAPSHOT = 0x01000000,
	VSS_VOLSNAP_ATTR_TXF_RECOVERY = 0x02000000,
	VSS_VOLSNAP_ATTR_FILE_SHARE = 0x04000000,
};

/* VSS_SNAPSHOT_CONTEXT: a context is a set of attribute bits. */
enum {
	VSS_CTX_BACKUP = 0x00,
	VSS_CTX_FILE_SHARE_BACKUP = 0x10,
	VSS_CTX_NAS_ROLLBACK = 0x19,
	VSS_CTX_APP_ROLLBACK = 0x09,
	VSS_CTX_CLIENT_ACCESSIBLE = 0x1D,
	VSS_CTX_CLIENT_ACCESSIBLE_WRITERS = 0x0D,
};
/* Only for query, delete and expose: every context. */
#define VSS_CTX_ALL ((int32_t)-1)

/* VSS_OBJECT_TYPE. */
typedef enum vss_object_type {
	VSS_OBJECT_UNKNOWN = 0,
	VSS_OBJECT_NONE = 1,
	VSS_OBJECT_SNAPSHOT_SET = 2,
	VSS_OBJECT_SNAPSHOT = 3,
	VSS_OBJECT_PROVIDER = 4,
	VSS_OBJECT_TYPE_COUNT = 5,
} vss_object_type;

/* VSS_SNAPSHOT_STATE. */
typedef enum vss_snapshot_state {
	VSS_SS_UNKNOWN = 0,
	VSS_SS_PREPARING = 1,
	VSS_SS_PROCESSING_PREPARE = 2,
	VSS_SS_PREPARED = 3,
	VSS_SS_PROCESSING_PRECOMMIT = 4,
	VSS_SS_PRECOMMITTED = 5,
	VSS_SS_PROCESSING_COMMIT = 6,
	VSS_SS_COMMITTED = 7,
	VSS_SS_PROCESSING_POSTCOMMIT = 8,
	VSS_SS_PROCESSING_PREFINALCOMMIT = 9,
	VSS_SS_PREFINALCOMMITTED = 10,
	VSS_SS_PROCESSING_POSTFINALCOMMIT = 11,
	VSS_SS_CREATED = 12,
	VSS_SS_ABORTED = 13,
	VSS_SS_DELETED = 14,
	VSS_SS_POSTCOMMITTED = 15,
	VSS_SS_COUNT = 16,
} vss_snapshot_state;

/* VSS_PROVIDER_TYPE. */
typedef enum vss_provider_type {
	VSS_PROV_UNKNOWN = 0,
	VSS_PROV_SYSTEM = 1,
	VSS_PROV_SOFTWARE = 2,
	VSS_PROV_HARDWARE = 3,
	VSS_PROV_FILESHARE = 4,
} vss_provider_type;

/* VSS_BACKUP_TYPE. */
typedef enum vss_backup_type {
	VSS_BT_UNDEFINED = 0,
	VSS_BT_FULL = 1,
	VSS_BT_INCREMENTAL = 2,
	VSS_BT_DIFFERENTIAL = 3,
	VSS_BT_LOG = 4,
	VSS_BT_COPY = 5,
	VSS_BT_OTHER = 6,
} vss_backup_type;

/*
 * VSS_SNAPSHOT_PROP. Strings are UTF-8, owned by the structure and released
 * with vss_free_snapshot_properties(); a string VSS leaves NULL (for example
 * exposed_name of a snapshot that is not exposed) is NULL here too.
 *
 * snapshot_device_object is the provider's object for the snapshot, as VSS's
 * is a device: for btrfs a read-only subvolume (a directory), for an image
 * volume the cloned image file, to be mounted, not read. The way to a
 * snapshot's files that works for every provider is to expose it
 * (vss_backup_expose_snapshot(), with NULL for vssd's default place): a
 * file's copy is then exposed_name + its path below original_volume_name.
 * `vssadmin exec` does that for a whole set, over the volumes' own paths.
 */
typedef struct vss_snapshot_prop {
	vss_id snapshot_id;
	vss_id snapshot_set_id;
	int32_t snapshots_count;           /* members of the set when it was made */
	char *snapshot_device_object;
	char *original_volume_name;        /* canonical path of the volume */
	char *originating_machine;
	char *service_machine;
	char *exposed_name;
	char *exposed_path;
	vss_id provider_id;
	int32_t snapshot_attributes;       /* VSS_VOLSNAP_ATTR_* */
	int64_t creation_timestamp;        /* microseconds since the Unix epoch */
	vss_snapshot_state status;

	/* vss additions, not in VSS_SNAPSHOT_PROP. */
	uint64_t hold_window_us;           /* of the whole set; see docs/ENGINE.md */
	char *consistency;                 /* what the set reached, e.g.
	                                    * "crash-consistent per volume" */
} vss_snapshot_prop;

/* VSS_PROVIDER_PROP. */
typedef struct vss_provider_prop {
	vss_id provider_id;
	char *provider_name;
	vss_provider_type provider_type;
	char *provider_version;
	vss_id provider_version_id;
	vss_id class_id;
} vss_provider_prop;

/*
 * VSS_DIFF_AREA_PROP: the shadow storage of a volume. Sizes are bytes; -1 for
 * maximum_diff_space means unbounded, and for the other two that vss cannot
 * tell (btrfs without quotas).
 */
typedef struct vss_diff_area_prop {
	char *volume_name;             /* the volume whose snapshots take the space */
	char *diff_area_volume_name;   /* the filesystem holding them; NULL without any */
	int64_t maximum_diff_space;
	int64_t allocated_diff_space;  /* what the snapshots refer to, shared or not */
	int64_t used_diff_space;       /* what only the snapshots hold */
} vss_diff_area_prop;

/* VSS_OBJECT_PROP: what vss_backup_query() returns. */
typedef struct vss_object_prop {
	vss_object_type type;              /* SNAPSHOT or PROVIDER */
	union {
		vss_snapshot_prop snap;
		vss_provider_prop prov;
	} obj;
} vss_object_prop;

/**
 * vss_free_snapshot_properties() - release the strings of a snapshot property.
 * @prop: filled by vss_backup_get_snapshot_properties(); may be NULL.
 *
 * The structure itself belongs to the caller and is zeroed, so calling this
 * twice is harmless.
 */
void vss_free_snapshot_properties(vss_snapshot_prop *prop);

/**
 * vss_free_provider_properties() - release the strings of a provider property.
 * @prop: may be NULL; zeroed afterwards.
 */
void vss_free_provider_properties(vss_provider_prop *prop);

/**
 * vss_free_diff_area_props() - release an array of shadow storage properties.
 * @props: the array (may be NULL).
 * @count: its length.
 */
void vss_free_diff_area_props(vss_diff_area_prop *props, size_t count);

/**
 * vss_free_object_props() - release an array returned by vss_backup_query().
 * @props: the array (may be NULL).
 * @count: its length.
 */
void vss_free_object_props(vss_object_prop *props, size_t count);

#ifdef __cplusplus
}
#endif

#endif
