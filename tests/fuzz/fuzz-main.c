/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * For builds without libFuzzer (gcc): run a fuzz target once on each file
 * named, or on each file in each directory named, so that every build
 * replays the corpus, and the inputs that once crashed stay fixed.
 */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t size = 0, allocated = 0, n;
	FILE *f = fopen(path, "re");

	if (!f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	do {
		if (size == allocated) {
			uint8_t *d = realloc(data, allocated = allocated * 2 + 4096);

			if (!d) {
				fclose(f);
				return -1;
			}
			data = d;
		}
		n = fread(data + size, 1, allocated - size, f);
		size += n;
	} while (n > 0);
	fclose(f);
	printf("%s (%zu bytes)\n", path, size);
	fflush(stdout);
	LLVMFuzzerTestOneInput(data, size);
	return 0;
}

static int run_path(const char *path)
{
	struct dirent **entries;
	struct stat st;
	int n, r = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path);
	n = scandir(path, &entries, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		_cleanup_free_ char *p = NULL;

		if (entries[i]->d_name[0] != '.' && asprintf(&p, "%s/%s", path, entries[i]->d_name) >= 0 &&
		    run_file(p) < 0)
			r = -1;
		free(entries[i]);
	}
	free(entries);
	return r;
}

int main(int argc, char **argv)
{
	int r = 0;

	for (int i = 1; i < argc; i++)
		if (run_path(argv[i]) < 0)
			r = 1;
	return r;
}
