/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vss-test-requestor: drives libvss one call at a time for the integration
 * tests, so that a test can write any sequence of requestor calls, including
 * wrong ones, and read each call's result.
 *
 *   vss-test-requestor STEP...
 *
 * Each step prints one line "STEP RESULT_NAME [detail]" on stdout, flushed,
 * and the program goes on to the next step whatever the result. Steps:
 *
 *   create            vss_create_backup_components
 *   init | init-xml   initialize_for_backup(NULL | "<BCD/>")
 *   context=NAME|HEX  set_context (backup, file_share_backup, nas_rollback,
 *                     app_rollback, client_accessible, client_accessible_writers,
 *                     all, or a number)
 *   state             set_backup_state(false, false, VSS_BT_FULL, false)
 *   state-bad         set_backup_state with VSS_BT_UNDEFINED
 *   start             start_snapshot_set
 *   add=PATH[@ID]     add_to_snapshot_set, optionally naming a provider id
 *   supported=PATH    is_volume_supported (any provider); detail yes/no
 *   prepare           prepare_for_backup, then wait; detail: the status
 *   prepare-async     prepare_for_backup only (the operation is kept)
 *   do                do_snapshot_set, wait, query_status; detail: the status
 *   do-async          do_snapshot_set only (the operation is kept)
 *   wait[=MS]         vss_async_wait on the kept operation
 *   status            vss_async_query_status on the kept operation
 *   cancel            vss_async_cancel on the kept operation
 *   abort             abort_backup
 *   complete          backup_complete, then wait
 *   complete-async    backup_complete only (the operation is kept)
 *   props             get_snapshot_properties of every added snapshot;
 *                     one line each, detail: the snapshot path
 *   props-of=ID       get_snapshot_properties of an id
 *   query             query snapshots; detail: how many
 *   providers         query providers; detail: their names
 *   delete-set        delete_snapshots of this object's set; detail: count
 *   expose[=DIR]      expose_snapshot of every added snapshot (at DIR, or the
 *                     default place); one line each, detail: where
 *   expose-remote     expose_snapshot with EXPOSED_REMOTELY (refused)
 *   expose-of=ID=DIR  expose_snapshot of a snapshot id at DIR; detail: where
 *   unexpose-of=ID    unexpose_snapshot of a snapshot id
 *   unexpose          unexpose_snapshot of every added snapshot
 *   gather            gather_writer_metadata, then wait; detail: the writers'
 *                     names, each with its component count
 *   gather-async      gather_writer_metadata only (the operation is kept)
 *   wstatus           gather_writer_status; detail: NAME:STATE:RESULT for each
 *   add-component=W:C add_component C of the writer named W
 *   succeeded=W:C     set_backup_succeeded(true) for it
 *   disable=CLASS     disable_writer_classes
 *   nullargs          every call with a NULL output pointer; one line each
 *   sleep=MS          sleep
 *   hold              print "hold S_OK" and sleep until killed
 *   pause             print "pause S_OK" and wait for a line on stdin
 *   release           vss_backup_release
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vss/vss.h>

#include "shared/names.h"

static vss_backup *b;
/* Objects replaced by a later "create": kept open until exit, as a requestor
 * that made several would. */
static vss_backup *earlier[32];
static size_t n_earlier;
static vss_async *op;
static vss_id set_id;
static vss_id snaps[80];
static size_t n_snaps;

static void report(const char *step, vss_hr hr, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(const char *step, vss_hr hr, const char *fmt, ...)
{
	printf("%s %s", step, vss_hr_name(hr));
	if (fmt) {
		va_list ap;

		putchar(' ');
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
	}
	if (VSS_FAILED(hr) && vss_last_error_message()[0])
		printf(" | %s", vss_last_error_message());
	putchar('\n');
	fflush(stdout);
}

static vss_hr wait_status(vss_async *a, vss_hr *ret_status)
{
	vss_hr hr = vss_async_wait(a, VSS_INFINITE);

	/* Wait returns a failed operation's error; the status says it too. */
	(void)hr;
	return vss_async_query_status(a, ret_status);
}

/* Start an operation and wait for it; report before releasing it, since a
 * release clears the last error message. */
static void run_async(const char *step, vss_hr (*start)(vss_backup *, vss_async **))
{
	vss_hr hr, status = VSS_E_UNEXPECTED;
	vss_async *a = NULL;

	hr = start(b, &a);
	if (VSS_SUCCEEDED(hr))
		hr = wait_status(a, &status);
	report(step, hr, "%s", vss_hr_name(status));
	if (a)
		vss_async_release(a);
}

/* Start an operation and wait for it, reporting nothing. */
static void run_async_quiet(vss_hr (*start)(vss_backup *, vss_async **), vss_hr *ret_hr, vss_hr *ret_status)
{
	vss_async *a = NULL;

	*ret_status = VSS_E_UNEXPECTED;
	*ret_hr = start(b, &a);
	if (VSS_FAILED(*ret_hr))
		return; /* keep the failure's message for report() */
	*ret_hr = wait_status(a, ret_status);
	vss_async_release(a);
}

static int32_t parse_context(const char *s)
{
	int64_t c;

	if (strcmp(s, "all") == 0)
		return VSS_CTX_ALL;
	c = context_from_name(s);
	if (c >= 0)
		return (int32_t)c;
	return (int32_t)strtol(s, NULL, 0);
}

static void null_args(void)
{
	vss_snapshot_prop prop;
	vss_object_prop *props;
	size_t count;
	int32_t deleted;
	vss_id id;
	vss_hr status;
	char *name = NULL;

	report("null:create_backup_components", vss_create_backup_components(NULL), NULL);
	report("null:start_snapshot_set", vss_backup_start_snapshot_set(b, NULL), NULL);
	report("null:add_to_snapshot_set.volume", vss_backup_add_to_snapshot_set(b, NULL, NULL, &id), NULL);
	report("null:add_to_snapshot_set.ret", vss_backup_add_to_snapshot_set(b, "/", NULL, NULL), NULL);
	report("null:is_volume_supported", vss_backup_is_volume_supported(b, NULL, "/", NULL), NULL);
	report("null:prepare_for_backup", vss_backup_prepare_for_backup(b, NULL), NULL);
	report("null:do_snapshot_set", vss_backup_do_snapshot_set(b, NULL), NULL);
	report("null:backup_complete", vss_backup_backup_complete(b, NULL), NULL);
	report("null:get_snapshot_properties.id", vss_backup_get_snapshot_properties(b, NULL, &prop), NULL);
	report("null:get_snapshot_properties.ret", vss_backup_get_snapshot_properties(b, &set_id, NULL), NULL);
	report("null:query.props", vss_backup_query(b, NULL, VSS_OBJECT_NONE, VSS_OBJECT_SNAPSHOT, NULL, &count), NULL);
	report("null:query.count", vss_backup_query(b, NULL, VSS_OBJECT_NONE, VSS_OBJECT_SNAPSHOT, &props, NULL), NULL);
	report("null:delete_snapshots.deleted",
	       vss_backup_delete_snapshots(b, &set_id, VSS_OBJECT_SNAPSHOT_SET, false, NULL, &id), NULL);
	report("null:delete_snapshots.nondeleted",
	       vss_backup_delete_snapshots(b, &set_id, VSS_OBJECT_SNAPSHOT_SET, false, &deleted, NULL), NULL);
	report("null:backup.initialize_for_backup", vss_backup_initialize_for_backup(NULL, NULL), NULL);
	report("null:async.wait", vss_async_wait(NULL, 0), NULL);
	report("null:async.query_status.async", vss_async_query_status(NULL, &status), NULL);
	if (op)
		report("null:async.query_status.ret", vss_async_query_status(op, NULL), NULL);
	report("null:async.cancel", vss_async_cancel(NULL), NULL);
	report("null:expose_snapshot.id", vss_backup_expose_snapshot(b, NULL, NULL, VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY,
								      NULL, &name), NULL);
	report("null:expose_snapshot.ret", vss_backup_expose_snapshot(b, &set_id, NULL, VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY,
								       NULL, NULL), NULL);
	report("null:unexpose_snapshot", vss_backup_unexpose_snapshot(b, NULL), NULL);
}

static void step(const char *s)
{
	char buf[VSS_ID_STRING_MAX];
	vss_hr hr, status = VSS_E_UNEXPECTED;

	if (strcmp(s, "create") == 0) {
		if (b && n_earlier < 32)
			earlier[n_earlier++] = b;
		b = NULL;
		report(s, vss_create_backup_components(&b), NULL);
	} else if (strcmp(s, "init") == 0) {
		report(s, vss_backup_initialize_for_backup(b, NULL), NULL);
	} else if (strcmp(s, "init-xml") == 0) {
		report(s, vss_backup_initialize_for_backup(b, "<BackupComponents/>"), NULL);
	} else if (strncmp(s, "context=", 8) == 0) {
		report(s, vss_backup_set_context(b, parse_context(s + 8)), NULL);
	} else if (strcmp(s, "state") == 0) {
		report(s, vss_backup_set_backup_state(b, false, false, VSS_BT_FULL, false), NULL);
	} else if (strcmp(s, "state-bad") == 0) {
		report(s, vss_backup_set_backup_state(b, false, false, VSS_BT_UNDEFINED, false), NULL);
	} else if (strcmp(s, "start") == 0) {
		hr = vss_backup_start_snapshot_set(b, &set_id);
		report(s, hr, "%s", VSS_SUCCEEDED(hr) ? vss_id_format(&set_id, buf) : "-");
	} else if (strncmp(s, "add=", 4) == 0) {
		char path[4096], *at;
		vss_id provider = VSS_ID_NULL;

		snprintf(path, sizeof(path), "%s", s + 4);
		at = strchr(path, '@');
		if (at) {
			*at = '\0';
			if (VSS_FAILED(vss_id_parse(at + 1, &provider)))
				provider.bytes[0] = 0xff; /* an id no provider has */
		}
		hr = vss_backup_add_to_snapshot_set(b, path, &provider, &snaps[n_snaps]);
		report("add", hr, "%s", VSS_SUCCEEDED(hr) ? vss_id_format(&snaps[n_snaps], buf) : path);
		if (VSS_SUCCEEDED(hr) && n_snaps < 79)
			n_snaps++;
	} else if (strncmp(s, "supported=", 10) == 0) {
		bool yes = false;

		hr = vss_backup_is_volume_supported(b, NULL, s + 10, &yes);
		report("supported", hr, "%s", yes ? "yes" : "no");
	} else if (strcmp(s, "prepare") == 0) {
		run_async(s, vss_backup_prepare_for_backup);
	} else if (strcmp(s, "prepare-async") == 0) {
		vss_async_release(op);
		op = NULL;
		report(s, vss_backup_prepare_for_backup(b, &op), NULL);
	} else if (strcmp(s, "do") == 0) {
		run_async(s, vss_backup_do_snapshot_set);
	} else if (strcmp(s, "do-async") == 0) {
		report(s, vss_backup_do_snapshot_set(b, &op), NULL);
	} else if (strncmp(s, "wait", 4) == 0) {
		uint32_t ms = s[4] == '=' ? (uint32_t)strtoul(s + 5, NULL, 10) : VSS_INFINITE;

		report("wait", vss_async_wait(op, ms), NULL);
	} else if (strcmp(s, "status") == 0) {
		hr = vss_async_query_status(op, &status);
		report(s, hr, "%s", vss_hr_name(status));
	} else if (strcmp(s, "cancel") == 0) {
		report(s, vss_async_cancel(op), NULL);
	} else if (strcmp(s, "abort") == 0) {
		report(s, vss_backup_abort_backup(b), NULL);
	} else if (strcmp(s, "complete-async") == 0) {
		vss_async_release(op);
		op = NULL;
		report(s, vss_backup_backup_complete(b, &op), NULL);
	} else if (strcmp(s, "complete") == 0) {
		run_async(s, vss_backup_backup_complete);
	} else if (strcmp(s, "props") == 0) {
		for (size_t i = 0; i < n_snaps; i++) {
			vss_snapshot_prop p = { 0 };

			hr = vss_backup_get_snapshot_properties(b, &snaps[i], &p);
			report(s, hr, "%s %s", p.snapshot_device_object ?: "-", p.original_volume_name ?: "-");
			vss_free_snapshot_properties(&p);
		}
	} else if (strncmp(s, "props-of=", 9) == 0) {
		vss_snapshot_prop p = { 0 };
		vss_id id;

		if (VSS_FAILED(vss_id_parse(s + 9, &id)))
			memset(&id, 0xee, sizeof(id));
		hr = vss_backup_get_snapshot_properties(b, &id, &p);
		report("props-of", hr, "%s", p.snapshot_device_object ?: "-");
		vss_free_snapshot_properties(&p);
	} else if (strcmp(s, "query") == 0) {
		vss_object_prop *props = NULL;
		size_t n = 0;

		hr = vss_backup_query(b, NULL, VSS_OBJECT_NONE, VSS_OBJECT_SNAPSHOT, &props, &n);
		report(s, hr, "%zu", n);
		vss_free_object_props(props, n);
	} else if (strcmp(s, "providers") == 0) {
		vss_object_prop *props = NULL;
		size_t n = 0;

		hr = vss_backup_query(b, NULL, VSS_OBJECT_NONE, VSS_OBJECT_PROVIDER, &props, &n);
		printf("%s %s", s, vss_hr_name(hr));
		for (size_t i = 0; i < n; i++)
			printf(" %s=%s", props[i].obj.prov.provider_name,
			       vss_id_format(&props[i].obj.prov.provider_id, buf));
		putchar('\n');
		fflush(stdout);
		vss_free_object_props(props, n);
	} else if (strcmp(s, "delete-set") == 0) {
		int32_t deleted = -1;
		vss_id failed;

		hr = vss_backup_delete_snapshots(b, &set_id, VSS_OBJECT_SNAPSHOT_SET, false, &deleted, &failed);
		report(s, hr, "%d", (int)deleted);
	} else if (strncmp(s, "expose", 6) == 0 && (s[6] == '\0' || s[6] == '=')) {
		for (size_t i = 0; i < n_snaps; i++) {
			char *where = NULL;

			hr = vss_backup_expose_snapshot(b, &snaps[i], NULL, VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY,
							s[6] == '=' ? s + 7 : NULL, &where);
			report("expose", hr, "%s", where ?: "-");
			free(where);
		}
	} else if (strncmp(s, "expose-of=", 10) == 0 || strncmp(s, "unexpose-of=", 12) == 0) {
		bool undo = s[0] == 'u';
		char spec[4096], *dir, *where = NULL;
		vss_id id;

		snprintf(spec, sizeof(spec), "%s", strchr(s, '=') + 1);
		dir = strchr(spec, '=');
		if (dir)
			*dir++ = '\0';
		if (VSS_FAILED(vss_id_parse(spec, &id)))
			memset(&id, 0xee, sizeof(id));
		if (undo) {
			report("unexpose-of", vss_backup_unexpose_snapshot(b, &id), NULL);
		} else {
			hr = vss_backup_expose_snapshot(b, &id, NULL, VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY, dir, &where);
			report("expose-of", hr, "%s", where ?: "-");
			free(where);
		}
	} else if (strcmp(s, "expose-remote") == 0) {
		char *where = NULL;

		report(s, vss_backup_expose_snapshot(b, &snaps[0], NULL, VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY, "share",
						     &where), NULL);
		free(where);
	} else if (strcmp(s, "unexpose") == 0) {
		for (size_t i = 0; i < n_snaps; i++)
			report(s, vss_backup_unexpose_snapshot(b, &snaps[i]), NULL);
	} else if (strcmp(s, "gather-async") == 0) {
		vss_async_release(op);
		op = NULL;
		report(s, vss_backup_gather_writer_metadata(b, &op), NULL);
	} else if (strcmp(s, "gather") == 0) {
		const vss_writer_metadata *md;
		unsigned n = 0;
		vss_id inst;

		run_async_quiet(vss_backup_gather_writer_metadata, &hr, &status);
		if (VSS_SUCCEEDED(hr))
			hr = vss_backup_get_writer_metadata_count(b, &n);
		if (VSS_FAILED(hr)) {
			report(s, hr, NULL);
			return;
		}
		printf("gather %s %s", vss_hr_name(hr), vss_hr_name(status));
		for (unsigned i = 0; VSS_SUCCEEDED(hr) && i < n; i++)
			if (VSS_SUCCEEDED(vss_backup_get_writer_metadata(b, i, &inst, &md)))
				printf(" %s:%zu", md->name, md->n_components);
		putchar('\n');
		fflush(stdout);
	} else if (strcmp(s, "wstatus") == 0) {
		const vss_writer_status *st;
		unsigned n = 0;

		run_async_quiet(vss_backup_gather_writer_status, &hr, &status);
		if (VSS_SUCCEEDED(hr))
			hr = vss_backup_get_writer_status_count(b, &n);
		if (VSS_FAILED(hr)) {
			report(s, hr, NULL);
			return;
		}
		printf("wstatus %s", vss_hr_name(hr));
		for (unsigned i = 0; VSS_SUCCEEDED(hr) && i < n; i++)
			if (VSS_SUCCEEDED(vss_backup_get_writer_status(b, i, &st)))
				printf(" %s:%d:%s", st->name, (int)st->state, vss_hr_name(st->failure));
		putchar('\n');
		fflush(stdout);
	} else if (strncmp(s, "add-component=", 14) == 0 || strncmp(s, "succeeded=", 10) == 0) {
		bool add = s[0] == 'a';
		char spec[256], *colon;

		snprintf(spec, sizeof(spec), "%s", strchr(s, '=') + 1);
		colon = strchr(spec, ':');
		hr = E_INVALIDARG;
		if (colon) {
			const vss_writer_metadata *md;
			unsigned n = 0;
			vss_id inst;

			*colon = '\0';
			(void)vss_backup_get_writer_metadata_count(b, &n);
			for (unsigned i = 0; i < n; i++)
				if (VSS_SUCCEEDED(vss_backup_get_writer_metadata(b, i, &inst, &md)) &&
				    strcmp(md->name, spec) == 0)
					hr = add ? vss_backup_add_component(b, &inst, &md->class_id, VSS_CT_FILEGROUP, NULL,
									    colon + 1)
						 : vss_backup_set_backup_succeeded(b, &inst, &md->class_id,
										    VSS_CT_FILEGROUP, NULL, colon + 1, true);
		}
		report(add ? "add-component" : "succeeded", hr, NULL);
	} else if (strncmp(s, "disable=", 8) == 0) {
		vss_id class;

		if (VSS_FAILED(vss_id_parse(s + 8, &class)))
			memset(&class, 0xdd, sizeof(class));
		report("disable", vss_backup_disable_writer_classes(b, &class, 1), NULL);
	} else if (strncmp(s, "revert=", 7) == 0) {
		vss_id id;

		hr = VSS_FAILED(vss_id_parse(s + 7, &id)) ? E_INVALIDARG : vss_backup_revert_to_snapshot(b, &id, false);
		report("revert", hr, NULL);
	} else if (strncmp(s, "revert-status=", 14) == 0) {
		vss_async *a = NULL;

		hr = vss_backup_query_revert_status(b, s + 14, &a);
		if (VSS_SUCCEEDED(hr))
			hr = wait_status(a, &status);
		report("revert-status", hr, "%s", VSS_SUCCEEDED(hr) ? vss_hr_name(status) : "-");
		vss_async_release(a);
	} else if (strcmp(s, "nullargs") == 0) {
		null_args();
	} else if (strncmp(s, "sleep=", 6) == 0) {
		usleep((useconds_t)strtoul(s + 6, NULL, 10) * 1000);
		report("sleep", S_OK, NULL);
	} else if (strcmp(s, "hold") == 0) {
		report(s, S_OK, NULL);
		for (;;)
			pause();
	} else if (strcmp(s, "pause") == 0) {
		char line[16];

		report(s, S_OK, NULL);
		if (!fgets(line, sizeof(line), stdin))
			exit(3);
	} else if (strcmp(s, "release") == 0) {
		vss_async_release(op);
		op = NULL;
		report(s, vss_backup_release(b), NULL);
		b = NULL;
	} else {
		fprintf(stderr, "vss-test-requestor: unknown step \"%s\"\n", s);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		step(argv[i]);
	vss_async_release(op);
	vss_backup_release(b);
	for (size_t i = 0; i < n_earlier; i++)
		vss_backup_release(earlier[i]);
	return 0;
}
