/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The Backup Components Document (docs/RESTORE.md#the-document): what a
 * backup was (its writers' metadata, the components selected and how their
 * backup went, the backup's type and context, the set's snapshots), as JSON
 * text that a backup tool stores with its backup and hands back at restore.
 *
 * Pure: no D-Bus, no catalog, so that the parser can be fuzzed on its own
 * (tests/fuzz/fuzz-bcd.c). The text comes from a client of vssd, which runs
 * as root: bcd_parse() caps its size, depth, counts and string lengths and
 * refuses anything it does not expect, naming the field.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vss/types.h>
#include <vss/writer.h>

#define BCD_FORMAT "vss-backup-components"
#define BCD_VERSION 1

/* The limits of a document vssd accepts. */
#define BCD_MAX_SIZE (4u << 20)         /* bytes of text */
#define BCD_MAX_DEPTH 8                 /* nesting of objects and arrays */
#define BCD_MAX_STRING 4096             /* bytes of one string (PATH_MAX) */
#define BCD_MAX_WRITERS 1024
#define BCD_MAX_WRITER_COMPONENTS 1024  /* per writer */
#define BCD_MAX_FILES 4096              /* per component, and excluded per writer */
#define BCD_MAX_COMPONENTS 4096         /* selected, in all */
#define BCD_MAX_TARGETS 256             /* new targets per component */
#define BCD_MAX_SNAPSHOTS 64            /* VSS_MAX_VOLUMES_PER_SET */

/* A new target of a component (AddNewTarget): the files at path matching
 * filespec are restored under alternate_path instead. */
typedef struct BcdTarget {
	char *path;
	char *filespec;
	bool recursive;
	char *alternate_path;
} BcdTarget;

/* A component selected for the backup (AddComponent), and at restore. */
typedef struct BcdComponent {
	vss_id writer_class_id;
	vss_id writer_instance_id;
	vss_component_type type;
	char *logical_path;             /* NULL when none */
	char *name;
	int backup_succeeded;           /* -1 not said, 0, 1 */
	char *backup_options;           /* NULL when none */
	/* The restore's, set by SetSelectedForRestore, SetRestoreOptions and
	 * AddNewTarget; kept in documents saved during a restore. */
	bool selected_for_restore;
	char *restore_options;
	BcdTarget *new_targets;
	size_t n_new_targets;
} BcdComponent;

typedef struct BcdSnapshot {
	vss_id snapshot_id;
	vss_id provider_id;
	char *volume;                   /* original_volume_name */
	char *device_object;
	int64_t creation_timestamp;     /* microseconds since the epoch */
} BcdSnapshot;

typedef struct Bcd {
	/* "backup" */
	char *state;                    /* the backup object's state when saved */
	vss_backup_type backup_type;
	bool select_components, bootable_system_state, partial_file_support;
	int32_t context;
	/* "snapshot_set" */
	vss_id set_id;
	BcdSnapshot *snapshots;
	size_t n_snapshots;
	/* "writers": as GatherWriterMetadata gathered them */
	vss_writer_metadata *writers;
	size_t n_writers;
	/* "components" */
	BcdComponent *components;
	size_t n_components;
} Bcd;

void bcd_clear(Bcd *d);

/* The document's text, keys in a fixed order, pretty-printed, so that two
 * documents diff well; writers are sorted by name, class and instance,
 * snapshots by volume. *ret is malloc()ed. -ENOMEM, or -EINVAL for a
 * document bcd_parse() would refuse (a string too long, too many of
 * something). */
int bcd_format(const Bcd *d, char **ret);

/* Parse text into *ret (cleared first, and again on failure). Returns 0,
 * -ENOMEM, or -EINVAL with error (of error_size bytes) naming the field
 * and what is wrong with it (VSS_E_INVALID_XML_DOCUMENT for vssd). */
int bcd_parse(const char *text, size_t size, Bcd *ret, char *error, size_t error_size);

/* The component of d that names this writer class, type, logical path and
 * name; NULL when none. */
BcdComponent *bcd_find_component(const Bcd *d, const vss_id *class_id, vss_component_type type,
                                 const char *logical_path_or_null, const char *name);
