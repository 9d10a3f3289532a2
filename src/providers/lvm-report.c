/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/id.h"
#include "basic/macro.h"
#include "basic/util.h"
#include "providers/lvm.h"

static void lv_clear(LvmLv *lv)
{
	free(lv->vg_name);
	free(lv->lv_name);
	free(lv->lv_uuid);
	free(lv->vg_uuid);
	free(lv->segtype);
	free(lv->pool_lv);
	free(lv->origin);
	free(lv->lv_attr);
	strv_free(lv->tags);
}

void lvm_lvs_free(LvmLv *lvs, size_t n)
{
	for (size_t i = 0; lvs && i < n; i++)
		lv_clear(&lvs[i]);
	free(lvs);
}

/* A field as lvm prints it: every value is a string. */
static const char *field(struct json_object *row, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(row, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int dup_field(struct json_object *row, const char *key, char **ret)
{
	const char *s = field(row, key);

	*ret = strdup(s ?: "");
	return *ret ? 0 : -ENOMEM;
}

static uint64_t u64_field(struct json_object *row, const char *key)
{
	uint64_t v;

	return parse_u64(field(row, key) ?: "", &v) < 0 ? 0 : v;
}

static double percent_field(struct json_object *row, const char *key)
{
	const char *s = field(row, key);
	char *end;
	double v;

	if (!s || !*s)
		return -1;
	v = strtod(s, &end);
	return end == s ? -1 : v;
}

static int int_field(struct json_object *row, const char *key)
{
	const char *s = field(row, key);
	char *end;
	long v;

	if (!s || !*s)
		return -1;
	v = strtol(s, &end, 10);
	return *end || v < 0 || v > 0xfffff ? -1 : (int)v;
}

/* lv_tags is one string, the tags separated by commas. */
static int split_tags(const char *s, char ***ret)
{
	char **tags = calloc(1, sizeof(char *));
	int r = 0;

	if (!tags)
		return -ENOMEM;
	while (s && *s && r >= 0) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		char *t = strndup(s, len);

		r = t ? strv_push_dup(&tags, t) : -ENOMEM;
		free(t);
		s = comma ? comma + 1 : NULL;
	}
	if (r < 0) {
		strv_free(tags);
		return r;
	}
	*ret = tags;
	return 0;
}

static int parse_row(struct json_object *row, LvmLv *lv)
{
	int r;

	r = dup_field(row, "vg_name", &lv->vg_name);
	r = r ?: dup_field(row, "lv_name", &lv->lv_name);
	r = r ?: dup_field(row, "lv_uuid", &lv->lv_uuid);
	r = r ?: dup_field(row, "vg_uuid", &lv->vg_uuid);
	r = r ?: dup_field(row, "segtype", &lv->segtype);
	r = r ?: dup_field(row, "pool_lv", &lv->pool_lv);
	r = r ?: dup_field(row, "origin", &lv->origin);
	r = r ?: dup_field(row, "lv_attr", &lv->lv_attr);
	r = r ?: split_tags(field(row, "lv_tags"), &lv->tags);
	if (r < 0)
		return r;
	lv->lv_size = u64_field(row, "lv_size");
	lv->vg_free = u64_field(row, "vg_free");
	lv->vg_extent_size = u64_field(row, "vg_extent_size");
	lv->data_percent = percent_field(row, "data_percent");
	lv->metadata_percent = percent_field(row, "metadata_percent");
	lv->kernel_major = int_field(row, "lv_kernel_major");
	lv->kernel_minor = int_field(row, "lv_kernel_minor");
	lv->thin_id = int_field(row, "thin_id");
	return 0;
}

int lvm_report_parse(const char *json, LvmLv **ret, size_t *ret_n)
{
	struct json_object *root, *reports, *report, *rows;
	LvmLv *lvs = NULL;
	size_t n = 0, count;
	int r = 0;

	root = json_tokener_parse(json ?: "");
	if (!root)
		return -EBADMSG;
	/* {"report": [{"lv": [{...}, ...]}]} */
	if (!json_object_object_get_ex(root, "report", &reports) || !json_object_is_type(reports, json_type_array) ||
	    json_object_array_length(reports) < 1 || !(report = json_object_array_get_idx(reports, 0)) ||
	    !json_object_object_get_ex(report, "lv", &rows) || !json_object_is_type(rows, json_type_array)) {
		json_object_put(root);
		return -EBADMSG;
	}
	count = json_object_array_length(rows);
	lvs = calloc(count ?: 1, sizeof(*lvs));
	if (!lvs)
		r = -ENOMEM;
	for (size_t i = 0; r >= 0 && i < count; i++) {
		struct json_object *row = json_object_array_get_idx(rows, i);

		if (!json_object_is_type(row, json_type_object)) {
			r = -EBADMSG;
			break;
		}
		n++;
		r = parse_row(row, &lvs[i]);
	}
	json_object_put(root);
	if (r < 0) {
		lvm_lvs_free(lvs, n);
		return r;
	}
	*ret = lvs;
	*ret_n = n;
	return 0;
}

char *lvm_tag_format(const char *prefix, const vss_id *id, char *buf, size_t size)
{
	char s[VSS_ID_STRING_MAX];

	vss_id_format(id, s);
	/* Braces are not allowed in tags. */
	s[strlen(s) - 1] = '\0';
	snprintf(buf, size, "%s%s", prefix, s + 1);
	return buf;
}

bool lvm_tags_ids(char *const *tags, vss_id *ret_snapshot, vss_id *ret_set)
{
	bool found = false;

	*ret_snapshot = *ret_set = VSS_ID_NULL;
	for (size_t i = 0; tags && tags[i]; i++) {
		if (strncmp(tags[i], LVM_TAG_SNAPSHOT, strlen(LVM_TAG_SNAPSHOT)) == 0)
			found = !VSS_FAILED(vss_id_parse(tags[i] + strlen(LVM_TAG_SNAPSHOT), ret_snapshot));
		else if (strncmp(tags[i], LVM_TAG_SET, strlen(LVM_TAG_SET)) == 0)
			(void)vss_id_parse(tags[i] + strlen(LVM_TAG_SET), ret_set);
	}
	return found;
}

bool lvm_attr_invalid(const char *attr)
{
	/* The fifth character is the state: I for an invalid snapshot, S for
	 * an invalid one that is suspended. */
	return attr && strlen(attr) >= 5 && (attr[0] == 's' || attr[0] == 'S') && (attr[4] == 'I' || attr[4] == 'S');
}

int lvm_uuid_dashed(const char *raw32, char buf[39])
{
	static const unsigned groups[] = { 6, 4, 4, 4, 4, 4, 6 };
	size_t k = 0, j = 0;

	for (size_t g = 0; g < ELEMENTSOF(groups); g++) {
		if (g > 0)
			buf[j++] = '-';
		for (unsigned c = 0; c < groups[g]; c++, k++) {
			char ch = raw32[k];

			if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
				return -EINVAL;
			buf[j++] = ch;
		}
	}
	buf[j] = '\0';
	return 0;
}

int lvm_dm_uuid_split(const char *dm_uuid, char vg[39], char lv[39])
{
	size_t len = dm_uuid ? strlen(dm_uuid) : 0;

	/* A layer ("-real", "-cow", "-tpool") is no volume of its own. */
	if (len != 4 + 64 || strncmp(dm_uuid, "LVM-", 4) != 0)
		return -EINVAL;
	if (lvm_uuid_dashed(dm_uuid + 4, vg) < 0 || lvm_uuid_dashed(dm_uuid + 4 + 32, lv) < 0)
		return -EINVAL;
	return 0;
}

bool lvm_name_valid(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len > 127 || name[0] == '-' || streq(name, ".") || streq(name, ".."))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

uint64_t lvm_cow_size(uint64_t origin_size, uint64_t extent_size, unsigned percent)
{
	uint64_t want = origin_size / 100 * percent + (origin_size % 100) * percent / 100;

	if (extent_size == 0)
		return want;
	want = (want + extent_size - 1) / extent_size * extent_size;
	return want ?: extent_size;
}
