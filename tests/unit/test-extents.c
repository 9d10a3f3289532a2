/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <linux/fiemap.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "providers/extents.h"
#include "tests.h"

#define K 4096u
#define MAP(...) ((ExtentMap){ .extents = (Extent[]){ __VA_ARGS__ }, .n = sizeof((Extent[]){ __VA_ARGS__ }) / sizeof(Extent) })
#define EMPTY ((ExtentMap){ 0 })

typedef struct Found {
	uint64_t r[16][2];
	size_t n;
} Found;

static int collect(uint64_t offset, uint64_t length, void *userdata)
{
	Found *f = userdata;

	ASSERT_TRUE(f->n < 16);
	f->r[f->n][0] = offset;
	f->r[f->n][1] = length;
	f->n++;
	return 0;
}

static Found diff(ExtentMap base, ExtentMap now, uint64_t size)
{
	Found f = { 0 };
	int n = extent_map_diff(&base, &now, size, K, collect, &f);

	ASSERT_EQ_INT((int)f.n, n);
	return f;
}

#define ASSERT_RANGE(f, i, off, len)                  \
	do {                                          \
		ASSERT_EQ_UINT((off), (f).r[(i)][0]); \
		ASSERT_EQ_UINT((len), (f).r[(i)][1]); \
	} while (0)

/* A clone's map against the image's, after the image was written in
 * places: each overwrite moved its blocks elsewhere. */
static void test_only_moved_blocks_differ(void)
{
	ExtentMap base = MAP({ 0, 1000 * K, 64 * K, 0 }, { 64 * K, 5000 * K, 64 * K, FIEMAP_EXTENT_LAST });
	Found f;

	f = diff(base, base, 128 * K);
	ASSERT_EQ_UINT(0, f.n);

	/* Block 3 and blocks 4-5 rewritten (adjacent: one range), block 40
	 * alone, and the first block of the second extent. */
	f = diff(base,
		 MAP({ 0, 1000 * K, 3 * K, 0 }, { 3 * K, 9000 * K, 1 * K, 0 }, { 4 * K, 9100 * K, 2 * K, 0 },
		     { 6 * K, 1006 * K, 34 * K, 0 }, { 40 * K, 9200 * K, K, 0 }, { 41 * K, 1041 * K, 23 * K, 0 },
		     { 64 * K, 9300 * K, K, 0 }, { 65 * K, 5001 * K, 63 * K, FIEMAP_EXTENT_LAST }),
		 128 * K);
	ASSERT_EQ_UINT(3, f.n);
	ASSERT_RANGE(f, 0, 3 * K, 3 * K);
	ASSERT_RANGE(f, 1, 40 * K, K);
	ASSERT_RANGE(f, 2, 64 * K, K);
}

/* The image split into more extents than the clone on the same blocks is
 * the same data: only where the blocks are counts. */
static void test_split_extent_on_the_same_blocks_is_unchanged(void)
{
	Found f = diff(MAP({ 0, 1000 * K, 64 * K, 0 }),
		       MAP({ 0, 1000 * K, 10 * K, 0 }, { 10 * K, 1010 * K, 54 * K, FIEMAP_EXTENT_SHARED }), 64 * K);

	ASSERT_EQ_UINT(0, f.n);
}

static void test_holes(void)
{
	Found f;

	/* Both holes: nothing; a hole punched in the image, or data written
	 * into a hole of the clone: changed. */
	f = diff(MAP({ 8 * K, 1000 * K, 8 * K, 0 }), MAP({ 8 * K, 1000 * K, 8 * K, 0 }), 64 * K);
	ASSERT_EQ_UINT(0, f.n);
	f = diff(MAP({ 0, 1000 * K, 16 * K, 0 }), MAP({ 0, 1000 * K, 4 * K, 0 }, { 8 * K, 1008 * K, 8 * K, 0 }),
		 64 * K);
	ASSERT_EQ_UINT(1, f.n);
	ASSERT_RANGE(f, 0, 4 * K, 4 * K);
	f = diff(EMPTY, MAP({ 20 * K, 7000 * K, 2 * K, 0 }), 64 * K);
	ASSERT_EQ_UINT(1, f.n);
	ASSERT_RANGE(f, 0, 20 * K, 2 * K);
}

/* A range that reaches the end of the file goes "to the end" (length 0),
 * and nothing past the size counts (preallocation beyond it). */
static void test_end_of_file(void)
{
	Found f = diff(MAP({ 0, 1000 * K, 16 * K, 0 }),
		       MAP({ 0, 1000 * K, 12 * K, 0 }, { 12 * K, 3000 * K, 4 * K, 0 }, { 16 * K, 4000 * K, 64 * K, 0 }),
		       16 * K);

	ASSERT_EQ_UINT(1, f.n);
	ASSERT_RANGE(f, 0, 12 * K, 0);
	f = diff(EMPTY, EMPTY, 0);
	ASSERT_EQ_UINT(0, f.n);
}

/* What the map cannot vouch for is changed: a block written but not yet
 * placed, preallocated against written, an unaligned tail. */
static void test_unsure_extents_are_changed(void)
{
	Found f;

	f = diff(MAP({ 0, 1000 * K, 8 * K, 0 }), MAP({ 0, 0, 8 * K, FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_UNKNOWN }),
		 8 * K);
	ASSERT_EQ_UINT(1, f.n);
	ASSERT_RANGE(f, 0, 0, 0);
	f = diff(MAP({ 0, 1000 * K, 8 * K, FIEMAP_EXTENT_UNWRITTEN }), MAP({ 0, 1000 * K, 8 * K, 0 }), 16 * K);
	ASSERT_EQ_UINT(1, f.n);
	ASSERT_RANGE(f, 0, 0, 8 * K);
	f = diff(MAP({ 0, 1000 * K, 8 * K, 0 }), MAP({ 0, 1000 * K, 8 * K - 100, FIEMAP_EXTENT_NOT_ALIGNED }),
		 16 * K);
	ASSERT_EQ_UINT(1, f.n);
	ASSERT_RANGE(f, 0, 0, 8 * K);
}

/* Compressed extents: the same extent is the same data; a piece of one
 * (same physical start, other offsets) is not. */
static void test_encoded_extents(void)
{
	ExtentMap base = MAP({ 0, 1000 * K, 32 * K, FIEMAP_EXTENT_ENCODED });
	Found f;

	f = diff(base, base, 32 * K);
	ASSERT_EQ_UINT(0, f.n);
	f = diff(base,
		 MAP({ 0, 1000 * K, 8 * K, FIEMAP_EXTENT_ENCODED }, { 8 * K, 2000 * K, 4 * K, 0 },
		     { 12 * K, 1000 * K, 20 * K, FIEMAP_EXTENT_ENCODED }),
		 32 * K);
	ASSERT_EQ_UINT(1, f.n);
	ASSERT_RANGE(f, 0, 0, 0);
}

static int fail_second(uint64_t offset, uint64_t length, void *userdata)
{
	int *calls = userdata;

	(void)offset;
	(void)length;
	return ++*calls == 2 ? -ENOSPC : 0;
}

static void test_stops_at_the_first_failure(void)
{
	ExtentMap base = MAP({ 0, 1000 * K, 64 * K, 0 });
	ExtentMap now = MAP({ 0, 2000 * K, K, 0 }, { K, 1001 * K, 9 * K, 0 }, { 10 * K, 3000 * K, K, 0 },
			    { 11 * K, 1011 * K, 9 * K, 0 }, { 20 * K, 4000 * K, K, 0 }, { 21 * K, 1021 * K, 43 * K, 0 });
	int calls = 0;

	ASSERT_EQ_INT(-ENOSPC, extent_map_diff(&base, &now, 64 * K, K, fail_second, &calls));
	ASSERT_EQ_INT(2, calls);
}

/* A real file: its map, and the cap on its size. */
static void test_read_a_file(void)
{
	char path[] = "/var/tmp/vss-test-extents-XXXXXX";
	char block[K];
	ExtentMap m = { 0 };
	int fd, r;

	fd = mkstemp(path);
	ASSERT_TRUE(fd >= 0);
	unlink(path);
	memset(block, 'x', sizeof(block));
	ASSERT_EQ_INT((int)K, (int)pwrite(fd, block, K, 0));
	ASSERT_EQ_INT((int)K, (int)pwrite(fd, block, K, 1 << 20));
	r = extent_map_read(fd, FIEMAP_FLAG_SYNC, 16, &m);
	if (r == -EOPNOTSUPP) { /* no FIEMAP here (tmpfs) */
		close(fd);
		return;
	}
	ASSERT_OK(r);
	ASSERT_EQ_UINT(2, m.n);
	ASSERT_EQ_UINT(0, m.extents[0].logical);
	ASSERT_EQ_UINT(1 << 20, m.extents[1].logical);
	ASSERT_TRUE(m.extents[1].flags & FIEMAP_EXTENT_LAST);
	extent_map_free(&m);
	ASSERT_EQ_INT(-E2BIG, extent_map_read(fd, 0, 1, &m));
	ASSERT_NULL(m.extents);
	close(fd);
}

int main(void)
{
	RUN_TEST(test_only_moved_blocks_differ);
	RUN_TEST(test_split_extent_on_the_same_blocks_is_unchanged);
	RUN_TEST(test_holes);
	RUN_TEST(test_end_of_file);
	RUN_TEST(test_unsure_extents_are_changed);
	RUN_TEST(test_encoded_extents);
	RUN_TEST(test_stops_at_the_first_failure);
	RUN_TEST(test_read_a_file);
	TEST_SUMMARY();
	return 0;
}
