/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vss-bench-json [ROWS]: what vssadmin's `list shadows --json` of ROWS
 * snapshots (default 100,000) costs written by vssadmin's own streaming
 * JSON writer (src/shared/json.c) and by libsmartcols (a table of the same
 * 17 columns printed as JSON, as lsblk and findmnt do), both to /dev/null,
 * interleaved, in one process. It is why vssadmin does not use libsmartcols
 * for its listings (docs/BENCHMARKS.md, bench-json).
 */

#include <libsmartcols.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "shared/json.h"

static const char *const columns[] = {
	"id", "set_id", "volume", "snapshot_path", "provider", "provider_id", "context", "attributes", "created",
	"state", "hold_window_us", "consistency", "snapshots_in_set", "originating_machine", "service_machine",
	"exposed_name", "exposed_path",
};
#define NCOL (sizeof(columns) / sizeof(columns[0]))

typedef struct Row {
	char v[NCOL][96];
} Row;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void make_rows(Row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		Row *r = &rows[i];

		snprintf(r->v[0], 96, "{%08zx-1234-4321-8765-%012zx}", i, i * 7);
		snprintf(r->v[1], 96, "{%08zx-aaaa-4bbb-8ccc-%012zx}", i / 50, i / 50);
		snprintf(r->v[2], 96, "/srv/pool/volume-%03zu", i % 200);
		snprintf(r->v[3], 96, "/srv/pool/.vss/{%08zx-1234-4321-8765-%012zx}", i, i * 7);
		strcpy(r->v[4], "btrfs");
		strcpy(r->v[5], "{497f1270-cb7a-4e25-a12c-7b3bcf6291e3}");
		strcpy(r->v[6], "app_rollback");
		strcpy(r->v[7], "524297");
		snprintf(r->v[8], 96, "2026-12-01T%02zu:%02zu:%02zu.%06zuZ", i / 3600 % 24, i / 60 % 60, i % 60, i);
		strcpy(r->v[9], "created");
		snprintf(r->v[10], 96, "%zu", 1000 + i % 5000);
		strcpy(r->v[11], "crash-consistent per volume");
		strcpy(r->v[12], "50");
		strcpy(r->v[13], "vm");
		strcpy(r->v[14], "vm");
		r->v[15][0] = r->v[16][0] = '\0'; /* null */
	}
}

/* Numbers and nulls as vssadmin writes them. */
static bool is_number(size_t c)
{
	return c == 7 || c == 10 || c == 12;
}

static double with_json_writer(const Row *rows, size_t n, FILE *out)
{
	static JsonWriter w;
	double t = now();

	json_init(&w, out, true);
	json_begin_array(&w);
	for (size_t i = 0; i < n; i++) {
		json_begin_object(&w);
		for (size_t c = 0; c < NCOL; c++) {
			json_key(&w, columns[c]);
			if (is_number(c))
				json_int(&w, strtoll(rows[i].v[c], NULL, 10));
			else
				json_string(&w, rows[i].v[c][0] ? rows[i].v[c] : NULL);
		}
		json_end_object(&w);
	}
	json_end_array(&w);
	json_finish(&w);
	fflush(out);
	return now() - t;
}

static double with_smartcols(const Row *rows, size_t n, FILE *out)
{
	double t = now();
	struct libscols_table *tb = scols_new_table();

	if (!tb)
		abort();
	scols_table_enable_json(tb, 1);
	scols_table_set_name(tb, "shadows");
	scols_table_set_stream(tb, out);
	for (size_t c = 0; c < NCOL; c++) {
		struct libscols_column *cl = scols_table_new_column(tb, columns[c], 0, 0);

		if (!cl)
			abort();
		if (is_number(c))
			scols_column_set_json_type(cl, SCOLS_JSON_NUMBER);
	}
	for (size_t i = 0; i < n; i++) {
		struct libscols_line *ln = scols_table_new_line(tb, NULL);

		if (!ln)
			abort();
		for (size_t c = 0; c < NCOL; c++)
			if (rows[i].v[c][0])
				scols_line_set_data(ln, c, rows[i].v[c]);
	}
	scols_print_table(tb);
	scols_unref_table(tb);
	fflush(out);
	return now() - t;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	enum { RUNS = 5 };
	double own[RUNS], scols[RUNS];
	FILE *out = fopen("/dev/null", "w");
	Row *rows = calloc(n, sizeof(*rows));
	struct rusage ru;
	long base_kb;

	if (!out || !rows || n == 0) {
		free(rows);
		if (out)
			fclose(out);
		return 1;
	}
	make_rows(rows, n);
	getrusage(RUSAGE_SELF, &ru);
	base_kb = ru.ru_maxrss;
	for (int r = 0; r < RUNS; r++) {
		own[r] = with_json_writer(rows, n, out);
		scols[r] = with_smartcols(rows, n, out);
	}
	getrusage(RUSAGE_SELF, &ru);
	qsort(own, RUNS, sizeof(double), by_value);
	qsort(scols, RUNS, sizeof(double), by_value);
	printf("vss bench: --json of %zu snapshots x %zu columns to /dev/null, %d interleaved runs, medians\n", n,
	       (size_t)NCOL, RUNS);
	printf("  vssadmin's JSON writer   %8.1f ms\n", own[RUNS / 2] * 1e3);
	printf("  libsmartcols             %8.1f ms  (%.1fx)\n", scols[RUNS / 2] * 1e3, scols[RUNS / 2] / own[RUNS / 2]);
	printf("  memory: libsmartcols holds the whole table before it prints: peak RSS %ld MB over the rows' %ld MB\n",
	       (ru.ru_maxrss - base_kb) / 1024, base_kb / 1024);
	free(rows);
	fclose(out);
	return 0;
}
