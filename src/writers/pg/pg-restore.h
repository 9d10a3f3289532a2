/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* vss-pg-writer's restore callbacks (pg-restore.c). */

#include <stdbool.h>

#include <vss/writer.h>

/* --bindir: where pg_ctl and pg_controldata are; NULL to find them. */
extern const char *pg_restore_bindir;

bool pg_on_pre_restore(vss_writer *w, void *userdata);
bool pg_on_post_restore(vss_writer *w, void *userdata);
