/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * vssd.conf: "Key = Value" lines under an optional "[vssd]" header, and
 * [Provider] sections, one per provider: keys for a built-in provider
 * (Name = lvm), or a provider of vssd.conf's own (Type = command), made and
 * registered at load. '#' and ';' start comments. A missing file means every
 * default (docs/vssd.conf.md).
 */

#include <stdbool.h>
#include <sys/types.h>

#include "basic/util.h"

/* The free space kept on a filesystem that holds snapshots (HostReserve=):
 * the larger of bytes and percent of its size. */
typedef struct HostReserve {
	char *host;                     /* its mount point; NULL: the default */
	uint64_t bytes;
	unsigned percent;
} HostReserve;

typedef struct Config {
	char *backup_group;             /* BackupGroup, default "backup" */
	gid_t backup_gid;               /* resolved; (gid_t)-1 when the group does not exist */
	usec_t flush_timeout;           /* FlushTimeoutSec / FlushTimeoutMSec, default 10 s */
	usec_t hold_timeout;            /* HoldTimeoutSec / HoldTimeoutMSec, default 10 s */
	usec_t hold_settle;             /* HoldSettleMSec, default 30 ms */
	unsigned max_volumes_per_set;   /* MaxVolumesPerSet, default 64, at most 64 */
	unsigned max_snapshots_per_volume; /* MaxSnapshotsPerVolume, default 512 */
	char *dpkg_lock;                /* DpkgLock, default /var/lib/dpkg/lock-frontend;
	                                 * "" holds no package transactions */
	usec_t transaction_freeze_timeout; /* TransactionFreezeTimeoutSec/MSec, default 10 s */
	usec_t transaction_thaw_timeout;   /* TransactionThawTimeoutSec/MSec, default 60 s */
	unsigned max_connections;       /* MaxConnections, default 1024 */
	unsigned max_connections_per_user; /* MaxConnectionsPerUser, default 16; root has none */
	unsigned max_objects_per_connection; /* MaxObjectsPerConnection, default 1024: backup
	                                      * objects and operations not released */
	uint64_t max_backup_group_message; /* MaxBackupGroupMessageSize, default 4 MiB: the
	                                    * largest message of a peer of the backup group */
	usec_t snapshot_set_timeout;    /* SnapshotSetTimeoutSec/MSec, default 600 s: the
	                                 * longest an object holds the creation slot
	                                 * before DoSnapshotSet */
	usec_t max_writer_freeze_timeout; /* MaxWriterFreezeTimeoutSec/MSec, default 60 s:
	                                   * a writer asking longer gets this */
	unsigned max_image_nesting;     /* MaxImageNesting, default 1: an image on
	                                 * a plain filesystem, not an image in an
	                                 * image */
	HostReserve host_reserve;       /* HostReserve = SIZE N%, default 256M 2% */
	HostReserve *host_reserves;     /* HostReserve = /mount/point SIZE N% */
	size_t n_host_reserves;
	usec_t host_reserve_interval;   /* HostReserveCheckMSec, default 1 s */
	char *schedules_dir;            /* SchedulesDirectory, default VSS_SCHEDULES_DIR: the
	                                 * schedules a set may be tagged with and pruned by */
	char **previous_versions;       /* PreviousVersions = /volume: published for Samba */
	size_t n_previous_versions;
	struct provider_ops **providers; /* made from [Provider] sections with
	                                  * Type =; registered while loaded */
	unsigned *provider_lines;        /* where each section began */
	size_t n_providers;
} Config;

/* The largest value each timeout key takes; larger ones are refused at load. */
#define CONFIG_TIMEOUT_MAX_SEC 3600
#define CONFIG_SNAPSHOT_SET_TIMEOUT_MAX_SEC 86400
#define CONFIG_CONNECTIONS_MAX 65536
/* MaxBackupGroupMessageSize: from what an unprivileged peer may send to what
 * sd-bus takes at all. */
#define CONFIG_MESSAGE_MIN (64 * 1024)
#define CONFIG_MESSAGE_MAX (128 * 1024 * 1024)

void config_init(Config *c);
void config_clear(Config *c);
/* Load a file over the defaults, and register the providers it declares
 * (config_clear() unregisters them). A missing file is not an error when
 * !required; a bad line is, naming file and line. */
int config_load(Config *c, const char *path, bool required);
/* The reserve of the filesystem mounted at mount_point (NULL: unknown) whose
 * size is size bytes. */
uint64_t config_host_reserve(const Config *c, const char *mount_point, uint64_t size);
