/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VSS_VSS_H
#define VSS_VSS_H

/*
 * vss: volume shadow copies for Linux.
 *
 * Include this header to get the whole public API: result codes
 * (<vss/hresult.h>), ids and property structures (<vss/types.h>), the
 * requestor (<vss/backup.h>) and asynchronous operations (<vss/async.h>).
 * Link with -lvss (pkg-config vss).
 */

#include <vss/async.h>
#include <vss/backup.h>
#include <vss/hresult.h>
#include <vss/types.h>

#endif
