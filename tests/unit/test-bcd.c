/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vssd/bcd.h"
#include "tests.h"

/*
 * The Backup Components Document (docs/RESTORE.md): what bcd_format()
 * writes, bcd_parse() reads back the same; the order is fixed, so that two
 * documents of one backup diff to nothing; and the limits vssd relies on
 * hold, each refusal naming its field.
 */

static vss_id id_of(uint8_t n)
{
	vss_id id = { { 0 } };

	id.bytes[15] = n;
	id.bytes[6] = 0x40;
	return id;
}

static vss_wm_file file_at(const char *path)
{
	return (vss_wm_file){ .kind = VSS_FK_FILES, .path = (char *)path, .filespec = (char *)"*", .recursive = true };
}

/* Two writers given out of order, a component of each, two snapshots. */
static void sample(Bcd *d, vss_writer_metadata w[2], vss_wm_component c[2], vss_wm_file f[2], BcdSnapshot s[2],
                   BcdComponent k[2], BcdTarget *t)
{
	f[0] = file_at("/srv/b");
	f[1] = file_at("/srv/a");
	c[0] = (vss_wm_component){ .type = VSS_CT_FILEGROUP, .name = (char *)"data", .files = &f[0], .n_files = 1 };
	c[1] = (vss_wm_component){ .type = VSS_CT_DATABASE, .logical_path = (char *)"db", .name = (char *)"main",
				   .caption = (char *)"Main", .selectable = true, .files = &f[1], .n_files = 1 };
	w[0] = (vss_writer_metadata){ .instance_id = id_of(1), .class_id = id_of(2), .name = (char *)"zeta",
				      .usage = VSS_UT_USERDATA, .source = VSS_ST_OTHER, .level = VSS_APP_BACK_END,
				      .components = &c[0], .n_components = 1 };
	w[1] = (vss_writer_metadata){ .instance_id = id_of(3), .class_id = id_of(4), .name = (char *)"alpha",
				      .instance_name = (char *)"one", .usage = VSS_UT_OTHER,
				      .source = VSS_ST_TRANSACTEDDB, .level = VSS_APP_FRONT_END, .components = &c[1],
				      .n_components = 1, .excluded = &f[0], .n_excluded = 1 };
	s[0] = (BcdSnapshot){ .snapshot_id = id_of(5), .provider_id = id_of(6), .volume = (char *)"/srv/b",
			      .creation_timestamp = 42 };
	s[1] = (BcdSnapshot){ .snapshot_id = id_of(7), .provider_id = id_of(6), .volume = (char *)"/srv/a",
			      .device_object = (char *)"/srv/a/.vss/x", .creation_timestamp = 43 };
	*t = (BcdTarget){ .path = (char *)"/srv/a", .filespec = (char *)"*", .recursive = true,
			  .alternate_path = (char *)"/restore/a" };
	k[0] = (BcdComponent){ .writer_class_id = id_of(2), .writer_instance_id = id_of(1), .type = VSS_CT_FILEGROUP,
			       .name = (char *)"data", .backup_succeeded = 1 };
	k[1] = (BcdComponent){ .writer_class_id = id_of(4), .writer_instance_id = id_of(3), .type = VSS_CT_DATABASE,
			       .logical_path = (char *)"db", .name = (char *)"main", .backup_succeeded = -1,
			       .selected_for_restore = true, .restore_options = (char *)"x=1", .new_targets = t,
			       .n_new_targets = 1 };
	*d = (Bcd){ .state = (char *)"complete", .backup_type = VSS_BT_FULL, .select_components = true,
		    .context = 0x9, .set_id = id_of(8), .snapshots = s, .n_snapshots = 2, .writers = w, .n_writers = 2,
		    .components = k, .n_components = 2 };
}

static void test_round_trip(void)
{
	vss_writer_metadata w[2];
	vss_wm_component c[2];
	vss_wm_file f[2];
	BcdSnapshot s[2];
	BcdComponent k[2];
	BcdTarget t;
	Bcd d, back;
	char *text = NULL, *again = NULL, error[512];
	const BcdComponent *main_c;

	sample(&d, w, c, f, s, k, &t);
	ASSERT_OK(bcd_format(&d, &text));
	ASSERT_OK(bcd_parse(text, strlen(text), &back, error, sizeof(error)));
	ASSERT_OK(bcd_format(&back, &again));
	ASSERT_STREQ(text, again);
	/* Sorted: writers by name, snapshots by volume. */
	ASSERT_STREQ("alpha", back.writers[0].name);
	ASSERT_STREQ("one", back.writers[0].instance_name);
	ASSERT_EQ_INT(VSS_APP_FRONT_END, back.writers[0].level);
	ASSERT_EQ_UINT(1, back.writers[0].n_excluded);
	ASSERT_STREQ("/srv/a", back.snapshots[0].volume);
	ASSERT_STREQ("/srv/a/.vss/x", back.snapshots[0].device_object);
	ASSERT_NULL(back.snapshots[1].device_object);
	ASSERT_EQ_INT(43, back.snapshots[0].creation_timestamp);
	ASSERT_ID_EQ(&d.set_id, &back.set_id);
	ASSERT_EQ_INT(0x9, back.context);
	ASSERT_EQ_INT(VSS_BT_FULL, back.backup_type);
	/* Components keep the order they were added in. */
	ASSERT_STREQ("data", back.components[0].name);
	ASSERT_EQ_INT(1, back.components[0].backup_succeeded);
	main_c = bcd_find_component(&back, &k[1].writer_class_id, VSS_CT_DATABASE, "db", "main");
	ASSERT_NOT_NULL(main_c);
	ASSERT_EQ_INT(-1, main_c->backup_succeeded);
	ASSERT_TRUE(main_c->selected_for_restore);
	ASSERT_STREQ("x=1", main_c->restore_options);
	ASSERT_EQ_UINT(1, main_c->n_new_targets);
	ASSERT_STREQ("/restore/a", main_c->new_targets[0].alternate_path);
	ASSERT_NULL(bcd_find_component(&back, &k[1].writer_class_id, VSS_CT_DATABASE, NULL, "main"));
	/* The key order is fixed: the document starts the same way always. */
	ASSERT_TRUE(strncmp(text, "{\n  \"format\": \"vss-backup-components\",\n  \"version\": 1,", 53) == 0);
	free(text);
	free(again);
	bcd_clear(&back);
}

/* One edit of the sample's text, and what the refusal must name. */
static void refused(const char *from, const char *to, const char *why)
{
	vss_writer_metadata w[2];
	vss_wm_component c[2];
	vss_wm_file f[2];
	BcdSnapshot s[2];
	BcdComponent k[2];
	BcdTarget t;
	Bcd d, back;
	char *text = NULL, *edited, *at, error[512];

	sample(&d, w, c, f, s, k, &t);
	ASSERT_OK(bcd_format(&d, &text));
	at = strstr(text, from);
	if (!at)
		TEST_FAIL("\"%s\" is not in the document:\n%s", from, text);
	ASSERT_TRUE(asprintf(&edited, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from)) > 0);
	if (bcd_parse(edited, strlen(edited), &back, error, sizeof(error)) != -EINVAL)
		TEST_FAIL("accepted with \"%s\" made \"%s\"", from, to);
	if (!strstr(error, why))
		TEST_FAIL("refusal \"%s\" does not say \"%s\"", error, why);
	test_checks++;
	/* Nothing is left in the output. */
	ASSERT_NULL(back.writers);
	free(edited);
	free(text);
}

static void test_refusals(void)
{
	refused("\"version\": 1", "\"version\": 2", "version: not 1");
	refused("\"version\": 1", "\"version\": \"1\"", "version: not 1");
	refused("vss-backup-components", "backup-components", "format: not");
	refused("\"state\": \"complete\"", "\"state\": \"complete\", \"more\": 1", "backup.more: not a field");
	refused("\"type\": \"full\"", "\"type\": \"huge\"", "backup.type: \"huge\" is not one of its values");
	refused("\"context\": 9", "\"context\": 9.5", "backup.context: not an integer");
	refused("\"context\": 9", "\"context\": 99999999999", "backup.context: out of range");
	refused("\"name\": \"alpha\"", "\"name\": \"\"", "writers[0].name: empty");
	refused("\"name\": \"alpha\"", "\"name\": \"al\\u0000pha\"", "writers[0].name: holds a NUL");
	refused("\"name\": \"alpha\"", "\"name\": 1", "writers[0].name: not a string");
	refused("\"instance_id\": \"{", "\"instance_id\": \"x{", "writers[0].instance_id: not an id");
	refused("\"alternate_path\": \"/restore/a\"", "\"alternate_path\": \"restore/a\"",
		"components[1].new_targets[0]: paths must be absolute");
	refused("\"volume\": \"/srv/a\"", "\"volume\": \"srv/a\"", "not an absolute path");
	refused("\"selectable\": true", "\"selectable\": 1", "writers[0].components[0].selectable: not true or false");
	refused("\"name\": \"data\",\n      \"backup", "\"name\": \"other\",\n      \"backup",
		"components[0]: names a component that no writer of the document has");
	refused("\"recursive\": true", "\"recursive\": true, \"x\": [[[[[[1]]]]]]", "nested deeper than 8 levels");
	refused("\"snapshots\": [", "\"snapshots\": [1,", "snapshot_set.snapshots[0]: not an object");
}

static void test_text_limits(void)
{
	char error[512], *big;
	size_t n = BCD_MAX_SIZE + 1;
	Bcd d;

	ASSERT_ERRNO(-EINVAL, bcd_parse("", 0, &d, error, sizeof(error)));
	ASSERT_NOT_NULL(strstr(error, "truncated"));
	ASSERT_ERRNO(-EINVAL, bcd_parse("{} x", 4, &d, error, sizeof(error)));
	ASSERT_ERRNO(-EINVAL, bcd_parse("{\"a\"\0}", 6, &d, error, sizeof(error)));
	ASSERT_NOT_NULL(strstr(error, "NUL byte"));
	ASSERT_ERRNO(-EINVAL, bcd_parse("[]", 2, &d, error, sizeof(error)));
	ASSERT_NOT_NULL(strstr(error, "not a JSON object"));
	big = malloc(n);
	ASSERT_NOT_NULL(big);
	memset(big, ' ', n);
	ASSERT_ERRNO(-EINVAL, bcd_parse(big, n, &d, error, sizeof(error)));
	ASSERT_NOT_NULL(strstr(error, "larger than"));
	free(big);
}

/* What the parser would refuse, the formatter does not write. */
static void test_format_limits(void)
{
	vss_writer_metadata w[2];
	vss_wm_component c[2];
	vss_wm_file f[2];
	BcdSnapshot s[2];
	BcdComponent k[2];
	BcdTarget t;
	Bcd d;
	char *text = NULL, *long_name = malloc(BCD_MAX_STRING + 2);

	ASSERT_NOT_NULL(long_name);
	memset(long_name, 'x', BCD_MAX_STRING + 1);
	long_name[BCD_MAX_STRING + 1] = '\0';
	sample(&d, w, c, f, s, k, &t);
	w[0].name = long_name;
	ASSERT_ERRNO(-EINVAL, bcd_format(&d, &text));
	w[0].name = (char *)"zeta";
	d.n_snapshots = BCD_MAX_SNAPSHOTS + 1;
	ASSERT_ERRNO(-EINVAL, bcd_format(&d, &text));
	ASSERT_NULL(text);
	free(long_name);
}

int main(void)
{
	RUN_TEST(test_round_trip);
	RUN_TEST(test_refusals);
	RUN_TEST(test_text_limits);
	RUN_TEST(test_format_limits);
	TEST_SUMMARY();
	return 0;
}
