/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vssadmin: the administrator's command line, after Windows' vssadmin, with
 * Linux-style options. It is an ordinary requestor: everything goes through
 * libvss, so it can do nothing a backup program could not.
 */

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <vss/vss.h>

#include "basic/id.h"
#include "basic/macro.h"
#include "basic/util.h"
#include "shared/json.h"
#include "shared/names.h"
#include "vssadmin/vssadmin.h"

const char *program = "vssadmin";

int fail(vss_hr hr, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: %s (0x%08x): ", program, vss_hr_name(hr), (unsigned)hr);
	if (fmt) {
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
	} else if (vss_last_error_message()[0]) {
		fputs(vss_last_error_message(), stderr);
	} else {
		fputs(vss_hr_message(hr), stderr);
	}
	fputc('\n', stderr);
	return hr == E_INVALIDARG ? EXIT_USAGE : EXIT_FAILURE;
}

int usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* It quotes arguments, cut to fit: maybe inside a character. */
	fail(E_INVALIDARG, "%s (see %s --help)", utf8_make_valid(msg), program);
	return EXIT_USAGE;
}

/* Each command: its words, its synopsis and what it does, for --help. */
static const struct {
	const char *words, *synopsis, *text;
} command_help[] = {
	{ "create shadow",
	  "create shadow --for=PATH [--for=PATH ...] [--provider=NAME|ID] [--context=NAME]\n"
	  "              [--ignore-writer-failures] [--autoretry=SECONDS] [--json]",
	  "Make one snapshot set of every PATH, committed at once. Contexts: app_rollback\n"
	  "(default, persistent), nas_rollback, client_accessible, client_accessible_writers.\n"
	  "A set a writer failed is deleted unless --ignore-writer-failures. --autoretry\n"
	  "waits that long for another set being made, instead of failing." },
	{ "list shadows", "list shadows [--set=ID] [--for=PATH] [--json]",
	  "The snapshots, grouped by set, with their consistency and hold window." },
	{ "list providers", "list providers [--json]", "The registered snapshot providers." },
	{ "list writers", "list writers [--json]", "The registered writers, their state and last error." },
	{ "delete shadows", "delete shadows (--shadow=ID | --set=ID | --for=PATH [--oldest|--all] | --all) [--quiet]",
	  "Delete one snapshot, one set, a volume's snapshots (all or the oldest), or,\n"
	  "with --all alone, every snapshot. Asks first on a terminal unless --quiet." },
	{ "expose", "expose --shadow=ID [--at=DIR]\nexpose --set=ID --at=DIR",
	  "Mount snapshots read-only; a set mirrors its volumes' paths under DIR." },
	{ "unexpose", "unexpose (--shadow=ID | --set=ID)", "Unmount exposed snapshots." },
	{ "exec",
	  "exec (--for=PATH [--for=PATH ...] | --set=ID) [--at=DIR] [--context=NAME]\n"
	  "     [--writers|--no-writers] [--provider=NAME|ID] [--ignore-writer-failures]\n"
	  "     [--autoretry=SECONDS] -- COMMAND [ARGS...]",
	  "Run COMMAND where the set is mounted read-only over its volumes' own paths\n"
	  "(or under DIR), in a mount namespace of its own; then remove the set (unless\n"
	  "its context keeps it). Exits with COMMAND's status (128+N for signal N; 125:\n"
	  "vssadmin failed first). The environment names the set: VSS_SNAPSHOT_SET_ID,\n"
	  "VSS_CONSISTENCY, VSS_VOLUME_COUNT, VSS_VOLUME_n, VSS_SNAPSHOT_n, VSS_SHADOW_ID_n." },
	{ "list shadowstorage", "list shadowstorage [--for=PATH] [--json]",
	  "Per volume: where its snapshots live, the space they use, their maximum." },
	{ "resize shadowstorage", "resize shadowstorage --for=PATH --maxsize=SIZE|N%|UNBOUNDED",
	  "Set a volume's maximum: when its snapshots reach it, its oldest are deleted." },
	{ "revert shadow", "revert shadow --shadow=ID [--force-unmount]",
	  "Make the snapshot's volume hold what the snapshot holds: everything written\n"
	  "since is lost. The volume is unmounted and mounted again; one in use is\n"
	  "refused unless --force-unmount. Newer snapshots are kept. Root only." },
};

static void print_indented(const char *text, const char *indent)
{
	for (const char *l = text; *l;) {
		size_t len = strcspn(l, "\n");

		printf("%s%.*s\n", indent, (int)len, l);
		l += len + (l[len] == '\n');
	}
}

/* Everything, or one command's help when words names it. */
static void help(const char *words)
{
	for (size_t i = 0; words && i < ELEMENTSOF(command_help); i++)
		if (streq(words, command_help[i].words)) {
			printf("Usage: %s [--socket=PATH] ", program);
			print_indented(command_help[i].synopsis, "");
			putchar('\n');
			print_indented(command_help[i].text, "");
			return;
		}
	printf("Usage: %s [--socket=PATH] COMMAND [OPTIONS]\n\nCommands:\n", program);
	for (size_t i = 0; i < ELEMENTSOF(command_help); i++) {
		print_indented(command_help[i].synopsis, "  ");
		print_indented(command_help[i].text, "      ");
	}
	printf("\nGlobal options:\n"
	       "  --socket=PATH   talk to the vssd listening on PATH (default $VSS_SOCKET,\n"
	       "                  else " VSS_DEFAULT_SOCKET ")\n"
	       "  -h, --help      show this help (COMMAND --help: that command's)\n"
	       "  --version       show vssadmin's version\n\n"
	       "On failure the exit status is non-zero and stderr names the result:\n"
	       "  VSS_E_BAD_STATE (0x80042301): ...\n");
}

/* Edit distance, for "did you mean". */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[64];

	if (lb >= ELEMENTSOF(row) || la >= ELEMENTSOF(row))
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];

			row[j] = MIN(MIN(row[j] + 1, row[j - 1] + 1), diag + (a[i - 1] != b[j - 1]));
			diag = up;
		}
	}
	return row[lb];
}

/* An unknown command, with the nearest known one when it is near. */
static int unknown_command(const char *words)
{
	const char *best = NULL;
	size_t best_d = 3;

	for (size_t i = 0; i < ELEMENTSOF(command_help); i++) {
		size_t d = distance(words, command_help[i].words);

		if (d < best_d) {
			best = command_help[i].words;
			best_d = d;
		}
	}
	if (best)
		return usage_error("unknown command \"%s\"; did you mean \"%s\"?", words, best);
	return usage_error("unknown command \"%s\"", words);
}

vss_hr open_admin(vss_backup **ret)
{
	vss_backup *b;
	vss_hr hr;

	/* Callers release *ret whatever the result. */
	*ret = NULL;
	hr = vss_create_backup_components(&b);
	if (VSS_FAILED(hr))
		return hr;
	hr = vss_backup_initialize_for_backup(b, NULL);
	if (VSS_SUCCEEDED(hr))
		hr = vss_backup_set_context(b, VSS_CTX_ALL);
	if (VSS_FAILED(hr)) {
		vss_backup_release(b);
		return hr;
	}
	*ret = b;
	return S_OK;
}

typedef struct Providers {
	vss_object_prop *props;
	size_t n;
} Providers;

static const char *provider_name(const Providers *p, const vss_id *id)
{
	for (size_t i = 0; i < p->n; i++)
		if (vss_id_equal(&p->props[i].obj.prov.provider_id, id))
			return p->props[i].obj.prov.provider_name;
	return "unknown";
}

static vss_hr load_providers(vss_backup *b, Providers *ret)
{
	return vss_backup_query(b, NULL, VSS_OBJECT_NONE, VSS_OBJECT_PROVIDER, &ret->props, &ret->n);
}

/* A set's snapshots share its creation time: format it once a set. */
typedef struct TimeText {
	int64_t usec;
	bool valid;
	char text[RFC3339_MAX];
} TimeText;

static const char *time_text(TimeText *t, int64_t usec)
{
	if (!t->valid || t->usec != usec) {
		format_rfc3339(usec, t->text);
		t->usec = usec;
		t->valid = true;
	}
	return t->text;
}

static void snapshot_json(JsonWriter *w, const vss_snapshot_prop *s, const Providers *p, TimeText *t)
{
	char id[VSS_ID_STRING_MAX];

	json_begin_object(w);
	json_key(w, "id");
	json_string(w, vss_id_format(&s->snapshot_id, id));
	json_key(w, "set_id");
	json_string(w, vss_id_format(&s->snapshot_set_id, id));
	json_key(w, "volume");
	json_string(w, s->original_volume_name);
	json_key(w, "snapshot_path");
	json_string(w, s->snapshot_device_object);
	json_key(w, "provider");
	json_string(w, provider_name(p, &s->provider_id));
	json_key(w, "provider_id");
	json_string(w, vss_id_format(&s->provider_id, id));
	json_key(w, "context");
	json_string(w, context_name_of_attributes(s->snapshot_attributes));
	json_key(w, "attributes");
	json_int(w, s->snapshot_attributes);
	json_key(w, "created");
	json_string(w, time_text(t, s->creation_timestamp));
	json_key(w, "state");
	json_string(w, snapshot_state_name(s->status));
	json_key(w, "hold_window_us");
	json_uint(w, s->hold_window_us);
	json_key(w, "consistency");
	json_string(w, s->consistency);
	json_key(w, "snapshots_in_set");
	json_int(w, s->snapshots_count);
	json_key(w, "originating_machine");
	json_string(w, s->originating_machine);
	json_key(w, "service_machine");
	json_string(w, s->service_machine);
	json_key(w, "exposed_name");
	json_string(w, s->exposed_name);
	json_key(w, "exposed_path");
	json_string(w, s->exposed_path);
	json_end_object(w);
}

static void snapshot_text(const vss_snapshot_prop *s, const Providers *p)
{
	char id[VSS_ID_STRING_MAX], attrs[512];

	printf("      Shadow Copy ID: %s\n", vss_id_format(&s->snapshot_id, id));
	printf("         Original Volume: %s\n", s->original_volume_name);
	printf("         Shadow Copy Volume: %s\n", s->snapshot_device_object);
	printf("         Originating Machine: %s\n", s->originating_machine);
	printf("         Service Machine: %s\n", s->service_machine);
	if (s->exposed_name)
		printf("         Exposed Name: %s\n", s->exposed_name);
	printf("         Provider: '%s'\n", provider_name(p, &s->provider_id));
	printf("         Type: %s\n", context_label_of_attributes(s->snapshot_attributes));
	printf("         Attributes: %s\n", attributes_to_string(s->snapshot_attributes, attrs, sizeof(attrs)));
	printf("         Consistency: %s\n", s->consistency ?: "unknown");
	printf("         Hold window: %llu us\n", (unsigned long long)s->hold_window_us);
}

/* Snapshots printed as they come, grouped by set as Windows' vssadmin
 * does, or as one JSON array. */
typedef struct Printer {
	const Providers *providers;
	bool json;
	size_t count;
	vss_id last_set;
	TimeText time;
	JsonWriter w;
} Printer;

static void printer_begin(Printer *pr, const Providers *p, bool json)
{
	pr->providers = p;
	pr->json = json;
	pr->count = 0;
	pr->time = (TimeText){ 0 };
	if (json) {
		json_init(&pr->w, stdout, true);
		json_begin_array(&pr->w);
	}
}

static void printer_add(Printer *pr, const vss_snapshot_prop *s)
{
	char id[VSS_ID_STRING_MAX];

	if (pr->json) {
		snapshot_json(&pr->w, s, pr->providers, &pr->time);
	} else {
		if (pr->count == 0 || !vss_id_equal(&s->snapshot_set_id, &pr->last_set)) {
			printf("%sContents of shadow copy set ID: %s\n", pr->count ? "\n" : "",
			       vss_id_format(&s->snapshot_set_id, id));
			printf("   Contained %d shadow copies at creation time: %s\n", s->snapshots_count,
			       time_text(&pr->time, s->creation_timestamp));
		}
		snapshot_text(s, pr->providers);
	}
	pr->last_set = s->snapshot_set_id;
	pr->count++;
}

static void printer_end(Printer *pr)
{
	if (pr->json) {
		json_end_array(&pr->w);
		json_finish(&pr->w);
	}
}

static void print_snapshots(const vss_snapshot_prop *const *snaps, size_t n, const Providers *p, bool json)
{
	_cleanup_free_ Printer *pr = malloc(sizeof(*pr));

	if (!pr) {
		fail(E_OUTOFMEMORY, "out of memory");
		return;
	}
	printer_begin(pr, p, json);
	for (size_t i = 0; i < n; i++)
		printer_add(pr, snaps[i]);
	printer_end(pr);
}

vss_hr run_async(vss_backup *b, vss_hr (*start)(vss_backup *b, vss_async **ret))
{
	vss_hr hr, status = VSS_E_UNEXPECTED;
	vss_async *a;

	hr = start(b, &a);
	if (VSS_FAILED(hr))
		return hr;
	hr = vss_async_wait(a, VSS_INFINITE);
	if (VSS_SUCCEEDED(hr))
		hr = vss_async_query_status(a, &status);
	vss_async_release(a);
	if (VSS_FAILED(hr))
		return hr;
	return status == VSS_S_ASYNC_FINISHED ? S_OK : status;
}

/* The snapshots that exist now (every context), to tell afterwards which ones
 * vssd deleted to respect a maximum shadow storage. */
typedef struct Census {
	vss_object_prop *all;
	size_t n;
} Census;

static void census_take(Census *c)
{
	vss_backup *b;

	*c = (Census){ 0 };
	if (VSS_FAILED(open_admin(&b)))
		return;
	if (VSS_FAILED(vss_backup_query(b, NULL, VSS_OBJECT_NONE, VSS_OBJECT_SNAPSHOT, &c->all, &c->n)))
		*c = (Census){ 0 };
	vss_backup_release(b);
}

/* Say which snapshots of before are gone in after. */
static size_t census_report(const Census *before, const Census *after, FILE *f)
{
	size_t gone = 0;

	for (size_t i = 0; i < before->n; i++) {
		const vss_snapshot_prop *s = &before->all[i].obj.snap;
		bool found = false;

		for (size_t k = 0; k < after->n && !found; k++)
			found = vss_id_equal(&s->snapshot_id, &after->all[k].obj.snap.snapshot_id);
		if (found)
			continue;
		fprintf(f, "Deleted shadow copy %s of %s (the oldest) to stay within its maximum shadow storage.\n",
			ID_TO_STRING(&s->snapshot_id), s->original_volume_name);
		gone++;
	}
	return gone;
}

static void census_clear(Census *c)
{
	vss_free_object_props(c->all, c->n);
	*c = (Census){ 0 };
}

static bool writer_failed(const vss_writer_status *s)
{
	return s->state >= VSS_WS_FAILED_AT_IDENTIFY || VSS_FAILED(s->failure);
}

/* A Thaw failure comes after the cut, made while the writer was frozen: the
 * set keeps its consistency unless the writer says the snapshot is not
 * consistent (vssd decides the same way). */
static bool failed_after_cut(const vss_writer_status *s)
{
	return s->state == VSS_WS_FAILED_AT_THAW && s->failure != VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT;
}

/* After the set: did every writer that took part do its part? Prints each
 * failure; returns the first one's result, or S_OK. */
static vss_hr check_writers(vss_backup *b)
{
	const vss_writer_status *s;
	vss_hr hr, first = S_OK;
	unsigned n = 0;

	hr = run_async(b, vss_backup_gather_writer_status);
	if (VSS_SUCCEEDED(hr))
		hr = vss_backup_get_writer_status_count(b, &n);
	if (VSS_FAILED(hr))
		return hr;
	for (unsigned i = 0; i < n; i++) {
		if (VSS_FAILED(vss_backup_get_writer_status(b, i, &s)) || !writer_failed(s))
			continue;
		fprintf(stderr, "%s: writer '%s' failed: [%d] %s: %s (0x%08x)%s%s%s\n", program, s->name, (int)s->state,
			writer_state_text(s->state), vss_hr_name(s->failure), (unsigned)s->failure,
			s->message ? ": " : "", s->message ?: "",
			failed_after_cut(s) ? " (after the cut, made while it was frozen: the set stands)" : "");
		if (failed_after_cut(s))
			continue;
		if (first == S_OK)
			first = VSS_FAILED(s->failure) ? s->failure : VSS_E_WRITERERROR_NONRETRYABLE;
	}
	return first;
}

static vss_hr resolve_provider(vss_backup *b, const char *name, vss_id *ret)
{
	Providers p = { 0 };
	vss_hr hr;

	if (VSS_SUCCEEDED(vss_id_parse(name, ret)))
		return S_OK;
	hr = load_providers(b, &p);
	if (VSS_FAILED(hr))
		return fail(hr, NULL), hr;
	hr = VSS_E_PROVIDER_NOT_REGISTERED;
	for (size_t i = 0; i < p.n; i++)
		if (streq(p.props[i].obj.prov.provider_name, name)) {
			*ret = p.props[i].obj.prov.provider_id;
			hr = S_OK;
		}
	if (VSS_FAILED(hr)) {
		fprintf(stderr, "%s: %s (0x%08x): no provider \"%s\"; registered:", program, vss_hr_name(hr),
			(unsigned)hr, name);
		for (size_t i = 0; i < p.n; i++)
			fprintf(stderr, " %s", p.props[i].obj.prov.provider_name);
		fputc('\n', stderr);
	}
	vss_free_object_props(p.props, p.n);
	return hr;
}

/* Wait up to autoretry for the creation slot (Windows' /autoretry). */
static vss_hr start_set(vss_backup *b, usec_t autoretry, vss_id *ret)
{
	usec_t deadline = now_usec(CLOCK_MONOTONIC) + autoretry;
	bool told = false;

	for (;;) {
		vss_hr hr = vss_backup_start_snapshot_set(b, ret);
		usec_t now = now_usec(CLOCK_MONOTONIC);

		if (hr != VSS_E_SNAPSHOT_SET_IN_PROGRESS || now >= deadline)
			return hr;
		if (!told)
			fprintf(stderr, "%s: another snapshot set is being created; waiting up to %llu s for it (--autoretry)\n",
				program, (unsigned long long)(autoretry / USEC_PER_SEC));
		told = true;
		sleep_usec(MIN(deadline - now, 100 * USEC_PER_MSEC));
	}
}

/* Whether a writer's component has a file on one of the volumes. */
static bool component_on(const vss_wm_component *c, char *const *volumes)
{
	for (size_t f = 0; f < c->n_files; f++)
		for (size_t v = 0; volumes[v]; v++)
			if (path_is_below(c->files[f].path, volumes[v]))
				return true;
	return false;
}

/* Select for the backup (or, with succeeded >= 0, say the outcome of) every
 * component whose files are on the volumes: the writers learn at
 * BackupComplete whether what they prepared was backed up. */
vss_hr for_components_on(vss_backup *b, char *const *volumes, int succeeded)
{
	unsigned n = 0;
	vss_hr hr = vss_backup_get_writer_metadata_count(b, &n);

	for (unsigned i = 0; VSS_SUCCEEDED(hr) && i < n; i++) {
		const vss_writer_metadata *md;
		vss_id instance;

		hr = vss_backup_get_writer_metadata(b, i, &instance, &md);
		for (size_t k = 0; VSS_SUCCEEDED(hr) && k < md->n_components; k++) {
			const vss_wm_component *c = &md->components[k];

			if (!component_on(c, volumes))
				continue;
			hr = succeeded < 0 ? vss_backup_add_component(b, &instance, &md->class_id, c->type,
								       c->logical_path, c->name)
					   : vss_backup_set_backup_succeeded(b, &instance, &md->class_id, c->type,
									     c->logical_path, c->name, succeeded);
		}
	}
	return hr;
}

int make_set(const CreateArgs *a, MadeSet *ret)
{
	size_t n = strv_length(a->volumes), k = 0;
	bool writers = !(a->context & VSS_VOLSNAP_ATTR_NO_WRITERS);
	vss_id provider = VSS_ID_NULL;
	MadeSet made = { .n = n };
	Census before = { 0 }, after = { 0 };
	vss_hr hr;

	TRY_HR(vss_create_backup_components(&made.b));
	TRY_HR(vss_backup_initialize_for_backup(made.b, NULL));
	TRY_HR(vss_backup_set_context(made.b, a->context));
	if (writers) {
		TRY_HR(vss_backup_set_backup_state(made.b, a->components_on, false, a->components_on ? VSS_BT_FULL : VSS_BT_COPY,
						   false));
		TRY_HR(run_async(made.b, vss_backup_gather_writer_metadata));
		if (a->components_on)
			TRY_HR(for_components_on(made.b, a->components_on, -1));
	}
	/* It says why itself. */
	if (a->provider && VSS_FAILED(resolve_provider(made.b, a->provider, &provider))) {
		vss_backup_release(made.b);
		return EXIT_FAILURE;
	}
	TRY_HR(start_set(made.b, a->autoretry, &made.set_id));
	for (k = 0; k < n; k++) {
		int64_t maximum = -1;

		TRY_HR(vss_backup_add_to_snapshot_set(made.b, a->volumes[k], &provider, &made.ids[k]));
		/* Only a volume with a maximum can lose snapshots to this set. */
		if (!before.all && VSS_SUCCEEDED(vss_backup_get_diff_area_maximum_size(made.b, a->volumes[k], &maximum)) &&
		    maximum >= 0)
			census_take(&before);
	}
	if (writers)
		TRY_HR(run_async(made.b, vss_backup_prepare_for_backup));
	TRY_HR(run_async(made.b, vss_backup_do_snapshot_set));
	if (writers) {
		/* A writer's veto does not fail DoSnapshotSet, but a set some
		 * application could not make consistent is not one to keep. */
		hr = check_writers(made.b);
		if (VSS_FAILED(hr) && !a->ignore_writer_failures) {
			int32_t deleted;
			vss_id failed;

			fprintf(stderr, "%s: deleting the set (--ignore-writer-failures keeps it)\n", program);
			vss_backup_delete_snapshots(made.b, &made.set_id, VSS_OBJECT_SNAPSHOT_SET, true, &deleted, &failed);
			goto failed;
		}
		if (VSS_FAILED(hr))
			fprintf(stderr, "%s: keeping the set although a writer failed\n", program);
	}
	if (before.all) {
		census_take(&after);
		census_report(&before, &after, a->report ?: stdout);
	}
	census_clear(&before);
	census_clear(&after);
	*ret = made;
	return EXIT_SUCCESS;

failed:
	census_clear(&before);
	if (made.b) {
		int r = fail(hr, NULL);

		vss_backup_abort_backup(made.b);
		vss_backup_release(made.b);
		return r;
	}
	return fail(hr, NULL);
}

static int create_shadow(const CreateArgs *a)
{
	bool writers = !(a->context & VSS_VOLSNAP_ATTR_NO_WRITERS);
	vss_snapshot_prop props[VSS_MAX_VOLUMES_PER_SET + 1];
	const vss_snapshot_prop *shown[VSS_MAX_VOLUMES_PER_SET + 1];
	Providers providers = { 0 };
	MadeSet made = { 0 };
	size_t k = 0;
	vss_hr hr;
	int ret;

	ret = make_set(a, &made);
	if (ret != EXIT_SUCCESS)
		return ret;
	TRY_HR(load_providers(made.b, &providers));
	for (k = 0; k < made.n; k++) {
		TRY_HR(vss_backup_get_snapshot_properties(made.b, &made.ids[k], &props[k]));
		shown[k] = &props[k];
	}
	if (writers)
		TRY_HR(run_async(made.b, vss_backup_backup_complete));
	if (a->json)
		print_snapshots(shown, made.n, &providers, true);
	else {
		char id[VSS_ID_STRING_MAX];

		/* As Windows' vssadmin says it, and then what the set reached. */
		for (size_t i = 0; i < made.n; i++) {
			printf("Successfully created shadow copy for '%s'\n", props[i].original_volume_name);
			printf("    Shadow Copy ID: %s\n", vss_id_format(&props[i].snapshot_id, id));
			printf("    Shadow Copy Volume Name: %s\n", props[i].snapshot_device_object);
		}
		printf("Shadow Copy Set ID: %s\n", vss_id_format(&made.set_id, id));
		/* A set has a volume at least: the parser asked for one. */
		if (made.n > 0) {
			printf("    Consistency: %s\n", props[0].consistency ?: "unknown");
			printf("    Hold window: %llu us\n", (unsigned long long)props[0].hold_window_us);
		}
	}
	ret = EXIT_SUCCESS;
	goto out;

failed:
	ret = fail(hr, NULL);
	vss_backup_abort_backup(made.b);
out:
	for (size_t i = 0; i < k; i++)
		vss_free_snapshot_properties(&props[i]);
	vss_free_object_props(providers.props, providers.n);
	vss_backup_release(made.b);
	return ret;
}

vss_hr query_snapshots(vss_backup *b, const vss_id *set, const vss_id *shadow, const char *volume,
                       vss_object_prop **ret_all, size_t *ret_n, const vss_snapshot_prop ***ret_selected,
                       size_t *ret_selected_n)
{
	_cleanup_free_ char *canonical = NULL;
	const vss_snapshot_prop **sel;
	vss_object_prop *all;
	size_t n, k = 0;
	vss_hr hr;

	if (volume) {
		canonical = realpath(volume, NULL);
		if (!canonical)
			return fail(VSS_E_OBJECT_NOT_FOUND, "%s does not exist", volume), VSS_E_OBJECT_NOT_FOUND;
	}
	/* vssd narrows by set and volume on its catalog's indexes. */
	hr = vss_backup_query_snapshots(b, set, canonical, &all, &n);
	if (VSS_FAILED(hr))
		return fail(hr, NULL), hr;
	sel = calloc(n + 1, sizeof(*sel));
	if (!sel) {
		vss_free_object_props(all, n);
		return fail(E_OUTOFMEMORY, "out of memory"), E_OUTOFMEMORY;
	}
	for (size_t i = 0; i < n; i++) {
		const vss_snapshot_prop *s = &all[i].obj.snap;

		if (set && !vss_id_equal(set, &s->snapshot_set_id))
			continue;
		if (shadow && !vss_id_equal(shadow, &s->snapshot_id))
			continue;
		if (canonical && !streq(canonical, s->original_volume_name))
			continue;
		sel[k++] = s;
	}
	*ret_all = all;
	*ret_n = n;
	*ret_selected = sel;
	*ret_selected_n = k;
	return S_OK;
}

typedef struct ListShadows {
	const vss_id *set;
	const char *canonical;
	const Providers *providers;
	bool json, begun;
	Printer printer;
} ListShadows;

static vss_hr list_page(const vss_snapshot_prop *props, size_t n, void *userdata)
{
	ListShadows *l = userdata;

	/* Not before the first page came: a listing that fails at once
	 * prints nothing but its error. */
	if (!l->begun) {
		printer_begin(&l->printer, l->providers, l->json);
		l->begun = true;
	}
	for (size_t i = 0; i < n; i++) {
		if (l->set && !vss_id_equal(l->set, &props[i].snapshot_set_id))
			continue;
		if (l->canonical && !streq(l->canonical, props[i].original_volume_name))
			continue;
		printer_add(&l->printer, &props[i]);
	}
	return S_OK;
}

/* Page by page: each is written out while vssd reads the next. */
static int list_shadows(const vss_id *set, const char *volume, bool json)
{
	_cleanup_free_ char *canonical = NULL;
	_cleanup_free_ ListShadows *l = NULL;
	Providers providers = { 0 };
	vss_backup *b;
	vss_hr hr;

	if (volume) {
		canonical = realpath(volume, NULL);
		if (!canonical)
			return fail(VSS_E_OBJECT_NOT_FOUND, "%s does not exist", volume);
	}
	l = malloc(sizeof(*l));
	if (!l)
		return fail(E_OUTOFMEMORY, "out of memory");
	hr = open_admin(&b);
	if (VSS_FAILED(hr))
		return fail(hr, NULL);
	hr = load_providers(b, &providers);
	if (VSS_FAILED(hr)) {
		vss_backup_release(b);
		return fail(hr, NULL);
	}
	*l = (ListShadows){ .set = set, .canonical = canonical, .providers = &providers, .json = json };
	/* vssd narrows by set and volume on its catalog's indexes. */
	hr = vss_backup_query_snapshot_pages(b, set, canonical, list_page, l);
	if (VSS_SUCCEEDED(hr)) {
		if (!l->begun)
			printer_begin(&l->printer, &providers, json);
		if (l->printer.count == 0 && !json)
			printf("No items found that satisfy the query.\n");
		printer_end(&l->printer);
	} else if (l->begun && json) {
		/* Cut short: what was written stays (it is not a document);
		 * the error says why. */
		funlockfile(stdout);
	}
	vss_free_object_props(providers.props, providers.n);
	vss_backup_release(b);
	if (VSS_FAILED(hr))
		return fail(hr, NULL);
	return EXIT_SUCCESS;
}

static int list_providers(bool json)
{
	Providers p = { 0 };
	vss_backup *b = NULL;
	vss_hr hr;

	hr = open_admin(&b);
	if (VSS_SUCCEEDED(hr))
		hr = load_providers(b, &p);
	if (VSS_FAILED(hr)) {
		int ret = fail(hr, NULL);

		vss_backup_release(b);
		return ret;
	}
	if (json) {
		JsonWriter w;
		char id[VSS_ID_STRING_MAX];

		json_init(&w, stdout, true);
		json_begin_array(&w);
		for (size_t i = 0; i < p.n; i++) {
			const vss_provider_prop *pp = &p.props[i].obj.prov;

			json_begin_object(&w);
			json_key(&w, "name");
			json_string(&w, pp->provider_name);
			json_key(&w, "id");
			json_string(&w, vss_id_format(&pp->provider_id, id));
			json_key(&w, "type");
			json_string(&w, provider_type_name(pp->provider_type));
			json_key(&w, "version");
			json_string(&w, pp->provider_version);
			json_end_object(&w);
		}
		json_end_array(&w);
		json_finish(&w);
	} else {
		for (size_t i = 0; i < p.n; i++) {
			const vss_provider_prop *pp = &p.props[i].obj.prov;
			char id[VSS_ID_STRING_MAX];

			printf("%sProvider name: '%s'\n", i ? "\n" : "", pp->provider_name);
			printf("   Provider type: %s\n", provider_type_name(pp->provider_type));
			printf("   Provider Id: %s\n", vss_id_format(&pp->provider_id, id));
			printf("   Version: %s\n", pp->provider_version);
		}
	}
	vss_free_object_props(p.props, p.n);
	vss_backup_release(b);
	return EXIT_SUCCESS;
}

typedef struct DeleteArgs {
	const char *shadow, *set, *volume;
	vss_id id;      /* of --shadow or --set */
	bool oldest, all, quiet;
} DeleteArgs;

static bool confirm(size_t n)
{
	char answer[16];

	if (!isatty(STDIN_FILENO))
		return true;
	printf("Do you really want to delete %zu shadow cop%s (y/N)? ", n, n == 1 ? "y" : "ies");
	fflush(stdout);
	return fgets(answer, sizeof(answer), stdin) && (answer[0] == 'y' || answer[0] == 'Y');
}

static int delete_shadows(const DeleteArgs *a)
{
	const vss_snapshot_prop **sel = NULL;
	vss_object_prop *all = NULL;
	size_t n = 0, k = 0, done = 0;
	vss_id failed;
	int32_t deleted;
	vss_backup *b;
	vss_hr hr;
	int ret = EXIT_SUCCESS;

	hr = open_admin(&b);
	if (VSS_FAILED(hr))
		return fail(hr, NULL);
	hr = query_snapshots(b, a->set ? &a->id : NULL, a->shadow ? &a->id : NULL, a->volume, &all, &n, &sel, &k);
	if (VSS_FAILED(hr)) {
		vss_backup_release(b);
		return EXIT_FAILURE;
	}
	if (k == 0) {
		ret = fail(VSS_E_OBJECT_NOT_FOUND, "no shadow copy matches");
		goto out;
	}
	if (a->oldest) {
		size_t oldest = 0;

		for (size_t i = 1; i < k; i++)
			if (sel[i]->creation_timestamp < sel[oldest]->creation_timestamp)
				oldest = i;
		sel[0] = sel[oldest];
		k = 1;
	}
	if (!a->quiet && !confirm(k))
		goto out;

	if (a->set) {
		hr = vss_backup_delete_snapshots(b, &a->id, VSS_OBJECT_SNAPSHOT_SET, true, &deleted, &failed);
		done = deleted > 0 ? (size_t)deleted : 0;
	} else {
		for (size_t i = 0; i < k; i++) {
			hr = vss_backup_delete_snapshots(b, &sel[i]->snapshot_id, VSS_OBJECT_SNAPSHOT, true, &deleted,
							 &failed);
			done += deleted > 0 ? (size_t)deleted : 0;
			if (VSS_FAILED(hr))
				break;
		}
	}
	if (VSS_FAILED(hr))
		ret = fail(hr, NULL);
	if (!a->quiet)
		printf("Successfully deleted %zu shadow cop%s.\n", done, done == 1 ? "y" : "ies");
out:
	free(sel);
	vss_free_object_props(all, n);
	vss_backup_release(b);
	return ret;
}

static void print_size(const char *label, int64_t bytes, const char *none)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	size_t u = 0;

	if (bytes < 0) {
		printf("   %s: %s\n", label, none);
		return;
	}
	while (v >= 1024 && u < ELEMENTSOF(units) - 1) {
		v /= 1024;
		u++;
	}
	printf("   %s: %.*f %s (%lld bytes)\n", label, u ? 1 : 0, v, units[u], (long long)bytes);
}

static void json_size(JsonWriter *w, const char *key, int64_t bytes)
{
	json_key(w, key);
	if (bytes < 0)
		json_string(w, NULL);
	else
		json_int(w, bytes);
}

static int list_shadowstorage(const char *volume, bool json)
{
	vss_diff_area_prop *areas = NULL;
	size_t n = 0;
	vss_backup *b = NULL;
	vss_hr hr;

	hr = open_admin(&b);
	if (VSS_SUCCEEDED(hr))
		hr = vss_backup_query_diff_areas(b, volume, &areas, &n);
	if (VSS_FAILED(hr)) {
		int ret = fail(hr, NULL);

		vss_backup_release(b);
		return ret;
	}
	if (json) {
		JsonWriter w;

		json_init(&w, stdout, true);
		json_begin_array(&w);
		for (size_t i = 0; i < n; i++) {
			json_begin_object(&w);
			json_key(&w, "volume");
			json_string(&w, areas[i].volume_name);
			json_key(&w, "storage_volume");
			json_string(&w, areas[i].diff_area_volume_name);
			json_size(&w, "used", areas[i].used_diff_space);
			json_size(&w, "allocated", areas[i].allocated_diff_space);
			json_size(&w, "maximum", areas[i].maximum_diff_space);
			json_end_object(&w);
		}
		json_end_array(&w);
		json_finish(&w);
	} else if (n == 0) {
		printf("No items found that satisfy the query.\n");
	}
	for (size_t i = 0; !json && i < n; i++) {
		printf("%sShadow Copy Storage association\n", i ? "\n" : "");
		printf("   For volume: %s\n", areas[i].volume_name);
		printf("   Shadow Copy Storage volume: %s\n", areas[i].diff_area_volume_name ?: "(none yet)");
		print_size("Used Shadow Copy Storage space", areas[i].used_diff_space, "unknown (btrfs without quotas)");
		print_size("Allocated Shadow Copy Storage space", areas[i].allocated_diff_space, "unknown");
		print_size("Maximum Shadow Copy Storage space", areas[i].maximum_diff_space, "UNBOUNDED");
	}
	vss_free_diff_area_props(areas, n);
	vss_backup_release(b);
	return EXIT_SUCCESS;
}

/* As Windows' vssadmin: every writer is asked for its metadata and state. */
static int list_writers(bool json)
{
	const vss_writer_status *s;
	vss_backup *b = NULL;
	JsonWriter w;
	unsigned n = 0;
	vss_hr hr;

	TRY_HR(vss_create_backup_components(&b));
	TRY_HR(vss_backup_initialize_for_backup(b, NULL));
	TRY_HR(run_async(b, vss_backup_gather_writer_metadata));
	TRY_HR(run_async(b, vss_backup_gather_writer_status));
	TRY_HR(vss_backup_get_writer_status_count(b, &n));
	if (json) {
		json_init(&w, stdout, true);
		json_begin_array(&w);
	} else if (n == 0) {
		printf("No writers are registered.\n");
	}
	for (unsigned i = 0; i < n; i++) {
		char id[VSS_ID_STRING_MAX];

		if (VSS_FAILED(vss_backup_get_writer_status(b, i, &s)))
			continue;
		if (json) {
			json_begin_object(&w);
			json_key(&w, "name");
			json_string(&w, s->name);
			json_key(&w, "class_id");
			json_string(&w, vss_id_format(&s->class_id, id));
			json_key(&w, "instance_id");
			json_string(&w, vss_id_format(&s->instance_id, id));
			json_key(&w, "state");
			json_int(&w, s->state);
			json_key(&w, "state_text");
			json_string(&w, writer_state_text(s->state));
			json_key(&w, "last_error");
			json_string(&w, s->failure == S_OK ? NULL : vss_hr_name(s->failure));
			json_key(&w, "message");
			json_string(&w, s->message);
			json_end_object(&w);
			continue;
		}
		printf("%sWriter name: '%s'\n", i ? "\n" : "", s->name);
		printf("   Writer Id: %s\n", vss_id_format(&s->class_id, id));
		printf("   Writer Instance Id: %s\n", vss_id_format(&s->instance_id, id));
		printf("   State: [%d] %s\n", (int)s->state, writer_state_text(s->state));
		if (s->failure == S_OK)
			printf("   Last error: No error\n");
		else
			printf("   Last error: %s (0x%08x)%s%s\n", vss_hr_name(s->failure), (unsigned)s->failure,
			       s->message ? ": " : "", s->message ?: "");
	}
	if (json) {
		json_end_array(&w);
		json_finish(&w);
	}
	vss_backup_release(b);
	return EXIT_SUCCESS;
failed:
	hr = fail(hr, NULL);
	vss_backup_release(b);
	return hr;
}

/* SIZE (with an optional B, K, M, G, T or P suffix, binary multiples, an
 * optional "iB" or "B" after it), N% of the volume, or UNBOUNDED (-1). */
static int parse_maxsize(const char *s, const char *volume, int64_t *ret)
{
	const char *pct = strchr(s, '%');
	uint64_t v;

	if (strcasecmp(s, "UNBOUNDED") == 0) {
		*ret = -1;
		return 0;
	}
	if (pct && streq(pct, "%")) {
		_cleanup_free_ char *number = strndup(s, (size_t)(pct - s));
		struct statvfs sv;
		struct stat st;
		uint64_t size;

		if (!number || parse_u64(number, &v) < 0 || v == 0 || v > 100 || stat(volume, &st) < 0)
			return -EINVAL;
		if (S_ISREG(st.st_mode))
			size = (uint64_t)st.st_size;
		else if (statvfs(volume, &sv) == 0)
			size = (uint64_t)sv.f_blocks * sv.f_frsize;
		else
			return -EINVAL;
		*ret = (int64_t)(size / 100 * v);
		return 0;
	}
	if (parse_size(s, &v) < 0)
		return -EINVAL;
	if (v > (uint64_t)INT64_MAX)
		return -ERANGE;
	*ret = (int64_t)v;
	return 0;
}

static int resize_shadowstorage(const char *volume, int64_t maximum)
{
	Census before, after;
	vss_backup *b = NULL;
	vss_hr hr;
	size_t gone;

	census_take(&before);
	hr = open_admin(&b);
	if (VSS_SUCCEEDED(hr))
		hr = vss_backup_change_diff_area_maximum_size(b, volume, maximum);
	if (VSS_FAILED(hr)) {
		int ret = fail(hr, NULL);

		census_clear(&before);
		vss_backup_release(b);
		return ret;
	}
	vss_backup_release(b);
	census_take(&after);
	gone = census_report(&before, &after, stdout);
	census_clear(&before);
	census_clear(&after);
	printf("Successfully resized the shadow copy storage association%s.\n",
	       gone ? ", deleting the shadow copies above" : "");
	return EXIT_SUCCESS;
}

/* Snapshots of a set, parents before what is mounted inside them. */
static int by_volume(const void *a, const void *b)
{
	const vss_snapshot_prop *x = *(const vss_snapshot_prop *const *)a, *y = *(const vss_snapshot_prop *const *)b;

	return strcmp(x->original_volume_name, y->original_volume_name);
}

typedef struct ExposeArgs {
	const char *shadow, *set, *at;
	vss_id id;      /* of --shadow or --set */
} ExposeArgs;

static int expose(const ExposeArgs *a, bool undo)
{
	const vss_snapshot_prop **sel = NULL;
	vss_object_prop *all = NULL;
	size_t n = 0, k = 0, done = 0;
	vss_backup *b;
	vss_hr hr = S_OK;
	int ret = EXIT_SUCCESS;

	hr = open_admin(&b);
	if (VSS_FAILED(hr))
		return fail(hr, NULL);
	if (VSS_FAILED(query_snapshots(b, a->set ? &a->id : NULL, a->shadow ? &a->id : NULL, NULL, &all, &n, &sel,
				       &k))) {
		vss_backup_release(b);
		return EXIT_FAILURE;
	}
	if (k == 0) {
		ret = fail(VSS_E_OBJECT_NOT_FOUND, "no shadow copy matches");
		goto out;
	}
	qsort(sel, k, sizeof(*sel), by_volume);

	if (undo) {
		/* Inner mounts first. */
		for (size_t i = k; i-- > 0;) {
			if (!sel[i]->exposed_name && a->set)
				continue;
			hr = vss_backup_unexpose_snapshot(b, &sel[i]->snapshot_id);
			if (VSS_FAILED(hr)) {
				ret = fail(hr, NULL);
				goto out;
			}
			printf("Shadow copy %s is no longer exposed at %s\n",
			       ID_TO_STRING(&sel[i]->snapshot_id), sel[i]->exposed_name);
		}
		goto out;
	}

	for (done = 0; done < k; done++) {
		_cleanup_free_ char *dir = NULL, *exposed = NULL;

		if (a->set && asprintf(&dir, "%s%s", a->at, sel[done]->original_volume_name) < 0) {
			hr = E_OUTOFMEMORY;
			break;
		}
		hr = vss_backup_expose_snapshot(b, &sel[done]->snapshot_id, NULL, VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY,
						a->set ? dir : a->at, &exposed);
		if (VSS_FAILED(hr))
			break;
		printf("Shadow copy %s of %s exposed at %s\n", ID_TO_STRING(&sel[done]->snapshot_id),
		       sel[done]->original_volume_name, exposed);
	}
	if (VSS_FAILED(hr)) {
		ret = fail(hr, NULL);
		/* A set is exposed whole or not at all. */
		while (done-- > 0)
			vss_backup_unexpose_snapshot(b, &sel[done]->snapshot_id);
	}
out:
	free(sel);
	vss_free_object_props(all, n);
	vss_backup_release(b);
	return ret;
}

/* revert shadow: the snapshot's volume, found first so that the output
 * names it. */
static int revert_shadow(const vss_id *id, bool force_unmount)
{
	vss_snapshot_prop prop = { 0 };
	char when[RFC3339_MAX];
	vss_backup *b = NULL;
	vss_hr hr;

	hr = open_admin(&b);
	if (VSS_SUCCEEDED(hr))
		hr = vss_backup_get_snapshot_properties(b, id, &prop);
	if (VSS_SUCCEEDED(hr)) {
		printf("Reverting %s to shadow copy %s, created %s...\n", prop.original_volume_name,
		       ID_TO_STRING(id), format_rfc3339(prop.creation_timestamp, when));
		fflush(stdout);
		hr = vss_backup_revert_to_snapshot(b, id, force_unmount);
	}
	if (VSS_FAILED(hr)) {
		int ret = fail(hr, NULL);

		vss_free_snapshot_properties(&prop);
		vss_backup_release(b);
		return ret;
	}
	printf("Successfully reverted %s to shadow copy %s.\n", prop.original_volume_name, ID_TO_STRING(id));
	vss_free_snapshot_properties(&prop);
	vss_backup_release(b);
	return EXIT_SUCCESS;
}

enum {
	OPT_SOCKET = 0x100,
	OPT_FOR,
	OPT_PROVIDER,
	OPT_CONTEXT,
	OPT_JSON,
	OPT_SET,
	OPT_SHADOW,
	OPT_OLDEST,
	OPT_ALL,
	OPT_QUIET,
	OPT_AT,
	OPT_MAXSIZE,
	OPT_IGNORE_WRITER_FAILURES,
	OPT_AUTORETRY,
	OPT_WRITERS,
	OPT_NO_WRITERS,
	OPT_VERSION,
	OPT_FORCE_UNMOUNT,
};

/* The bit of an option in Command's mask of the options given. */
#define OPT_BIT(opt) (1u << ((opt) - OPT_SOCKET))

typedef enum Verb {
	VERB_CREATE_SHADOW,
	VERB_LIST_SHADOWS,
	VERB_LIST_PROVIDERS,
	VERB_LIST_WRITERS,
	VERB_LIST_SHADOWSTORAGE,
	VERB_RESIZE_SHADOWSTORAGE,
	VERB_DELETE_SHADOWS,
	VERB_EXPOSE,
	VERB_UNEXPOSE,
	VERB_EXEC,
	VERB_REVERT_SHADOW,
} Verb;

/* A command line, checked as far as it can be without vssd. */
typedef struct Command {
	Verb verb;
	char **volumes;         /* every --for, owned */
	CreateArgs create;
	DeleteArgs del;
	ExposeArgs exp;
	ExecArgs exec;
	char **canonical;       /* exec: the volumes' canonical paths, owned */
	char *at;               /* exec: --at's canonical path, owned */
	const char *volume;     /* the one --for of list, resize */
	const vss_id *set;      /* list shadows --set, or NULL */
	vss_id set_id;
	int64_t maximum;        /* resize --maxsize */
	bool json;
	vss_id shadow_id;       /* revert shadow --shadow */
	bool force_unmount;     /* revert shadow */
} Command;

/* parse_command_line() found a command to run. */
#define COMMAND_RUN (-1)

/* An option a command does not take is a mistake the user should hear of:
 * "list writers --for=X" listing every writer reads as if it had filtered. */
static int check_options(int n, char **words, unsigned given, const struct option *options)
{
	static const struct {
		const char *verb, *noun;
		unsigned takes;
	} commands[] = {
		{ "create", "shadow",
		  OPT_BIT(OPT_FOR) | OPT_BIT(OPT_PROVIDER) | OPT_BIT(OPT_CONTEXT) |
			  OPT_BIT(OPT_IGNORE_WRITER_FAILURES) | OPT_BIT(OPT_JSON) | OPT_BIT(OPT_AUTORETRY) },
		{ "exec", NULL,
		  OPT_BIT(OPT_FOR) | OPT_BIT(OPT_SET) | OPT_BIT(OPT_PROVIDER) | OPT_BIT(OPT_CONTEXT) |
			  OPT_BIT(OPT_WRITERS) | OPT_BIT(OPT_NO_WRITERS) | OPT_BIT(OPT_AT) | OPT_BIT(OPT_AUTORETRY) |
			  OPT_BIT(OPT_IGNORE_WRITER_FAILURES) },
		{ "list", "shadows", OPT_BIT(OPT_SET) | OPT_BIT(OPT_FOR) | OPT_BIT(OPT_JSON) },
		{ "list", "providers", OPT_BIT(OPT_JSON) },
		{ "list", "writers", OPT_BIT(OPT_JSON) },
		{ "list", "shadowstorage", OPT_BIT(OPT_FOR) | OPT_BIT(OPT_JSON) },
		{ "resize", "shadowstorage", OPT_BIT(OPT_FOR) | OPT_BIT(OPT_MAXSIZE) },
		{ "delete", "shadows",
		  OPT_BIT(OPT_SHADOW) | OPT_BIT(OPT_SET) | OPT_BIT(OPT_FOR) | OPT_BIT(OPT_OLDEST) |
			  OPT_BIT(OPT_ALL) | OPT_BIT(OPT_QUIET) },
		{ "expose", NULL, OPT_BIT(OPT_SHADOW) | OPT_BIT(OPT_SET) | OPT_BIT(OPT_AT) },
		{ "unexpose", NULL, OPT_BIT(OPT_SHADOW) | OPT_BIT(OPT_SET) },
		{ "revert", "shadow", OPT_BIT(OPT_SHADOW) | OPT_BIT(OPT_FORCE_UNMOUNT) },
	};

	for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
		unsigned extra;

		if (n != (commands[i].noun ? 2 : 1) || !streq(words[0], commands[i].verb) ||
		    (commands[i].noun && !streq(words[1], commands[i].noun)))
			continue;
		extra = given & ~(commands[i].takes | OPT_BIT(OPT_SOCKET));
		for (const struct option *o = options; extra && o->name; o++)
			if (o->val >= OPT_SOCKET && (extra & OPT_BIT(o->val)))
				return usage_error("%s%s%s takes no --%s", commands[i].verb,
						   commands[i].noun ? " " : "", commands[i].noun ?: "", o->name);
		break;
	}
	/* Unknown commands are reported by the caller. */
	return COMMAND_RUN;
}

static int parse_exec(Command *cmd, const char *set, bool context_given, unsigned given)
{
	ExecArgs *e = &cmd->exec;
	CreateArgs *create = &cmd->create;

	if (!e->command || !e->command[0])
		return usage_error("exec needs a command after \"--\": exec --for=PATH -- COMMAND [ARGS...]");
	if (!!cmd->volumes + !!set != 1)
		return usage_error("exec takes --for=PATH (a new set) or --set=ID (an existing one)");
	if ((given & OPT_BIT(OPT_WRITERS)) && (given & OPT_BIT(OPT_NO_WRITERS)))
		return usage_error("--writers and --no-writers exclude each other");
	if (set) {
		if (given & ~(OPT_BIT(OPT_SET) | OPT_BIT(OPT_AT) | OPT_BIT(OPT_SOCKET)))
			return usage_error("exec --set takes only --at: the set is made already");
		if (VSS_FAILED(vss_id_parse(set, &cmd->set_id)))
			return usage_error("\"%s\" is not a set id", set);
		e->set = &cmd->set_id;
	} else {
		if (strv_length(cmd->volumes) > VSS_MAX_VOLUMES_PER_SET + 1)
			return fail(VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED, "a set holds at most %d volumes",
				    VSS_MAX_VOLUMES_PER_SET);
		/* The set lives as long as the command: auto-release unless
		 * the user asks for one to keep. */
		if (!context_given)
			create->context = (given & OPT_BIT(OPT_NO_WRITERS)) ? VSS_CTX_FILE_SHARE_BACKUP : VSS_CTX_BACKUP;
		else if ((given & OPT_BIT(OPT_NO_WRITERS)))
			create->context |= VSS_VOLSNAP_ATTR_NO_WRITERS;
		else if ((given & OPT_BIT(OPT_WRITERS)) && (create->context & VSS_VOLSNAP_ATTR_NO_WRITERS))
			return usage_error("context \"%s\" has no writers", context_name_of_attributes(create->context));
		for (size_t i = 0; cmd->volumes[i]; i++) {
			_cleanup_free_ char *c = realpath(cmd->volumes[i], NULL);

			if (!c)
				return fail(VSS_E_OBJECT_NOT_FOUND, "%s: %s", cmd->volumes[i], strerror(errno));
			if (strv_push_dup(&cmd->canonical, c) < 0)
				return fail(E_OUTOFMEMORY, "out of memory");
		}
		create->volumes = cmd->volumes;
		create->components_on = cmd->canonical;
		/* The command's output is its own. */
		create->report = stderr;
		e->create = *create;
	}
	if (cmd->exp.at) {
		struct stat st;

		e->at = cmd->at = realpath(cmd->exp.at, NULL);
		if (!e->at || stat(e->at, &st) < 0 || !S_ISDIR(st.st_mode))
			return usage_error("--at=DIR needs an existing directory");
	}
	cmd->verb = VERB_EXEC;
	return COMMAND_RUN;
}

/* Read and check the command line, talking to nobody: COMMAND_RUN with *cmd
 * filled in, or the exit status after --help or a usage error (reported).
 * cmd->volumes is the caller's to free either way. */
static int parse_command_line(int argc, char **argv, Command *cmd)
{
	static const struct option options[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "for", required_argument, NULL, OPT_FOR },
		{ "provider", required_argument, NULL, OPT_PROVIDER },
		{ "context", required_argument, NULL, OPT_CONTEXT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "set", required_argument, NULL, OPT_SET },
		{ "shadow", required_argument, NULL, OPT_SHADOW },
		{ "oldest", no_argument, NULL, OPT_OLDEST },
		{ "all", no_argument, NULL, OPT_ALL },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ "at", required_argument, NULL, OPT_AT },
		{ "maxsize", required_argument, NULL, OPT_MAXSIZE },
		{ "ignore-writer-failures", no_argument, NULL, OPT_IGNORE_WRITER_FAILURES },
		{ "autoretry", required_argument, NULL, OPT_AUTORETRY },
		{ "writers", no_argument, NULL, OPT_WRITERS },
		{ "no-writers", no_argument, NULL, OPT_NO_WRITERS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "force-unmount", no_argument, NULL, OPT_FORCE_UNMOUNT },
		{},
	};
	CreateArgs *create = &cmd->create;
	DeleteArgs *del = &cmd->del;
	ExposeArgs *exp = &cmd->exp;
	const char *set = NULL, *maxsize = NULL, *verb, *noun;
	char **volumes = NULL;
	bool context_given = false, want_help = false;
	unsigned given = 0;
	int c, r;

	*cmd = (Command){ .create.context = VSS_CTX_APP_ROLLBACK };
	/* exec's command is everything after "--", its options included. */
	for (int i = 1; i < argc; i++)
		if (streq(argv[i], "--")) {
			cmd->exec.command = argv + i + 1;
			argc = i;
			break;
		}
	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		if (c >= OPT_SOCKET)
			given |= OPT_BIT(c);
		switch (c) {
		case OPT_SOCKET:
			setenv("VSS_SOCKET", optarg, 1);
			break;
		case OPT_FOR: {
			/* vssd takes absolute paths only: a relative one is
			 * the user's, from here. */
			_cleanup_free_ char *cwd = optarg[0] == '/' ? NULL : getcwd(NULL, 0), *abs = NULL;

			if (optarg[0] != '/' && (!cwd || asprintf(&abs, "%s/%s", cwd, optarg) < 0))
				return fail(E_OUTOFMEMORY, "cannot make %s an absolute path", optarg);
			r = strv_push_dup(&cmd->volumes, abs ?: optarg);
			if (r < 0)
				return fail(E_OUTOFMEMORY, "out of memory");
			break;
		}
		case OPT_PROVIDER:
			create->provider = optarg;
			break;
		case OPT_CONTEXT: {
			int64_t ctx = context_from_name(optarg);

			if (ctx < 0)
				return usage_error("unknown context \"%s\"", optarg);
			create->context = (int32_t)ctx;
			context_given = true;
			break;
		}
		case OPT_JSON:
			cmd->json = true;
			break;
		case OPT_SET:
			set = optarg;
			break;
		case OPT_SHADOW:
			del->shadow = optarg;
			break;
		case OPT_OLDEST:
			del->oldest = true;
			break;
		case OPT_ALL:
			del->all = true;
			break;
		case OPT_QUIET:
			del->quiet = true;
			break;
		case OPT_AT:
			exp->at = optarg;
			break;
		case OPT_MAXSIZE:
			maxsize = optarg;
			break;
		case OPT_IGNORE_WRITER_FAILURES:
			create->ignore_writer_failures = true;
			break;
		case OPT_AUTORETRY: {
			uint64_t sec;

			if (parse_u64(optarg, &sec) < 0 || sec > 7 * 24 * 3600)
				return usage_error("bad --autoretry \"%s\": the seconds to wait for the creation slot",
						   optarg);
			create->autoretry = sec * USEC_PER_SEC;
			break;
		}
		case OPT_WRITERS:
		case OPT_NO_WRITERS:
			break;
		case 'h':
			want_help = true;
			break;
		case OPT_VERSION:
			printf("%s %s\n", program, VSS_VERSION);
			return EXIT_SUCCESS;
		case OPT_FORCE_UNMOUNT:
			cmd->force_unmount = true;
			break;
		default:
			return usage_error("bad option");
		}
	}
	if (want_help) {
		_cleanup_free_ char *words = NULL;

		if (argc - optind == 2 && asprintf(&words, "%s %s", argv[optind], argv[optind + 1]) < 0)
			return fail(E_OUTOFMEMORY, "out of memory");
		help(words ?: argc - optind == 1 ? argv[optind] : NULL);
		return EXIT_SUCCESS;
	}
	r = check_options(argc - optind, argv + optind, given, options);
	if (r != COMMAND_RUN)
		return r;
	volumes = cmd->volumes;
	if (argc > optind && streq(argv[optind], "exec")) {
		if (argc - optind > 1)
			return usage_error("exec needs \"--\" before its command: exec --for=PATH -- COMMAND [ARGS...]");
		return parse_exec(cmd, set, context_given, given);
	}
	if (cmd->exec.command) {
		_cleanup_free_ char *words = NULL;
		bool known = false;

		/* A mistyped exec is likelier than a command for another verb. */
		if (argc - optind == 1)
			words = strdup(argv[optind]);
		else if (argc - optind == 2 && asprintf(&words, "%s %s", argv[optind], argv[optind + 1]) < 0)
			words = NULL;
		for (size_t i = 0; words && i < ELEMENTSOF(command_help); i++)
			known = known || streq(words, command_help[i].words);
		if (words && !known)
			return unknown_command(words);
		return usage_error("only exec takes a command after \"--\"");
	}
	if (argc - optind == 1 && (streq(argv[optind], "expose") || streq(argv[optind], "unexpose"))) {
		bool undo = streq(argv[optind], "unexpose");

		exp->shadow = del->shadow;
		exp->set = set;
		if (!!exp->shadow + !!exp->set != 1)
			return usage_error("%s takes one of --shadow, --set", undo ? "unexpose" : "expose");
		if (exp->set && !undo && !exp->at)
			return usage_error("expose --set needs --at=DIR, under which the set mirrors its volumes' paths");
		if (VSS_FAILED(vss_id_parse(exp->shadow ?: exp->set, &exp->id)))
			return usage_error("\"%s\" is not an id", exp->shadow ?: exp->set);
		cmd->verb = undo ? VERB_UNEXPOSE : VERB_EXPOSE;
		return COMMAND_RUN;
	}
	if (argc - optind == 1)
		return unknown_command(argv[optind]);
	if (argc - optind != 2)
		return usage_error("expected a command such as \"list shadows\"");
	verb = argv[optind];
	noun = argv[optind + 1];
	cmd->volume = volumes ? volumes[0] : NULL;

	if (streq(verb, "create") && streq(noun, "shadow")) {
		if (!volumes)
			return usage_error("create shadow needs --for=PATH");
		/* vssadmin exits when the set is made: an auto-release set
		 * would be deleted at once. */
		if (context_given && !(create->context & VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE))
			return usage_error("context \"%s\" is auto-release: its snapshots would be deleted when "
					   "vssadmin exits; use a persistent context",
					   context_name_of_attributes(create->context));
		if (strv_length(volumes) > VSS_MAX_VOLUMES_PER_SET + 1)
			return fail(VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED, "a set holds at most %d volumes",
				    VSS_MAX_VOLUMES_PER_SET);
		create->volumes = volumes;
		create->json = cmd->json;
		create->report = cmd->json ? stderr : stdout;
		cmd->verb = VERB_CREATE_SHADOW;
		return COMMAND_RUN;
	}
	if (streq(verb, "list") && streq(noun, "shadows")) {
		if (volumes && volumes[1])
			return usage_error("list shadows takes one --for");
		if (set && VSS_FAILED(vss_id_parse(set, &cmd->set_id)))
			return usage_error("\"%s\" is not a set id", set);
		cmd->set = set ? &cmd->set_id : NULL;
		cmd->verb = VERB_LIST_SHADOWS;
		return COMMAND_RUN;
	}
	if (streq(verb, "list") && streq(noun, "providers")) {
		cmd->verb = VERB_LIST_PROVIDERS;
		return COMMAND_RUN;
	}
	if (streq(verb, "list") && streq(noun, "writers")) {
		cmd->verb = VERB_LIST_WRITERS;
		return COMMAND_RUN;
	}
	if (streq(verb, "list") && streq(noun, "shadowstorage")) {
		if (volumes && volumes[1])
			return usage_error("list shadowstorage takes one --for");
		cmd->verb = VERB_LIST_SHADOWSTORAGE;
		return COMMAND_RUN;
	}
	if (streq(verb, "resize") && streq(noun, "shadowstorage")) {
		if (volumes && volumes[1])
			return usage_error("resize shadowstorage takes one --for");
		if (!cmd->volume || !maxsize)
			return usage_error("resize shadowstorage needs --for=PATH and --maxsize=SIZE|N%%|UNBOUNDED");
		if (parse_maxsize(maxsize, cmd->volume, &cmd->maximum) < 0)
			return usage_error("bad --maxsize \"%s\": a size such as 512MiB or 10G, N%%, or UNBOUNDED",
					   maxsize);
		cmd->verb = VERB_RESIZE_SHADOWSTORAGE;
		return COMMAND_RUN;
	}
	if (streq(verb, "delete") && streq(noun, "shadows")) {
		if (volumes && volumes[1])
			return usage_error("delete shadows takes one --for");
		del->set = set;
		del->volume = cmd->volume;
		/* --all alone: every snapshot, as Windows' /all. */
		if (!!del->shadow + !!del->set + !!del->volume + (del->all && !del->volume) != 1)
			return usage_error("delete shadows takes exactly one of --shadow, --set, --for, --all");
		if (del->oldest && !del->volume)
			return usage_error("--oldest goes with --for");
		if (del->oldest && del->all)
			return usage_error("--oldest and --all exclude each other");
		if ((del->shadow || del->set) && VSS_FAILED(vss_id_parse(del->shadow ?: del->set, &del->id)))
			return usage_error("\"%s\" is not an id", del->shadow ?: del->set);
		cmd->verb = VERB_DELETE_SHADOWS;
		return COMMAND_RUN;
	}
	if (streq(verb, "revert") && streq(noun, "shadow")) {
		if (!del->shadow)
			return usage_error("revert shadow needs --shadow=ID");
		if (VSS_FAILED(vss_id_parse(del->shadow, &cmd->shadow_id)))
			return usage_error("\"%s\" is not an id", del->shadow);
		cmd->verb = VERB_REVERT_SHADOW;
		return COMMAND_RUN;
	}
	{
		_cleanup_free_ char *words = NULL;

		if (asprintf(&words, "%s %s", verb, noun) < 0)
			return fail(E_OUTOFMEMORY, "out of memory");
		return unknown_command(words);
	}
}

static int run_command(const Command *cmd)
{
	switch (cmd->verb) {
	case VERB_CREATE_SHADOW:
		return create_shadow(&cmd->create);
	case VERB_LIST_SHADOWS:
		return list_shadows(cmd->set, cmd->volume, cmd->json);
	case VERB_LIST_PROVIDERS:
		return list_providers(cmd->json);
	case VERB_LIST_WRITERS:
		return list_writers(cmd->json);
	case VERB_LIST_SHADOWSTORAGE:
		return list_shadowstorage(cmd->volume, cmd->json);
	case VERB_RESIZE_SHADOWSTORAGE:
		return resize_shadowstorage(cmd->volume, cmd->maximum);
	case VERB_DELETE_SHADOWS:
		return delete_shadows(&cmd->del);
	case VERB_EXPOSE:
	case VERB_UNEXPOSE:
		return expose(&cmd->exp, cmd->verb == VERB_UNEXPOSE);
	case VERB_EXEC:
		return exec_command(&cmd->exec);
	case VERB_REVERT_SHADOW:
		return revert_shadow(&cmd->shadow_id, cmd->force_unmount);
	}
	return usage_error("unknown command");
}

int main(int argc, char **argv)
{
	Command cmd;
	int r;

	r = parse_command_line(argc, argv, &cmd);
	if (r == COMMAND_RUN)
		r = run_command(&cmd);
	strv_free(cmd.volumes);
	strv_free(cmd.canonical);
	free(cmd.at);
	return r;
}
