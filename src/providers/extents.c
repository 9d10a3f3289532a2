/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#include "basic/macro.h"
#include "providers/extents.h"

void extent_map_free(ExtentMap *m)
{
	free(m->extents);
	*m = (ExtentMap){ 0 };
}

int extent_map_read(int fd, uint32_t fiemap_flags, size_t max, ExtentMap *ret)
{
	enum { BATCH = 512 };
	/* Zeroed: valgrind does not know that FIEMAP fills the extents. */
	_cleanup_free_ struct fiemap *fm = calloc(1, sizeof(*fm) + BATCH * sizeof(struct fiemap_extent));
	ExtentMap m = { 0 };
	uint64_t start = 0;
	bool last = false;

	if (!fm)
		return -ENOMEM;
	while (!last) {
		Extent *grown;

		*fm = (struct fiemap){
			.fm_start = start,
			.fm_length = FIEMAP_MAX_OFFSET - start,
			.fm_flags = fiemap_flags,
			.fm_extent_count = BATCH,
		};
		/* Only the first call needs to write out: the rest of the
		 * file was written out with it. */
		fiemap_flags &= ~FIEMAP_FLAG_SYNC;
		if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) {
			extent_map_free(&m);
			return -errno;
		}
		if (fm->fm_mapped_extents == 0)
			break;
		if (m.n + fm->fm_mapped_extents > max) {
			extent_map_free(&m);
			return -E2BIG;
		}
		grown = realloc(m.extents, (m.n + fm->fm_mapped_extents) * sizeof(*grown));
		if (!grown) {
			extent_map_free(&m);
			return -ENOMEM;
		}
		m.extents = grown;
		for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
			const struct fiemap_extent *e = &fm->fm_extents[i];

			m.extents[m.n++] = (Extent){
				.logical = e->fe_logical,
				.physical = e->fe_physical,
				.length = e->fe_length,
				.flags = e->fe_flags,
			};
			last = e->fe_flags & FIEMAP_EXTENT_LAST;
			start = e->fe_logical + e->fe_length;
		}
	}
	*ret = m;
	return 0;
}

/* The extent of m holding offset pos, or NULL for a hole; *i is where the
 * search goes on (pos only grows). *ret_end is where that extent or hole
 * ends. */
static const Extent *extent_at(const ExtentMap *m, size_t *i, uint64_t pos, uint64_t *ret_end)
{
	while (*i < m->n && m->extents[*i].logical + m->extents[*i].length <= pos)
		(*i)++;
	if (*i == m->n) {
		*ret_end = UINT64_MAX;
		return NULL;
	}
	if (m->extents[*i].logical > pos) {
		*ret_end = m->extents[*i].logical;
		return NULL;
	}
	*ret_end = m->extents[*i].logical + m->extents[*i].length;
	return &m->extents[*i];
}

/* Whether the data at pos is the same in two files mapped there by a and b. */
static bool same_data(const Extent *a, const Extent *b, uint64_t pos)
{
	const uint32_t unsure = FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_DATA_INLINE |
				FIEMAP_EXTENT_DATA_TAIL | FIEMAP_EXTENT_NOT_ALIGNED | FIEMAP_EXTENT_DATA_ENCRYPTED;

	if (!a || !b)
		return !a && !b;
	if ((a->flags | b->flags) & unsure)
		return false;
	if ((a->flags ^ b->flags) & (FIEMAP_EXTENT_UNWRITTEN | FIEMAP_EXTENT_ENCODED))
		return false;
	/* An encoded (compressed) extent's physical address is where the
	 * whole encoded piece starts, not that of the byte at pos: only the
	 * very same extent is the same data. */
	if (a->flags & FIEMAP_EXTENT_ENCODED)
		return a->logical == b->logical && a->physical == b->physical && a->length == b->length;
	return a->physical + (pos - a->logical) == b->physical + (pos - b->logical);
}

static int emit(int (*range)(uint64_t, uint64_t, void *), void *userdata, uint64_t start, uint64_t end,
                uint64_t size)
{
	return range(start, end >= size ? 0 : end - start, userdata);
}

int extent_map_diff(const ExtentMap *base, const ExtentMap *now, uint64_t size, uint64_t block,
                    int (*range)(uint64_t offset, uint64_t length, void *userdata), void *userdata)
{
	uint64_t pos = 0, start = 0, end = 0;
	size_t i = 0, j = 0;
	int n = 0, r;

	while (pos < size) {
		uint64_t end_a, end_b, next, s, e;
		const Extent *a = extent_at(base, &i, pos, &end_a), *b = extent_at(now, &j, pos, &end_b);

		next = MIN(MIN(end_a, end_b), size);
		if (!same_data(a, b, pos)) {
			s = pos & ~(block - 1);
			e = (next + block - 1) & ~(block - 1);
			if (e < next || e > size)
				e = size;
			if (n > 0 && s <= end) {
				end = MAX(end, e);
			} else {
				if (n > 0 && (r = emit(range, userdata, start, end, size)) < 0)
					return r;
				n++;
				start = s;
				end = e;
			}
		}
		pos = next;
	}
	if (n > 0 && (r = emit(range, userdata, start, end, size)) < 0)
		return r;
	return n;
}
