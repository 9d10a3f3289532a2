/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VSS_WRITER_SUPPORT_H
#define VSS_WRITER_SUPPORT_H

/*
 * What the database writers (vss-pg-writer, vss-mysql-writer) share: their
 * log, the paths they report, the check that a set cuts them at one instant,
 * and the main loop. Only the installed API (<vss/writer.h>) is used, so
 * each writer stays what an application's own would be.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vss/writer.h>

/* Name the program in every log line; call first. */
void ws_set_program(const char *name);

/* To stderr with a syslog priority prefix, as vssd logs: journald reads it. */
void ws_say(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether path is dir or below it (both absolute, resolved). */
bool ws_path_is_below(const char *path, const char *dir);

/* The path with every symlink resolved, as vssd compares paths to volumes by
 * their text; a relative path is taken below base (if not NULL). Returns
 * NULL with errno set. */
char *ws_resolve(const char *base_or_null, const char *path);

/* The set's id as text, or "?", for the log. */
const char *ws_set_id_text(const vss_writer *w, char buf[VSS_ID_STRING_MAX]);

/*
 * A btrfs volume of the set when paths lie on more than one of its
 * volumes, or NULL; *ret_n_volumes is how many. btrfs cannot be frozen, so a
 * set snapshots its btrfs volumes one after another, each at its own
 * instant (docs/ENGINE.md): files a database needs cut together would be
 * cut apart. One volume is one instant.
 */
const char *ws_btrfs_cut_apart(const vss_writer *w, const char *const *paths, size_t n_paths,
			       size_t *ret_n_volumes);

/* Parse --freeze-timeout's seconds into milliseconds; false if it is not a
 * positive number of seconds that fits. */
bool ws_parse_freeze_timeout(const char *s, uint32_t *ret_ms);

/* Block SIGTERM and SIGINT and return a signalfd for them, or -1
 * (logged): signals become events of the main loop, so that leaving always
 * unsubscribes, never from inside a callback. */
int ws_signals(void);

/*
 * A database's writer (user data, transacted, back-end), with its callbacks,
 * subscribed to vssd ($VSS_SOCKET); NULL, logged, if that cannot be done.
 * class_id is the writer class's text form.
 */
vss_writer *ws_subscribe(const char *class_id, const char *name, const char *instance_or_null,
			 uint32_t freeze_timeout_ms, const vss_writer_callbacks *cb, void *userdata);

/* BackupComplete for a writer that has nothing to do then: logged. */
bool ws_on_backup_complete(vss_writer *w, void *userdata);

/* Print "ready" and serve the writer's events until a signal on sfd
 * (EXIT_SUCCESS) or the loss of vssd (EXIT_FAILURE; the writer library has
 * then run abort). */
int ws_serve(vss_writer *w, int sfd);

#endif
