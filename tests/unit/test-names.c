/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include <vss/types.h>

#include "basic/macro.h"
#include "shared/names.h"
#include "tests.h"

/* Names are what vssadmin accepts and --json prints, labels what Windows'
 * vssadmin prints as "Type:"; scripts depend on both. */
static const struct {
	const char *name;
	const char *hyphenated;
	const char *label;
	int32_t value;
} contexts[] = {
	{ "backup", "backup", "Backup", 0x00 },
	{ "file_share_backup", "file-share-backup", "FileShareBackup", 0x10 },
	{ "nas_rollback", "nas-rollback", "DataVolumeRollback", 0x19 },
	{ "app_rollback", "app-rollback", "ApplicationRollback", 0x09 },
	{ "client_accessible", "client-accessible", "ClientAccessible", 0x1D },
	{ "client_accessible_writers", "client-accessible-writers", "ClientAccessibleWriters", 0x0D },
};

/* Bits that say how a snapshot is, not what context made it. */
static const int32_t non_context_bits[] = {
	VSS_VOLSNAP_ATTR_NO_AUTORECOVERY, VSS_VOLSNAP_ATTR_TRANSPORTABLE, VSS_VOLSNAP_ATTR_NOT_SURFACED,
	VSS_VOLSNAP_ATTR_NOT_TRANSACTED, VSS_VOLSNAP_ATTR_HARDWARE_ASSISTED, VSS_VOLSNAP_ATTR_DIFFERENTIAL,
	VSS_VOLSNAP_ATTR_PLEX, VSS_VOLSNAP_ATTR_IMPORTED, VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY,
	VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY, VSS_VOLSNAP_ATTR_AUTORECOVER, VSS_VOLSNAP_ATTR_ROLLBACK_RECOVERY,
	VSS_VOLSNAP_ATTR_DELAYED_POSTSNAPSHOT, VSS_VOLSNAP_ATTR_TXF_RECOVERY, VSS_VOLSNAP_ATTR_FILE_SHARE,
};

static void test_contexts(void)
{
	for (size_t i = 0; i < ELEMENTSOF(contexts); i++) {
		int32_t v = contexts[i].value;

		ASSERT_EQ_INT(v, context_from_name(contexts[i].name));
		ASSERT_EQ_INT(v, context_from_name(contexts[i].hyphenated));
		ASSERT_STREQ(contexts[i].name, context_name_of_attributes(v));
		ASSERT_STREQ(contexts[i].label, context_label_of_attributes(v));

		/* A snapshot's attributes carry more than its context. */
		for (size_t b = 0; b < ELEMENTSOF(non_context_bits); b++) {
			ASSERT_STREQ(contexts[i].name, context_name_of_attributes(v | non_context_bits[b]));
			ASSERT_STREQ(contexts[i].label, context_label_of_attributes(v | non_context_bits[b]));
		}
	}
	/* The header's constants are the same values. */
	ASSERT_EQ_INT(VSS_CTX_BACKUP, context_from_name("backup"));
	ASSERT_EQ_INT(VSS_CTX_FILE_SHARE_BACKUP, context_from_name("file_share_backup"));
	ASSERT_EQ_INT(VSS_CTX_NAS_ROLLBACK, context_from_name("nas_rollback"));
	ASSERT_EQ_INT(VSS_CTX_APP_ROLLBACK, context_from_name("app_rollback"));
	ASSERT_EQ_INT(VSS_CTX_CLIENT_ACCESSIBLE, context_from_name("client_accessible"));
	ASSERT_EQ_INT(VSS_CTX_CLIENT_ACCESSIBLE_WRITERS, context_from_name("client_accessible_writers"));
}

static void test_context_unknown(void)
{
	static const char *const bad[] = {
		"", "all", "Backup", "backup ", " backup", "app", "app_rollbackx", "client_accessible_",
		"nas__rollback",
		/* Longer than any name; must not match a prefix of one. */
		"client_accessible_writers_client_accessible_writers_client_accessible_writers",
	};

	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		ASSERT_EQ_INT(-1, context_from_name(bad[i]));

	/* Combinations that are no context. */
	ASSERT_STREQ("unknown", context_name_of_attributes(VSS_VOLSNAP_ATTR_PERSISTENT));
	ASSERT_STREQ("Unknown", context_label_of_attributes(VSS_VOLSNAP_ATTR_PERSISTENT));
	ASSERT_STREQ("unknown", context_name_of_attributes(VSS_VOLSNAP_ATTR_CLIENT_ACCESSIBLE));
	ASSERT_STREQ("unknown", context_name_of_attributes(VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE));
	ASSERT_STREQ("unknown",
		     context_name_of_attributes(VSS_VOLSNAP_ATTR_PERSISTENT | VSS_VOLSNAP_ATTR_NO_WRITERS));
}

/* The strings and the order in which vssadmin lists them. */
static const struct {
	int32_t bit;
	const char *text;
} attribute_texts[] = {
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

static void test_attributes(void)
{
	char buf[512], want[512] = "";
	int32_t all = 0;

	ASSERT_STREQ("", attributes_to_string(0, buf, sizeof(buf)));
	for (size_t i = 0; i < ELEMENTSOF(attribute_texts); i++) {
		ASSERT_TRUE(attributes_to_string(attribute_texts[i].bit, buf, sizeof(buf)) == buf);
		ASSERT_STREQ(attribute_texts[i].text, buf);
		all |= attribute_texts[i].bit;
		if (i)
			strcat(want, ", ");
		strcat(want, attribute_texts[i].text);
	}
	ASSERT_STREQ(want, attributes_to_string(all, buf, sizeof(buf)));
	/* Bits without a name are left out rather than printed as garbage. */
	ASSERT_STREQ(want, attributes_to_string(-1, buf, sizeof(buf)));
	ASSERT_STREQ("", attributes_to_string(0x00008000, buf, sizeof(buf)));

	ASSERT_STREQ("Persistent, Client-accessible, No auto release, No writers",
		     attributes_to_string(VSS_CTX_CLIENT_ACCESSIBLE, buf, sizeof(buf)));
	ASSERT_STREQ("Persistent, No auto release, Differential, Exposed locally",
		     attributes_to_string(VSS_CTX_APP_ROLLBACK | VSS_VOLSNAP_ATTR_DIFFERENTIAL |
						  VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY,
					  buf, sizeof(buf)));
}

/* A short buffer gets a terminated prefix and nothing beyond it. */
static void test_attributes_truncated(void)
{
	char full[512];
	size_t full_len;

	attributes_to_string(-1, full, sizeof(full));
	full_len = strlen(full);
	for (size_t size = 1; size <= full_len + 1; size++) {
		char buf[600];

		memset(buf, '#', sizeof(buf));
		attributes_to_string(-1, buf, size);
		ASSERT_EQ_UINT(size - 1, strlen(buf));
		ASSERT_TRUE(strncmp(full, buf, size - 1) == 0);
		ASSERT_EQ_INT('#', buf[size]);
	}
}

static void test_snapshot_states(void)
{
	static const char *const names[VSS_SS_COUNT] = {
		"unknown", "preparing", "processing-prepare", "prepared", "processing-precommit",
		"precommitted", "processing-commit", "committed", "processing-postcommit",
		"processing-prefinalcommit", "prefinalcommitted", "processing-postfinalcommit",
		"created", "aborted", "deleted", "postcommitted",
	};

	for (int s = 0; s < VSS_SS_COUNT; s++)
		ASSERT_STREQ(names[s], snapshot_state_name((vss_snapshot_state)s));
	ASSERT_STREQ("created", snapshot_state_name(VSS_SS_CREATED));
	ASSERT_STREQ("unknown", snapshot_state_name(VSS_SS_COUNT));
	ASSERT_STREQ("unknown", snapshot_state_name((vss_snapshot_state)-1));
	ASSERT_STREQ("unknown", snapshot_state_name((vss_snapshot_state)1000));
}

static void test_provider_types(void)
{
	ASSERT_STREQ("Unknown", provider_type_name(VSS_PROV_UNKNOWN));
	ASSERT_STREQ("System", provider_type_name(VSS_PROV_SYSTEM));
	ASSERT_STREQ("Software", provider_type_name(VSS_PROV_SOFTWARE));
	ASSERT_STREQ("Hardware", provider_type_name(VSS_PROV_HARDWARE));
	ASSERT_STREQ("Fileshare", provider_type_name(VSS_PROV_FILESHARE));
	ASSERT_STREQ("Unknown", provider_type_name((vss_provider_type)5));
	ASSERT_STREQ("Unknown", provider_type_name((vss_provider_type)-1));
}

int main(void)
{
	RUN_TEST(test_contexts);
	RUN_TEST(test_context_unknown);
	RUN_TEST(test_attributes);
	RUN_TEST(test_attributes_truncated);
	RUN_TEST(test_snapshot_states);
	RUN_TEST(test_provider_types);
	TEST_SUMMARY();
	return 0;
}
