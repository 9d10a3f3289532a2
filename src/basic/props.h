/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Freeing the writer structures that libvss hands out borrowed, and that
 * vssd keeps. */

#include <vss/writer.h>

void vss_writer_metadata_clear(vss_writer_metadata *md);
void vss_writer_status_clear(vss_writer_status *s);
