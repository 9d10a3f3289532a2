/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The LVM provider's revert ops, called directly (tests/lvm/test_lvm_revert.py
 * checks the provider's side with it, apart from vssd's):
 *
 *   vss-test-lvm-revert plan VOLUME SNAPSHOT_PATH PROVIDER_DATA [force]
 *       prints the plan on stdout
 *   vss-test-lvm-revert revert VOLUME SNAPSHOT_PATH PROVIDER_DATA PLAN_FILE [force]
 *       prints "consumed" when the snapshot is gone
 *
 * The message goes to stderr; the exit status is the errno of a failure
 * (0 on success). VSS_FAULTS (revert:N:ACTION) is honoured.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/macro.h"
#include "providers/fault.h"
#include "providers/provider.h"
#include "providers/registry.h"

int main(int argc, char **argv)
{
	static ProviderRevert r;
	FaultTable *faults = NULL;
	bool revert = argc >= 2 && streq(argv[1], "revert");
	int k;

	if (argc < 5 || (revert && argc < 6)) {
		fprintf(stderr, "usage: %s plan|revert VOLUME SNAPSHOT PROVIDER_DATA [PLAN_FILE] [force]\n", argv[0]);
		return 2;
	}
	if (getenv("VSS_FAULTS") && fault_table_parse(getenv("VSS_FAULTS"), &faults) < 0)
		return 2;
	fault_table_set_global(faults);
	r.volume = argv[2];
	r.snapshot_path = argv[3];
	r.provider_data = argv[4];
	r.force_unmount = streq(argv[argc - 1], "force");
	if (revert) {
		FILE *f = fopen(argv[5], "re");
		size_t n;

		if (!f)
			return 2;
		n = fread(r.plan, 1, sizeof(r.plan) - 1, f);
		r.plan[n] = '\0';
		fclose(f);
		k = lvm_provider.revert(&r);
		if (k >= 0 && r.snapshot_consumed)
			printf("consumed\n");
	} else {
		k = lvm_provider.revert_plan(&r);
		if (k >= 0)
			fputs(r.plan, stdout);
	}
	if (*r.message)
		fprintf(stderr, "%s\n", r.message);
	fault_table_free(faults);
	return k < 0 ? (-k < 256 ? -k : 255) : 0;
}
