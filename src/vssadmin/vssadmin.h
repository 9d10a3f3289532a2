/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the commands of vssadmin share (vssadmin.c) and exec (exec.c) uses. */

#include <stdbool.h>
#include <stdio.h>

#include <vss/vss.h>

#include "basic/macro.h"
#include "basic/schedule.h"
#include "basic/util.h"

#define EXIT_USAGE 2
/* exec: vssadmin failed before the command ran (126 and 127 are the
 * shell's: found but not runnable, not found). */
#define EXIT_EXEC_FAILED 125

extern const char *program;

/* In a function with a vss_hr hr and a label failed: that reports it. */
#define TRY_HR(call)                        \
	do {                                \
		hr = (call);                \
		if (VSS_FAILED(hr))         \
			goto failed;        \
	} while (0)

/* Print the failure as "vssadmin: NAME (0xHEX): detail" (the detail from fmt,
 * else libvss's last message, else the code's meaning); returns the exit
 * status for it. */
int fail(vss_hr hr, const char *fmt, ...) _printf_(2, 3);

/* A mistake on the command line: E_INVALIDARG with the text; returns
 * EXIT_USAGE. */
int usage_error(const char *fmt, ...) _printf_(1, 2);

/* An object ready for queries in every context; the caller releases it. */
vss_hr open_admin(vss_backup **ret);

/* Start an asynchronous call and wait for it: its failure, or S_OK. Only
 * this process could cancel it, so it waits without a limit. */
vss_hr run_async(vss_backup *b, vss_hr (*start)(vss_backup *b, vss_async **ret));

/* Snapshots (all contexts), filtered by set, snapshot id and volume (each
 * optional), sorted as the catalog lists them. *ret_all is freed with
 * vss_free_object_props(), *ret_selected (pointers into it) with free().
 * Failures are reported. */
vss_hr query_snapshots(vss_backup *b, const vss_id *set, const vss_id *shadow, const char *volume,
                       vss_object_prop **ret_all, size_t *ret_n, const vss_snapshot_prop ***ret_selected,
                       size_t *ret_selected_n);

typedef struct CreateArgs {
	char **volumes;
	const char *provider;
	int32_t context;
	bool json;
	bool ignore_writer_failures;
	usec_t autoretry;       /* how long to wait for the creation slot (0: fail at once) */
	char **components_on;   /* a full backup of the writers' components with files below these
	                         * (canonical) paths; NULL: a copy backup, no component selected */
	FILE *report;           /* where snapshots deleted to make room are named; NULL: stdout */
	const char *schedule;   /* --schedule: recorded on the set; NULL: none */
	bool backoff;           /* wait for the slot with growing pauses (a timer's run) */
} CreateArgs;

/* A set made by make_set(): the object is still in its backup (the writers
 * wait for BackupComplete), and is the caller's to release. */
typedef struct MadeSet {
	vss_backup *b;
	vss_id set_id;
	vss_id ids[VSS_MAX_VOLUMES_PER_SET + 1];   /* the snapshots, in the order of the volumes */
	size_t n;
} MadeSet;

/* Make one set of a->volumes, as far as DoSnapshotSet and the writers'
 * status: a set some writer failed is deleted again unless
 * a->ignore_writer_failures. Returns EXIT_SUCCESS with *ret filled, or the
 * exit status of the failure, reported, with nothing left behind. */
int make_set(const CreateArgs *a, MadeSet *ret);

/* With succeeded < 0, select every component with files below the paths
 * (after GatherWriterMetadata); else record for each of them whether its
 * backup succeeded (before BackupComplete). */
vss_hr for_components_on(vss_backup *b, char *const *paths, int succeeded);

typedef struct ExecArgs {
	CreateArgs create;      /* the set to make, when set is NULL */
	const vss_id *set;      /* --set: an existing set instead */
	const char *at;         /* --at: mirror the set under this directory */
	char **command;         /* what to run, NULL-terminated (borrowed from argv) */
	const char *document;   /* --document: save the Backup Components Document here */
} ExecArgs;

/* vssadmin exec: make a set (or take an existing one), run the command in a
 * mount namespace of its own where the set is mounted read-only over its
 * volumes' paths (or under --at), tell the writers how it went, and remove
 * everything. Returns the command's exit status (128 + N for signal N), 126
 * or 127 when it cannot be run, EXIT_EXEC_FAILED when vssadmin failed before
 * (reported). Needs root (a mount namespace). */
int exec_command(const ExecArgs *a);

/* schedules.c */
/* Where schedules are read: $VSS_SCHEDULES_DIR, else the installed
 * /etc/vss/schedules.d. */
const char *schedules_dir(void);
/* create shadow --schedule=NAME: fill *a from the schedule's file (read into
 * *s, the caller's to schedule_clear()). EXIT_SUCCESS, or the failure's exit
 * status, reported. */
int schedule_create_args(const char *name, Schedule *s, CreateArgs *a, bool autoretry_given);
/* Say on stderr (the journal, under systemd) that a scheduled run made no set. */
void schedule_run_failed(const char *name, int status);
/* vssadmin list schedules, and vssadmin prune --schedule=NAME. */
int list_schedules(bool json);
int prune_schedule(const char *name, bool dry_run, bool json);
