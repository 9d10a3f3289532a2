/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The parts of the LVM provider that need no device-mapper: reading lvm's
 * JSON report, the names and tags vss gives snapshot LVs, and the size rule
 * of classic snapshots. Kept apart so that unit tests run them on a kernel
 * without device-mapper.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vss/types.h>

/* One row of `lvs --reportformat json --units b --nosuffix` (LvmFields). */
typedef struct LvmLv {
	char *vg_name;
	char *lv_name;
	char *lv_uuid;          /* as lvm prints it, with dashes */
	char *vg_uuid;
	char *segtype;          /* "linear", "striped", "thin", "thin-pool", ... */
	char *pool_lv;          /* of a thin LV */
	char *origin;           /* of a snapshot */
	char *lv_attr;          /* "Vwi-aotz--": [0] type, [4] state */
	char **tags;            /* NULL-terminated */
	uint64_t lv_size;
	uint64_t vg_free;
	uint64_t vg_extent_size;
	double data_percent;    /* -1 when lvm prints none */
	double metadata_percent;
	int kernel_major, kernel_minor; /* -1 when not active */
	int thin_id;            /* of a thin LV, -1 otherwise */
} LvmLv;

/* The -o fields LvmLv is read from. */
#define LVM_FIELDS                                                                                     \
	"vg_name,lv_name,lv_uuid,vg_uuid,segtype,pool_lv,origin,lv_attr,lv_tags,lv_size,vg_free,"      \
	"vg_extent_size,data_percent,metadata_percent,lv_kernel_major,lv_kernel_minor,thin_id"

void lvm_lvs_free(LvmLv *lvs, size_t n);

/* Parse lvm's JSON report (the "lv" rows of its first report) with json-c;
 * -EBADMSG when it is not one. */
int lvm_report_parse(const char *json, LvmLv **ret, size_t *ret_n);

/* The tags vss gives a snapshot LV, "vss-snapshot:{id}" without braces. */
#define LVM_TAG_SNAPSHOT "vss-snapshot:"
#define LVM_TAG_SET "vss-set:"
/* The snapshot and set ids in an LV's tags; false when it has no snapshot
 * tag (not vss's). */
bool lvm_tags_ids(char *const *tags, vss_id *ret_snapshot, vss_id *ret_set);
/* "vss-snapshot:xxxxxxxx-..." into buf (at least 64 bytes). */
char *lvm_tag_format(const char *prefix, const vss_id *id, char *buf, size_t size);

/* Whether lv_attr says a snapshot overflowed (invalid): lost. */
bool lvm_attr_invalid(const char *attr);

/* lvm's printed uuid form (6-4-4-4-4-4-6, dashed) of 32 characters. */
int lvm_uuid_dashed(const char *raw32, char buf[39]);
/* Split a device-mapper uuid "LVM-<vg uuid><lv uuid>" of a top-level LV
 * (no layer suffix) into both, dashed; -EINVAL when it is none. */
int lvm_dm_uuid_split(const char *dm_uuid, char vg[39], char lv[39]);

/* Whether a name is one lvm accepts for a VG or an LV (what a recorded
 * snapshot path may hold). */
bool lvm_name_valid(const char *name);

/* The size of a classic snapshot of an origin of origin_size bytes: a
 * share (percent) of the origin, rounded up to whole extents. */
uint64_t lvm_cow_size(uint64_t origin_size, uint64_t extent_size, unsigned percent);
#define LVM_COW_PERCENT_DEFAULT 25
