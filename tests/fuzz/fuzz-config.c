/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vssd.conf as any file could hold it: config_load() either refuses the
 * file or leaves every setting within the bounds docs/vssd.conf.md gives.
 */

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vss/backup.h>

#include "basic/log.h"
#include "fuzz.h"
#include "vssd/config.h"

static bool within(usec_t v, usec_t min, usec_t max)
{
	return v >= min && v <= max;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	Config c;
	int fd, r;

	log_set_max_level(LOG_EMERG - 1);
	fd = memfd_create("vssd.conf", MFD_CLOEXEC);
	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size))
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	config_init(&c);
	r = config_load(&c, path, true);
	if (r >= 0 &&
	    (!c.backup_group || !c.dpkg_lock || !within(c.flush_timeout, USEC_PER_MSEC, 3600 * USEC_PER_SEC) ||
	     !within(c.hold_timeout, USEC_PER_MSEC, 3600 * USEC_PER_SEC) ||
	     !within(c.hold_settle, 0, USEC_PER_SEC) ||
	     !within(c.transaction_freeze_timeout, USEC_PER_MSEC, 3600 * USEC_PER_SEC) ||
	     !within(c.transaction_thaw_timeout, USEC_PER_MSEC, 3600 * USEC_PER_SEC) ||
	     c.max_volumes_per_set < 1 || c.max_volumes_per_set > VSS_MAX_VOLUMES_PER_SET ||
	     c.max_snapshots_per_volume < 1 || c.max_image_nesting < 1 || c.max_image_nesting > 8))
		abort(); /* accepted a value out of bounds */
	config_clear(&c);
	close(fd);
	return 0;
}
