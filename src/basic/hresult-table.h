/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include <vss/hresult.h>

/* The table behind vss_hr_name(), for the code that maps names on the wire. */
struct vss_hr_entry {
	vss_hr hr;
	const char *name;
	const char *message;
};

const struct vss_hr_entry *vss_hr_lookup(vss_hr hr);
const struct vss_hr_entry *vss_hr_lookup_name(const char *name);
const struct vss_hr_entry *vss_hr_table(size_t *ret_count);
