/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Where a file's data lies (FIEMAP), and what changed between two maps of
 * files that share extents. A block shared with a clone is never written in
 * place (the filesystem copies it on write), so a range that two maps put on
 * the same blocks holds the same data in both: comparing the map of a file
 * with the map of its clone finds every range written since the clone, in
 * the time it takes to read the maps, however old the clone.
 */

#include <stddef.h>
#include <stdint.h>

typedef struct Extent {
	uint64_t logical;       /* offset in the file */
	uint64_t physical;      /* where on the device */
	uint64_t length;
	uint32_t flags;         /* FIEMAP_EXTENT_* */
} Extent;

typedef struct ExtentMap {
	Extent *extents;        /* sorted by logical offset, disjoint */
	size_t n;
} ExtentMap;

/* Read the map of the file open as fd; fiemap_flags FIEMAP_FLAG_SYNC writes
 * out its dirty data first, so that every range has its place on disk.
 * -E2BIG when the file has more than max extents (the map is then
 * incomplete and freed). The caller frees *ret with extent_map_free(). */
int extent_map_read(int fd, uint32_t fiemap_flags, size_t max, ExtentMap *ret);
void extent_map_free(ExtentMap *m);

/* Call range(offset, length, userdata) for each range of [0, size) where a
 * file mapped as now may hold other data than one mapped as base, in
 * ascending order, adjacent ranges merged and widened to multiples of
 * block (a power of two); a range that reaches size gets length 0 ("to the
 * end of the file", as FICLONERANGE takes it). A range counts as unchanged
 * only where both maps are holes, or both map it to the same blocks with the
 * same state (written or not); data still in memory (delalloc), inline or
 * encoded data unlike the other map's is changed. Stops at, and returns,
 * the first negative result of range; otherwise the number of ranges. */
int extent_map_diff(const ExtentMap *base, const ExtentMap *now, uint64_t size, uint64_t block,
                    int (*range)(uint64_t offset, uint64_t length, void *userdata), void *userdata);
