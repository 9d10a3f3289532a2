/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The Backup Components Document as JSON (json-c), both ways. Formatting
 * builds json-c objects in a fixed key order (json-c keeps insertion
 * order); parsing walks the tree it returns and checks every field, with
 * the text's own limits checked first. docs/RESTORE.md describes each field.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "basic/macro.h"
#include "basic/props.h"
#include "basic/util.h"
#include "vssd/bcd.h"

static const char *const backup_types[] = {
	[VSS_BT_UNDEFINED] = "undefined", [VSS_BT_FULL] = "full", [VSS_BT_INCREMENTAL] = "incremental",
	[VSS_BT_DIFFERENTIAL] = "differential", [VSS_BT_LOG] = "log", [VSS_BT_COPY] = "copy",
	[VSS_BT_OTHER] = "other",
};
static const char *const component_types[] = {
	[VSS_CT_UNDEFINED] = "undefined", [VSS_CT_DATABASE] = "database", [VSS_CT_FILEGROUP] = "filegroup",
};
static const char *const file_kinds[] = {
	[VSS_FK_FILES] = "files", [VSS_FK_DATABASE] = "database", [VSS_FK_DATABASE_LOG] = "database_log",
};
static const char *const usages[] = {
	[VSS_UT_UNDEFINED] = "undefined", [VSS_UT_BOOTABLESYSTEMSTATE] = "bootable_system_state",
	[VSS_UT_SYSTEMSERVICE] = "system_service", [VSS_UT_USERDATA] = "user_data", [VSS_UT_OTHER] = "other",
};
static const char *const sources[] = {
	[VSS_ST_UNDEFINED] = "undefined", [VSS_ST_TRANSACTEDDB] = "transacted_db",
	[VSS_ST_NONTRANSACTEDDB] = "nontransacted_db", [VSS_ST_OTHER] = "other",
};
static const char *const levels[] = {
	[VSS_APP_UNKNOWN] = "unknown", [VSS_APP_SYSTEM] = "system", [VSS_APP_BACK_END] = "back_end",
	[VSS_APP_FRONT_END] = "front_end",
};

#define NAME_OF(table, v) ((unsigned)(v) < ELEMENTSOF(table) ? table[v] : NULL)

static void target_clear(BcdTarget *t)
{
	free(t->path);
	free(t->filespec);
	free(t->alternate_path);
}

static void component_clear(BcdComponent *c)
{
	free(c->logical_path);
	free(c->name);
	free(c->backup_options);
	free(c->restore_options);
	for (size_t i = 0; i < c->n_new_targets; i++)
		target_clear(&c->new_targets[i]);
	free(c->new_targets);
}

void bcd_clear(Bcd *d)
{
	if (!d)
		return;
	free(d->state);
	for (size_t i = 0; i < d->n_snapshots; i++) {
		free(d->snapshots[i].volume);
		free(d->snapshots[i].device_object);
	}
	free(d->snapshots);
	for (size_t i = 0; i < d->n_writers; i++)
		vss_writer_metadata_clear(&d->writers[i]);
	free(d->writers);
	for (size_t i = 0; i < d->n_components; i++)
		component_clear(&d->components[i]);
	free(d->components);
	*d = (Bcd){ 0 };
}

BcdComponent *bcd_find_component(const Bcd *d, const vss_id *class_id, vss_component_type type,
                                 const char *logical_path_or_null, const char *name)
{
	for (size_t i = 0; i < d->n_components; i++) {
		BcdComponent *c = &d->components[i];

		if (vss_id_equal(&c->writer_class_id, class_id) && c->type == type && streq(c->name, name) &&
		    streq(c->logical_path ?: "", logical_path_or_null ?: ""))
			return c;
	}
	return NULL;
}

/* --- Formatting ----------------------------------------------------------- */

typedef struct Out {
	bool failed;    /* out of memory, or a value the parser would refuse */
} Out;

static json_object *put(Out *o, json_object *parent, const char *key, json_object *v)
{
	if (!v || json_object_object_add(parent, key, v) < 0) {
		json_object_put(v);
		o->failed = true;
		return NULL;
	}
	return v;
}

static void append(Out *o, json_object *array, json_object *v)
{
	if (!v || json_object_array_add(array, v) < 0) {
		json_object_put(v);
		o->failed = true;
	}
}

static json_object *str_or_null(Out *o, const char *s)
{
	if (!s)
		return json_object_new_null();
	if (strlen(s) > BCD_MAX_STRING || !utf8_is_valid(s)) {
		o->failed = true;
		return NULL;
	}
	return json_object_new_string(s);
}

/* json_object_new_null() is NULL itself: an explicit null is a key added
 * with NULL. */
static void put_str(Out *o, json_object *parent, const char *key, const char *s)
{
	json_object *v = str_or_null(o, s);

	if (s && !v) {
		o->failed = true;
		return;
	}
	if (json_object_object_add(parent, key, v) < 0) {
		json_object_put(v);
		o->failed = true;
	}
}

static void put_id(Out *o, json_object *parent, const char *key, const vss_id *id)
{
	char buf[VSS_ID_STRING_MAX];

	put_str(o, parent, key, vss_id_format(id, buf));
}

static void put_name(Out *o, json_object *parent, const char *key, const char *name)
{
	if (!name) {
		o->failed = true;
		return;
	}
	put_str(o, parent, key, name);
}

static json_object *format_files(Out *o, const vss_wm_file *f, size_t n)
{
	json_object *a = json_object_new_array();

	if (!a || n > BCD_MAX_FILES) {
		o->failed = true;
		return a;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *x = json_object_new_object();

		if (!x) {
			o->failed = true;
			break;
		}
		put_name(o, x, "kind", NAME_OF(file_kinds, f[i].kind));
		put_str(o, x, "path", f[i].path);
		put_str(o, x, "filespec", f[i].filespec);
		put(o, x, "recursive", json_object_new_boolean(f[i].recursive));
		append(o, a, x);
	}
	return a;
}

static json_object *format_writer(Out *o, const vss_writer_metadata *md)
{
	json_object *w = json_object_new_object(), *comps;

	if (!w) {
		o->failed = true;
		return NULL;
	}
	put_id(o, w, "instance_id", &md->instance_id);
	put_id(o, w, "class_id", &md->class_id);
	put_str(o, w, "name", md->name);
	put_str(o, w, "instance_name", md->instance_name);
	put_name(o, w, "usage", NAME_OF(usages, md->usage));
	put_name(o, w, "source", NAME_OF(sources, md->source));
	put_name(o, w, "level", NAME_OF(levels, md->level));
	comps = put(o, w, "components", json_object_new_array());
	if (md->n_components > BCD_MAX_WRITER_COMPONENTS)
		o->failed = true;
	for (size_t i = 0; comps && i < md->n_components; i++) {
		const vss_wm_component *c = &md->components[i];
		json_object *x = json_object_new_object();

		if (!x) {
			o->failed = true;
			break;
		}
		put_name(o, x, "type", NAME_OF(component_types, c->type));
		put_str(o, x, "logical_path", c->logical_path);
		put_str(o, x, "name", c->name);
		put_str(o, x, "caption", c->caption);
		put(o, x, "selectable", json_object_new_boolean(c->selectable));
		put(o, x, "files", format_files(o, c->files, c->n_files));
		append(o, comps, x);
	}
	put(o, w, "excluded", format_files(o, md->excluded, md->n_excluded));
	return w;
}

static json_object *format_component(Out *o, const BcdComponent *c)
{
	json_object *x = json_object_new_object(), *targets;

	if (!x) {
		o->failed = true;
		return NULL;
	}
	put_id(o, x, "writer_class_id", &c->writer_class_id);
	put_id(o, x, "writer_instance_id", &c->writer_instance_id);
	put_name(o, x, "type", NAME_OF(component_types, c->type));
	put_str(o, x, "logical_path", c->logical_path);
	put_str(o, x, "name", c->name);
	if (c->backup_succeeded < 0)
		(void)json_object_object_add(x, "backup_succeeded", NULL);
	else
		put(o, x, "backup_succeeded", json_object_new_boolean(c->backup_succeeded));
	put_str(o, x, "backup_options", c->backup_options);
	put(o, x, "selected_for_restore", json_object_new_boolean(c->selected_for_restore));
	put_str(o, x, "restore_options", c->restore_options);
	targets = put(o, x, "new_targets", json_object_new_array());
	if (c->n_new_targets > BCD_MAX_TARGETS)
		o->failed = true;
	for (size_t i = 0; targets && i < c->n_new_targets; i++) {
		const BcdTarget *t = &c->new_targets[i];
		json_object *y = json_object_new_object();

		if (!y) {
			o->failed = true;
			break;
		}
		put_str(o, y, "path", t->path);
		put_str(o, y, "filespec", t->filespec);
		put(o, y, "recursive", json_object_new_boolean(t->recursive));
		put_str(o, y, "alternate_path", t->alternate_path);
		append(o, targets, y);
	}
	return x;
}

static int cmp_writers(const void *a, const void *b)
{
	const vss_writer_metadata *x = *(const vss_writer_metadata *const *)a, *y = *(const vss_writer_metadata *const *)b;
	int r = strcmp(x->name ?: "", y->name ?: "");

	if (r == 0)
		r = memcmp(x->class_id.bytes, y->class_id.bytes, sizeof(x->class_id.bytes));
	if (r == 0)
		r = memcmp(x->instance_id.bytes, y->instance_id.bytes, sizeof(x->instance_id.bytes));
	return r;
}

static int cmp_snapshots(const void *a, const void *b)
{
	const BcdSnapshot *x = *(const BcdSnapshot *const *)a, *y = *(const BcdSnapshot *const *)b;

	return strcmp(x->volume ?: "", y->volume ?: "");
}

int bcd_format(const Bcd *d, char **ret)
{
	_cleanup_free_ const vss_writer_metadata **writers = NULL;
	_cleanup_free_ const BcdSnapshot **snaps = NULL;
	json_object *root, *backup, *set, *a;
	Out o = { 0 };
	const char *text;
	char *copy = NULL;

	if (d->n_writers > BCD_MAX_WRITERS || d->n_components > BCD_MAX_COMPONENTS ||
	    d->n_snapshots > BCD_MAX_SNAPSHOTS)
		return -EINVAL;
	writers = calloc(d->n_writers ?: 1, sizeof(*writers));
	snaps = calloc(d->n_snapshots ?: 1, sizeof(*snaps));
	root = json_object_new_object();
	if (!writers || !snaps || !root) {
		json_object_put(root);
		return -ENOMEM;
	}
	for (size_t i = 0; i < d->n_writers; i++)
		writers[i] = &d->writers[i];
	qsort(writers, d->n_writers, sizeof(*writers), cmp_writers);
	for (size_t i = 0; i < d->n_snapshots; i++)
		snaps[i] = &d->snapshots[i];
	qsort(snaps, d->n_snapshots, sizeof(*snaps), cmp_snapshots);

	put_str(&o, root, "format", BCD_FORMAT);
	put(&o, root, "version", json_object_new_int(BCD_VERSION));
	backup = put(&o, root, "backup", json_object_new_object());
	if (backup) {
		put_str(&o, backup, "state", d->state);
		put_name(&o, backup, "type", NAME_OF(backup_types, d->backup_type));
		put(&o, backup, "select_components", json_object_new_boolean(d->select_components));
		put(&o, backup, "bootable_system_state", json_object_new_boolean(d->bootable_system_state));
		put(&o, backup, "partial_file_support", json_object_new_boolean(d->partial_file_support));
		put(&o, backup, "context", json_object_new_int(d->context));
	}
	set = put(&o, root, "snapshot_set", json_object_new_object());
	if (set) {
		put_id(&o, set, "id", &d->set_id);
		a = put(&o, set, "snapshots", json_object_new_array());
		for (size_t i = 0; a && i < d->n_snapshots; i++) {
			json_object *x = json_object_new_object();

			if (!x) {
				o.failed = true;
				break;
			}
			put_id(&o, x, "id", &snaps[i]->snapshot_id);
			put_str(&o, x, "volume", snaps[i]->volume);
			put_id(&o, x, "provider_id", &snaps[i]->provider_id);
			put_str(&o, x, "device_object", snaps[i]->device_object);
			put(&o, x, "creation_timestamp", json_object_new_int64(snaps[i]->creation_timestamp));
			append(&o, a, x);
		}
	}
	a = put(&o, root, "writers", json_object_new_array());
	for (size_t i = 0; a && i < d->n_writers; i++)
		append(&o, a, format_writer(&o, writers[i]));
	a = put(&o, root, "components", json_object_new_array());
	for (size_t i = 0; a && i < d->n_components; i++)
		append(&o, a, format_component(&o, &d->components[i]));

	if (!o.failed) {
		text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
								    JSON_C_TO_STRING_NOSLASHESCAPE);
		copy = text ? strdup(text) : NULL;
	}
	json_object_put(root);
	if (o.failed)
		return -EINVAL;
	if (!copy)
		return -ENOMEM;
	*ret = copy;
	return 0;
}

/* --- Parsing -------------------------------------------------------------- */

typedef struct In {
	char *error;
	size_t error_size;
	bool oom;
} In;

static int refuse(In *in, const char *where, const char *fmt, ...) _printf_(3, 4);
static int refuse(In *in, const char *where, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(in->error, in->error_size, "%s: %s", where, what);
	return -EINVAL;
}

/* The name of a field, for messages; cut short if it must be. */
static void name_field(char *buf, size_t size, const char *fmt, ...) _printf_(3, 4);
static void name_field(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

/* Whether obj has exactly the keys of the NULL-terminated list; the first
 * one it lacks or should not have is named. */
static int check_keys(In *in, json_object *obj, const char *where, const char *const *keys)
{
	char f[512];

	if (!json_object_is_type(obj, json_type_object))
		return refuse(in, where, "not an object");
	json_object_object_foreach(obj, key, val) {
		bool known = false;

		(void)val;
		for (size_t i = 0; keys[i]; i++)
			known = known || streq(key, keys[i]);
		if (!known) {
			name_field(f, sizeof(f), "%s.%.64s", where, key);
			return refuse(in, f, "not a field of the document (format version %d)", BCD_VERSION);
		}
	}
	/* A key given twice counts once, with its last value, as json-c
	 * (and RFC 8259's most common reading) has it. */
	for (size_t i = 0; keys[i]; i++)
		if (!json_object_object_get_ex(obj, keys[i], NULL)) {
			name_field(f, sizeof(f), "%s.%s", where, keys[i]);
			return refuse(in, f, "missing");
		}
	return 0;
}

static json_object *field(json_object *obj, const char *key)
{
	json_object *v = NULL;

	(void)json_object_object_get_ex(obj, key, &v);
	return v;
}

static void at(char *buf, size_t size, const char *where, const char *key)
{
	name_field(buf, size, "%s.%s", where, key);
}

static int get_string(In *in, json_object *obj, const char *where, const char *key, bool nullable, char **ret)
{
	json_object *v = field(obj, key);
	char w[512];
	const char *s;
	int len;

	*ret = NULL;
	at(w, sizeof(w), where, key);
	if (!v) {
		if (!nullable)
			return refuse(in, w, "null, where a string is needed");
		*ret = NULL;
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return refuse(in, w, "not a string");
	s = json_object_get_string(v);
	len = json_object_get_string_len(v);
	if (len > (int)BCD_MAX_STRING)
		return refuse(in, w, "longer than %u bytes", BCD_MAX_STRING);
	if ((size_t)len != strlen(s))
		return refuse(in, w, "holds a NUL character");
	if (!utf8_is_valid(s))
		return refuse(in, w, "not valid UTF-8");
	if (!nullable && len == 0)
		return refuse(in, w, "empty");
	*ret = strdup(s);
	if (!*ret) {
		in->oom = true;
		return -ENOMEM;
	}
	return 0;
}

static int get_bool(In *in, json_object *obj, const char *where, const char *key, bool *ret)
{
	json_object *v = field(obj, key);
	char w[512];

	at(w, sizeof(w), where, key);
	if (!json_object_is_type(v, json_type_boolean))
		return refuse(in, w, "not true or false");
	*ret = json_object_get_boolean(v);
	return 0;
}

static int get_int(In *in, json_object *obj, const char *where, const char *key, int64_t min, int64_t max,
                   int64_t *ret)
{
	json_object *v = field(obj, key);
	char w[512];
	int64_t i;

	*ret = 0;
	at(w, sizeof(w), where, key);
	if (!json_object_is_type(v, json_type_int))
		return refuse(in, w, "not an integer");
	errno = 0;
	i = json_object_get_int64(v);
	/* json-c clamps what does not fit in 64 bits (and says so in errno). */
	if (errno != 0 || i < min || i > max)
		return refuse(in, w, "out of range (%lld to %lld)", (long long)min, (long long)max);
	*ret = i;
	return 0;
}

static int get_id(In *in, json_object *obj, const char *where, const char *key, vss_id *ret)
{
	_cleanup_free_ char *s = NULL;
	char w[512];
	int r;

	r = get_string(in, obj, where, key, false, &s);
	if (r < 0)
		return r;
	if (!s) /* not nullable: a string on success */
		return -EINVAL;
	at(w, sizeof(w), where, key);
	if (VSS_FAILED(vss_id_parse(s, ret)))
		return refuse(in, w, "not an id");
	return 0;
}

static int get_enum(In *in, json_object *obj, const char *where, const char *key, const char *const *table,
                    size_t n, int *ret)
{
	_cleanup_free_ char *s = NULL;
	char w[512];
	int r;

	r = get_string(in, obj, where, key, false, &s);
	if (r < 0)
		return r;
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (table[i] && streq(table[i], s)) {
			*ret = (int)i;
			return 0;
		}
	at(w, sizeof(w), where, key);
	return refuse(in, w, "\"%.64s\" is not one of its values", s);
}

#define GET_ENUM(in, obj, where, key, table, ret)                                          \
	({                                                                                 \
		int _v = 0, _r = get_enum(in, obj, where, key, table, ELEMENTSOF(table), &_v); \
		if (_r >= 0)                                                               \
			*(ret) = _v;                                                       \
		_r;                                                                        \
	})

/* The array at obj.key, of at most max elements; its length in *ret_n. */
static int get_array(In *in, json_object *obj, const char *where, const char *key, size_t max, json_object **ret,
                     size_t *ret_n)
{
	json_object *v = field(obj, key);
	char w[512];
	size_t n;

	*ret = NULL;
	*ret_n = 0;
	at(w, sizeof(w), where, key);
	if (!json_object_is_type(v, json_type_array))
		return refuse(in, w, "not an array");
	n = json_object_array_length(v);
	if (n > max)
		return refuse(in, w, "more than %zu entries", max);
	*ret = v;
	*ret_n = n;
	return 0;
}

static void *alloc_array(In *in, size_t n, size_t size)
{
	void *p = calloc(n ?: 1, size);

	if (!p)
		in->oom = true;
	return p;
}

static int parse_files(In *in, json_object *obj, const char *where, const char *key, vss_wm_file **ret,
                       size_t *ret_n)
{
	static const char *const keys[] = { "kind", "path", "filespec", "recursive", NULL };
	json_object *a;
	size_t n;
	char w[512];
	int r;

	r = get_array(in, obj, where, key, BCD_MAX_FILES, &a, &n);
	if (r < 0)
		return r;
	*ret = alloc_array(in, n, sizeof(**ret));
	if (!*ret)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_object *x = json_object_array_get_idx(a, i);
		vss_wm_file *f = &(*ret)[i];

		name_field(w, sizeof(w), "%s.%s[%zu]", where, key, i);
		/* Counted as filled before it is, so that a failure frees it. */
		*ret_n = i + 1;
		r = check_keys(in, x, w, keys);
		if (r >= 0)
			r = GET_ENUM(in, x, w, "kind", file_kinds, &f->kind);
		if (r >= 0)
			r = get_string(in, x, w, "path", false, &f->path);
		if (r >= 0)
			r = get_string(in, x, w, "filespec", false, &f->filespec);
		if (r >= 0)
			r = get_bool(in, x, w, "recursive", &f->recursive);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_writer(In *in, json_object *x, const char *where, vss_writer_metadata *md)
{
	static const char *const keys[] = { "instance_id", "class_id", "name", "instance_name", "usage", "source",
					    "level", "components", "excluded", NULL };
	static const char *const ckeys[] = { "type", "logical_path", "name", "caption", "selectable", "files", NULL };
	json_object *a;
	size_t n;
	char w[512];
	int r;

	r = check_keys(in, x, where, keys);
	if (r >= 0)
		r = get_id(in, x, where, "instance_id", &md->instance_id);
	if (r >= 0)
		r = get_id(in, x, where, "class_id", &md->class_id);
	if (r >= 0)
		r = get_string(in, x, where, "name", false, &md->name);
	if (r >= 0)
		r = get_string(in, x, where, "instance_name", true, &md->instance_name);
	if (r >= 0)
		r = GET_ENUM(in, x, where, "usage", usages, &md->usage);
	if (r >= 0)
		r = GET_ENUM(in, x, where, "source", sources, &md->source);
	if (r >= 0)
		r = GET_ENUM(in, x, where, "level", levels, &md->level);
	if (r >= 0)
		r = get_array(in, x, where, "components", BCD_MAX_WRITER_COMPONENTS, &a, &n);
	if (r < 0)
		return r;
	md->components = alloc_array(in, n, sizeof(*md->components));
	if (!md->components)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_object *y = json_object_array_get_idx(a, i);
		vss_wm_component *c = &md->components[i];

		name_field(w, sizeof(w), "%s.components[%zu]", where, i);
		md->n_components = i + 1;
		r = check_keys(in, y, w, ckeys);
		if (r >= 0)
			r = GET_ENUM(in, y, w, "type", component_types, &c->type);
		if (r >= 0)
			r = get_string(in, y, w, "logical_path", true, &c->logical_path);
		if (r >= 0)
			r = get_string(in, y, w, "name", false, &c->name);
		if (r >= 0)
			r = get_string(in, y, w, "caption", true, &c->caption);
		if (r >= 0)
			r = get_bool(in, y, w, "selectable", &c->selectable);
		if (r >= 0)
			r = parse_files(in, y, w, "files", &c->files, &c->n_files);
		if (r < 0)
			return r;
	}
	return parse_files(in, x, where, "excluded", &md->excluded, &md->n_excluded);
}

static bool writer_has(const Bcd *d, const BcdComponent *c)
{
	for (size_t i = 0; i < d->n_writers; i++) {
		const vss_writer_metadata *md = &d->writers[i];

		if (!vss_id_equal(&md->class_id, &c->writer_class_id) ||
		    !vss_id_equal(&md->instance_id, &c->writer_instance_id))
			continue;
		for (size_t k = 0; k < md->n_components; k++)
			if (md->components[k].type == c->type && streq(md->components[k].name, c->name) &&
			    streq(md->components[k].logical_path ?: "", c->logical_path ?: ""))
				return true;
	}
	return false;
}

static int parse_component(In *in, json_object *x, const char *where, const Bcd *d, BcdComponent *c)
{
	static const char *const keys[] = { "writer_class_id", "writer_instance_id", "type", "logical_path", "name",
					    "backup_succeeded", "backup_options", "selected_for_restore",
					    "restore_options", "new_targets", NULL };
	static const char *const tkeys[] = { "path", "filespec", "recursive", "alternate_path", NULL };
	json_object *a, *v;
	size_t n;
	char w[512];
	int r;

	r = check_keys(in, x, where, keys);
	if (r >= 0)
		r = get_id(in, x, where, "writer_class_id", &c->writer_class_id);
	if (r >= 0)
		r = get_id(in, x, where, "writer_instance_id", &c->writer_instance_id);
	if (r >= 0)
		r = GET_ENUM(in, x, where, "type", component_types, &c->type);
	if (r >= 0)
		r = get_string(in, x, where, "logical_path", true, &c->logical_path);
	if (r >= 0)
		r = get_string(in, x, where, "name", false, &c->name);
	if (r < 0)
		return r;
	v = field(x, "backup_succeeded");
	if (!v)
		c->backup_succeeded = -1;
	else if (json_object_is_type(v, json_type_boolean))
		c->backup_succeeded = json_object_get_boolean(v);
	else {
		at(w, sizeof(w), where, "backup_succeeded");
		return refuse(in, w, "not true, false or null");
	}
	r = get_string(in, x, where, "backup_options", true, &c->backup_options);
	if (r >= 0)
		r = get_bool(in, x, where, "selected_for_restore", &c->selected_for_restore);
	if (r >= 0)
		r = get_string(in, x, where, "restore_options", true, &c->restore_options);
	if (r >= 0)
		r = get_array(in, x, where, "new_targets", BCD_MAX_TARGETS, &a, &n);
	if (r < 0)
		return r;
	if (!writer_has(d, c))
		return refuse(in, where, "names a component that no writer of the document has");
	c->new_targets = alloc_array(in, n, sizeof(*c->new_targets));
	if (!c->new_targets)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_object *y = json_object_array_get_idx(a, i);
		BcdTarget *t = &c->new_targets[i];

		name_field(w, sizeof(w), "%s.new_targets[%zu]", where, i);
		c->n_new_targets = i + 1;
		r = check_keys(in, y, w, tkeys);
		if (r >= 0)
			r = get_string(in, y, w, "path", false, &t->path);
		if (r >= 0)
			r = get_string(in, y, w, "filespec", false, &t->filespec);
		if (r >= 0)
			r = get_bool(in, y, w, "recursive", &t->recursive);
		if (r >= 0)
			r = get_string(in, y, w, "alternate_path", false, &t->alternate_path);
		if (r < 0)
			return r;
		if (t->alternate_path[0] != '/' || t->path[0] != '/')
			return refuse(in, w, "paths must be absolute");
	}
	return 0;
}

static int parse_root(In *in, json_object *root, Bcd *d)
{
	static const char *const keys[] = { "format", "version", "backup", "snapshot_set", "writers", "components",
					    NULL };
	static const char *const bkeys[] = { "state", "type", "select_components", "bootable_system_state",
					     "partial_file_support", "context", NULL };
	static const char *const skeys[] = { "id", "snapshots", NULL };
	static const char *const snkeys[] = { "id", "volume", "provider_id", "device_object", "creation_timestamp",
					      NULL };
	_cleanup_free_ char *format = NULL;
	json_object *backup, *set, *a;
	int64_t version, i64;
	size_t n;
	char w[512];
	int r;

	if (!json_object_is_type(root, json_type_object))
		return refuse(in, "the document", "not a JSON object");
	/* Format and version first: a newer document is named as such, not
	 * as a list of fields this version does not know. */
	if (!json_object_is_type(field(root, "format"), json_type_string) ||
	    !streq(json_object_get_string(field(root, "format")), BCD_FORMAT))
		return refuse(in, "format", "not \"" BCD_FORMAT "\": not a Backup Components Document of vss");
	if (!json_object_is_type(field(root, "version"), json_type_int) ||
	    json_object_get_int64(field(root, "version")) != BCD_VERSION)
		return refuse(in, "version", "not %d: a document of another version of the format", BCD_VERSION);
	r = check_keys(in, root, "the document", keys);
	if (r >= 0)
		r = get_string(in, root, "the document", "format", false, &format);
	if (r >= 0)
		r = get_int(in, root, "the document", "version", BCD_VERSION, BCD_VERSION, &version);
	if (r < 0)
		return r;

	backup = field(root, "backup");
	r = check_keys(in, backup, "backup", bkeys);
	if (r >= 0)
		r = get_string(in, backup, "backup", "state", false, &d->state);
	if (r >= 0)
		r = GET_ENUM(in, backup, "backup", "type", backup_types, &d->backup_type);
	if (r >= 0)
		r = get_bool(in, backup, "backup", "select_components", &d->select_components);
	if (r >= 0)
		r = get_bool(in, backup, "backup", "bootable_system_state", &d->bootable_system_state);
	if (r >= 0)
		r = get_bool(in, backup, "backup", "partial_file_support", &d->partial_file_support);
	if (r >= 0)
		r = get_int(in, backup, "backup", "context", INT32_MIN, INT32_MAX, &i64);
	if (r < 0)
		return r;
	d->context = (int32_t)i64;

	set = field(root, "snapshot_set");
	r = check_keys(in, set, "snapshot_set", skeys);
	if (r >= 0)
		r = get_id(in, set, "snapshot_set", "id", &d->set_id);
	if (r >= 0)
		r = get_array(in, set, "snapshot_set", "snapshots", BCD_MAX_SNAPSHOTS, &a, &n);
	if (r < 0)
		return r;
	d->snapshots = alloc_array(in, n, sizeof(*d->snapshots));
	if (!d->snapshots)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_object *x = json_object_array_get_idx(a, i);
		BcdSnapshot *s = &d->snapshots[i];

		name_field(w, sizeof(w), "snapshot_set.snapshots[%zu]", i);
		d->n_snapshots = i + 1;
		r = check_keys(in, x, w, snkeys);
		if (r >= 0)
			r = get_id(in, x, w, "id", &s->snapshot_id);
		if (r >= 0)
			r = get_string(in, x, w, "volume", false, &s->volume);
		if (r >= 0)
			r = get_id(in, x, w, "provider_id", &s->provider_id);
		if (r >= 0)
			r = get_string(in, x, w, "device_object", true, &s->device_object);
		if (r >= 0)
			r = get_int(in, x, w, "creation_timestamp", 0, INT64_MAX, &s->creation_timestamp);
		if (r < 0)
			return r;
		if (s->volume[0] != '/')
			return refuse(in, w, "volume is not an absolute path");
	}

	r = get_array(in, root, "the document", "writers", BCD_MAX_WRITERS, &a, &n);
	if (r < 0)
		return r;
	d->writers = alloc_array(in, n, sizeof(*d->writers));
	if (!d->writers)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		name_field(w, sizeof(w), "writers[%zu]", i);
		d->n_writers = i + 1;
		r = parse_writer(in, json_object_array_get_idx(a, i), w, &d->writers[i]);
		if (r < 0)
			return r;
	}

	r = get_array(in, root, "the document", "components", BCD_MAX_COMPONENTS, &a, &n);
	if (r < 0)
		return r;
	d->components = alloc_array(in, n, sizeof(*d->components));
	if (!d->components)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		name_field(w, sizeof(w), "components[%zu]", i);
		d->n_components = i + 1;
		r = parse_component(in, json_object_array_get_idx(a, i), w, d, &d->components[i]);
		if (r < 0)
			return r;
		for (size_t k = 0; k < i; k++)
			if (vss_id_equal(&d->components[k].writer_instance_id, &d->components[i].writer_instance_id) &&
			    d->components[k].type == d->components[i].type &&
			    streq(d->components[k].name ?: "", d->components[i].name ?: "") &&
			    streq(d->components[k].logical_path ?: "", d->components[i].logical_path ?: ""))
				return refuse(in, w, "the same component as components[%zu]", k);
	}
	return 0;
}

int bcd_parse(const char *text, size_t size, Bcd *ret, char *error, size_t error_size)
{
	In in = { .error = error, .error_size = error_size };
	struct json_tokener *tok;
	json_object *root;
	enum json_tokener_error jerr;
	size_t used;
	int r;

	*ret = (Bcd){ 0 };
	if (error_size > 0)
		error[0] = '\0';
	if (size > BCD_MAX_SIZE)
		return refuse(&in, "the document", "larger than %u bytes", BCD_MAX_SIZE);
	if (memchr(text, '\0', size))
		return refuse(&in, "the document", "holds a NUL byte");
	tok = json_tokener_new_ex(BCD_MAX_DEPTH);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, text, (int)size);
	jerr = json_tokener_get_error(tok);
	used = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!root || jerr != json_tokener_success) {
		json_object_put(root);
		if (jerr == json_tokener_continue)
			return refuse(&in, "the document", "ends in the middle (truncated?)");
		if (jerr == json_tokener_error_depth)
			return refuse(&in, "the document", "nested deeper than %d levels", BCD_MAX_DEPTH);
		return refuse(&in, "the document", "not JSON: %s at byte %zu", json_tokener_error_desc(jerr), used);
	}
	/* Whitespace may follow the value; nothing else. */
	for (size_t i = used; i < size; i++)
		if (!strchr(" \t\r\n", text[i])) {
			json_object_put(root);
			return refuse(&in, "the document", "more follows the JSON value, at byte %zu", i);
		}
	r = parse_root(&in, root, ret);
	json_object_put(root);
	if (r < 0) {
		bcd_clear(ret);
		if (in.oom)
			return -ENOMEM;
	}
	return r < 0 ? -EINVAL : 0;
}
