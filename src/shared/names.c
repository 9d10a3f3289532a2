/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "basic/macro.h"
#include "shared/names.h"

static const struct {
	const char *name;
	const char *label;
	int32_t value;
} contexts[] = {
	{ "backup", "Backup", VSS_CTX_BACKUP },
	{ "file_share_backup", "FileShareBackup", VSS_CTX_FILE_SHARE_BACKUP },
	{ "nas_rollback", "DataVolumeRollback", VSS_CTX_NAS_ROLLBACK },
	{ "app_rollback", "ApplicationRollback", VSS_CTX_APP_ROLLBACK },
	{ "client_accessible", "ClientAccessible", VSS_CTX_CLIENT_ACCESSIBLE },
	{ "client_accessible_writers", "ClientAccessibleWriters", VSS_CTX_CLIENT_ACCESSIBLE_WRITERS },
};

/* The attribute bits that make up the contexts above. */
#define CONTEXT_BITS                                                                             \
	(VSS_VOLSNAP_ATTR_PERSISTENT | VSS_VOLSNAP_ATTR_CLIENT_ACCESSIBLE | VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE | \
	 VSS_VOLSNAP_ATTR_NO_WRITERS)

int64_t context_from_name(const char *name)
{
	char norm[64];
	size_t i;

	for (i = 0; name[i] && i < sizeof(norm) - 1; i++)
		norm[i] = name[i] == '-' ? '_' : name[i];
	norm[i] = '\0';
	for (i = 0; i < ELEMENTSOF(contexts); i++)
		if (streq(norm, contexts[i].name))
			return contexts[i].value;
	return -1;
}

static int context_index(int32_t attributes)
{
	for (size_t i = 0; i < ELEMENTSOF(contexts); i++)
		if ((attributes & CONTEXT_BITS) == contexts[i].value)
			return (int)i;
	return -1;
}

const char *context_name_of_attributes(int32_t attributes)
{
	int i = context_index(attributes);

	return i >= 0 ? contexts[i].name : "unknown";
}

const char *context_label_of_attributes(int32_t attributes)
{
	int i = context_index(attributes);

	return i >= 0 ? contexts[i].label : "Unknown";
}

char *attributes_to_string(int32_t attributes, char *buf, size_t size)
{
	static const struct {
		int32_t bit;
		const char *text;
	} bits[] = {
		{ VSS_VOLSNAP_ATTR_PERSISTENT, "Persistent" },
		{ VSS_VOLSNAP_ATTR_CLIENT_ACCESSIBLE, "Client-accessible" },
		{ VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE, "No auto release" },
		{ VSS_VOLSNAP_ATTR_NO_WRITERS, "No writers" },
		{ VSS_VOLSNAP_ATTR_TRANSPORTABLE, "Transportable" },
		{ VSS_VOLSNAP_ATTR_NOT_SURFACED, "Not surfaced" },
		{ VSS_VOLSNAP_ATTR_NOT_TRANSACTED, "Not transacted" },
		{ VSS_VOLSNAP_ATTR_HARDWARE_ASSISTED, "Hardware assisted" },
		{ VSS_VOLSNAP_ATTR_DIFFERENTIAL, "Differential" },
		{ VSS_VOLSNAP_ATTR_PLEX, "Plex" },
		{ VSS_VOLSNAP_ATTR_IMPORTED, "Imported" },
		{ VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY, "Exposed locally" },
		{ VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY, "Exposed remotely" },
		{ VSS_VOLSNAP_ATTR_AUTORECOVER, "Auto recover" },
		{ VSS_VOLSNAP_ATTR_ROLLBACK_RECOVERY, "Rollback recovery" },
		{ VSS_VOLSNAP_ATTR_NO_AUTORECOVERY, "No auto recovery" },
		{ VSS_VOLSNAP_ATTR_DELAYED_POSTSNAPSHOT, "Delayed post-snapshot" },
		{ VSS_VOLSNAP_ATTR_TXF_RECOVERY, "TxF recovery" },
		{ VSS_VOLSNAP_ATTR_FILE_SHARE, "File share" },
	};
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ELEMENTSOF(bits); i++) {
		if (!(attributes & bits[i].bit))
			continue;
		len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s", len ? ", " : "",
					bits[i].text);
		if (len >= size)
			break;
	}
	return buf;
}

const char *snapshot_state_name(vss_snapshot_state s)
{
	static const char *const names[VSS_SS_COUNT] = {
		[VSS_SS_UNKNOWN] = "unknown",
		[VSS_SS_PREPARING] = "preparing",
		[VSS_SS_PROCESSING_PREPARE] = "processing-prepare",
		[VSS_SS_PREPARED] = "prepared",
		[VSS_SS_PROCESSING_PRECOMMIT] = "processing-precommit",
		[VSS_SS_PRECOMMITTED] = "precommitted",
		[VSS_SS_PROCESSING_COMMIT] = "processing-commit",
		[VSS_SS_COMMITTED] = "committed",
		[VSS_SS_PROCESSING_POSTCOMMIT] = "processing-postcommit",
		[VSS_SS_PROCESSING_PREFINALCOMMIT] = "processing-prefinalcommit",
		[VSS_SS_PREFINALCOMMITTED] = "prefinalcommitted",
		[VSS_SS_PROCESSING_POSTFINALCOMMIT] = "processing-postfinalcommit",
		[VSS_SS_CREATED] = "created",
		[VSS_SS_ABORTED] = "aborted",
		[VSS_SS_DELETED] = "deleted",
		[VSS_SS_POSTCOMMITTED] = "postcommitted",
	};

	return (unsigned)s < VSS_SS_COUNT && names[s] ? names[s] : "unknown";
}

const char *provider_type_name(vss_provider_type t)
{
	switch (t) {
	case VSS_PROV_SYSTEM:
		return "System";
	case VSS_PROV_SOFTWARE:
		return "Software";
	case VSS_PROV_HARDWARE:
		return "Hardware";
	case VSS_PROV_FILESHARE:
		return "Fileshare";
	default:
		return "Unknown";
	}
}

const char *writer_state_text(vss_writer_state s)
{
	static const char *const texts[VSS_WS_COUNT] = {
		[VSS_WS_UNKNOWN] = "Unknown",
		[VSS_WS_STABLE] = "Stable",
		[VSS_WS_WAITING_FOR_FREEZE] = "Waiting for freeze",
		[VSS_WS_WAITING_FOR_THAW] = "Waiting for thaw",
		[VSS_WS_WAITING_FOR_POST_SNAPSHOT] = "Waiting for post snapshot",
		[VSS_WS_WAITING_FOR_BACKUP_COMPLETE] = "Waiting for backup complete",
		[VSS_WS_FAILED_AT_IDENTIFY] = "Failed at identify",
		[VSS_WS_FAILED_AT_PREPARE_BACKUP] = "Failed at prepare backup",
		[VSS_WS_FAILED_AT_PREPARE_SNAPSHOT] = "Failed at prepare snapshot",
		[VSS_WS_FAILED_AT_FREEZE] = "Failed at freeze",
		[VSS_WS_FAILED_AT_THAW] = "Failed at thaw",
		[VSS_WS_FAILED_AT_POST_SNAPSHOT] = "Failed at post snapshot",
		[VSS_WS_FAILED_AT_BACKUP_COMPLETE] = "Failed at backup complete",
		[VSS_WS_FAILED_AT_PRE_RESTORE] = "Failed at pre restore",
		[VSS_WS_FAILED_AT_POST_RESTORE] = "Failed at post restore",
		[VSS_WS_FAILED_AT_BACKUPSHUTDOWN] = "Failed at backup shutdown",
	};

	return (unsigned)s < VSS_WS_COUNT ? texts[s] : "Unknown";
}
