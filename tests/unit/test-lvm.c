/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "basic/id.h"
#include "providers/lvm.h"
#include "providers/registry.h"
#include "tests.h"

/* What `lvs --reportformat json --units b --nosuffix -o LVM_FIELDS` prints
 * (lvm 2.03.16): every value a string, empty when lvm has none. */
static const char report[] =
	"  {\n"
	"      \"report\": [\n"
	"          {\n"
	"              \"lv\": [\n"
	"                  {\"vg_name\":\"vg0\", \"lv_name\":\"data\", \"lv_uuid\":\"Xa1bC2-d3E4-f5G6-h7I8-j9K0-l1M2-n3O4p5\","
	" \"vg_uuid\":\"AAAAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGGGG\", \"segtype\":\"thin\", \"pool_lv\":\"pool\","
	" \"origin\":\"\", \"lv_attr\":\"Vwi-aotz--\", \"lv_tags\":\"\", \"lv_size\":\"1073741824\","
	" \"vg_free\":\"536870912\", \"vg_extent_size\":\"4194304\", \"data_percent\":\"12.50\","
	" \"metadata_percent\":\"\", \"lv_kernel_major\":\"253\", \"lv_kernel_minor\":\"4\"},\n"
	"                  {\"vg_name\":\"vg0\", \"lv_name\":\"vss-0f8fad5b-d9cb-469f-a165-70867728950e\","
	" \"lv_uuid\":\"q\", \"vg_uuid\":\"v\", \"segtype\":\"linear\", \"pool_lv\":\"\", \"origin\":\"home\","
	" \"lv_attr\":\"swi-I-s---\","
	" \"lv_tags\":\"vss-set:7c9e6679-7425-40de-944b-e07fc1f90ae7,vss-snapshot:0f8fad5b-d9cb-469f-a165-70867728950e\","
	" \"lv_size\":\"268435456\", \"vg_free\":\"536870912\", \"vg_extent_size\":\"4194304\","
	" \"data_percent\":\"100.00\", \"metadata_percent\":\"\", \"lv_kernel_major\":\"-1\", \"lv_kernel_minor\":\"-1\"}\n"
	"              ]\n"
	"          }\n"
	"      ]\n"
	"  }\n";

static void test_report(void)
{
	LvmLv *lvs = NULL;
	size_t n = 0;
	vss_id snap, set, want;

	ASSERT_OK(lvm_report_parse(report, &lvs, &n));
	ASSERT_EQ_UINT(2, n);
	ASSERT_STREQ("vg0", lvs[0].vg_name);
	ASSERT_STREQ("thin", lvs[0].segtype);
	ASSERT_STREQ("pool", lvs[0].pool_lv);
	ASSERT_EQ_UINT(1073741824, lvs[0].lv_size);
	ASSERT_EQ_UINT(4194304, lvs[0].vg_extent_size);
	ASSERT_TRUE(lvs[0].data_percent > 12.4 && lvs[0].data_percent < 12.6);
	ASSERT_TRUE(lvs[0].metadata_percent < 0);
	ASSERT_EQ_INT(253, lvs[0].kernel_major);
	ASSERT_EQ_INT(4, lvs[0].kernel_minor);
	ASSERT_NULL(lvs[0].tags[0]);
	ASSERT_FALSE(lvm_tags_ids(lvs[0].tags, &snap, &set));
	ASSERT_FALSE(lvm_attr_invalid(lvs[0].lv_attr));

	ASSERT_EQ_INT(-1, lvs[1].kernel_major);
	ASSERT_STREQ("vss-set:7c9e6679-7425-40de-944b-e07fc1f90ae7", lvs[1].tags[0]);
	ASSERT_TRUE(lvm_tags_ids(lvs[1].tags, &snap, &set));
	ASSERT_HR(S_OK, vss_id_parse("{0f8fad5b-d9cb-469f-a165-70867728950e}", &want));
	ASSERT_ID_EQ(&want, &snap);
	ASSERT_HR(S_OK, vss_id_parse("{7c9e6679-7425-40de-944b-e07fc1f90ae7}", &want));
	ASSERT_ID_EQ(&want, &set);
	ASSERT_TRUE(lvm_attr_invalid(lvs[1].lv_attr));
	lvm_lvs_free(lvs, n);
}

static void test_report_malformed(void)
{
	static const char *const bad[] = {
		"", "not json", "{}", "{\"report\": {}}", "{\"report\": []}", "{\"report\": [{\"vg\": []}]}",
		"{\"report\": [{\"lv\": [1]}]}",
	};
	LvmLv *lvs = NULL;
	size_t n = 0;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ASSERT_ERRNO(-EBADMSG, lvm_report_parse(bad[i], &lvs, &n));
	/* No LV at all is a report too. */
	ASSERT_OK(lvm_report_parse("{\"report\": [{\"lv\": []}]}", &lvs, &n));
	ASSERT_EQ_UINT(0, n);
	lvm_lvs_free(lvs, n);
}

static void test_tags(void)
{
	char buf[96], *tags[3] = { buf, NULL, NULL };
	vss_id id, snap, set;

	vss_id_generate(&id);
	lvm_tag_format(LVM_TAG_SNAPSHOT, &id, buf, sizeof(buf));
	/* lvm refuses braces in tags. */
	ASSERT_NULL(strchr(buf, '{'));
	ASSERT_NULL(strchr(buf, '}'));
	ASSERT_TRUE(lvm_tags_ids(tags, &snap, &set));
	ASSERT_ID_EQ(&id, &snap);
	ASSERT_TRUE(vss_id_is_null(&set));
}

static void test_uuid(void)
{
	char vg[39], lv[39];

	ASSERT_OK(lvm_dm_uuid_split("LVM-0123456789abcdefghijklmnopqrstuvABCDEFGHIJKLMNOPQRSTUVWXYZ012345", vg, lv));
	ASSERT_STREQ("012345-6789-abcd-efgh-ijkl-mnop-qrstuv", vg);
	ASSERT_STREQ("ABCDEF-GHIJ-KLMN-OPQR-STUV-WXYZ-012345", lv);
	/* A layer of an LV is not an LV. */
	ASSERT_ERRNO(-EINVAL, lvm_dm_uuid_split(
		"LVM-0123456789abcdefghijklmnopqrstuvABCDEFGHIJKLMNOPQRSTUVWXYZ012345-real", vg, lv));
	ASSERT_ERRNO(-EINVAL, lvm_dm_uuid_split("CRYPT-LUKS2-0123456789abcdef", vg, lv));
	ASSERT_ERRNO(-EINVAL, lvm_dm_uuid_split(NULL, vg, lv));
}

static void test_names_and_sizes(void)
{
	ASSERT_TRUE(lvm_name_valid("vg0"));
	ASSERT_TRUE(lvm_name_valid("vss-0f8fad5b-d9cb-469f-a165-70867728950e"));
	ASSERT_FALSE(lvm_name_valid(""));
	ASSERT_FALSE(lvm_name_valid(".."));
	ASSERT_FALSE(lvm_name_valid("-x"));
	ASSERT_FALSE(lvm_name_valid("a/b"));
	ASSERT_FALSE(lvm_name_valid("a b"));

	/* A quarter, in whole extents, never nothing. */
	ASSERT_EQ_UINT(256u << 20, lvm_cow_size(1u << 30, 4u << 20, 25));
	ASSERT_EQ_UINT(8u << 20, lvm_cow_size(20u << 20, 4u << 20, 25));
	ASSERT_EQ_UINT(4u << 20, lvm_cow_size(1u << 20, 4u << 20, 25));
	ASSERT_EQ_UINT(4u << 20, lvm_cow_size(0, 4u << 20, 25));
}

/* Asked after the providers it cannot replace: an ext4 in an image on an
 * LV is the image provider's. */
static void test_registered(void)
{
	size_t n;
	const provider_ops *const *all = provider_registry(&n);

	ASSERT_EQ_UINT(3, n);
	ASSERT_TRUE(all[2] == &lvm_provider);
	ASSERT_EQ_UINT(PROVIDER_OPS_VERSION, lvm_provider.version);
	ASSERT_TRUE(provider_find_by_id(&lvm_provider.id) == &lvm_provider);
}

int main(void)
{
	RUN_TEST(test_report);
	RUN_TEST(test_report_malformed);
	RUN_TEST(test_tags);
	RUN_TEST(test_uuid);
	RUN_TEST(test_names_and_sizes);
	RUN_TEST(test_registered);
	TEST_SUMMARY();
	return 0;
}
