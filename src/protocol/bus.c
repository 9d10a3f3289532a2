/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/hresult-table.h"
#include "basic/props.h"
#include "basic/util.h"
#include "protocol/bus.h"

int bus_error_set_hrv(sd_bus_error *e, vss_hr hr, const char *fmt, va_list ap)
{
	char name[128], msg[1024];

	snprintf(name, sizeof(name), VSS_BUS_ERROR_PREFIX "%s", vss_hr_name(hr));
	if (fmt)
		vsnprintf(msg, sizeof(msg), fmt, ap);
	else
		snprintf(msg, sizeof(msg), "%s", vss_hr_message(hr));
	/* A message cut inside a character, or quoting a file name that is
	 * not UTF-8, could not be sent: the caller would get no answer. */
	utf8_make_valid(msg);
	sd_bus_error_set(e, name, msg);
	/* sd-bus only needs a negative value; the name carries the result. */
	return -EIO;
}

/* In parentheses: the name is also a macro (bus.h). */
int (bus_error_set_hr)(sd_bus_error *e, vss_hr hr, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = bus_error_set_hrv(e, hr, fmt, ap);
	va_end(ap);
	return r;
}

vss_hr bus_error_to_hr(const sd_bus_error *e)
{
	const struct vss_hr_entry *entry;

	if (!e || !e->name)
		return VSS_E_UNEXPECTED;
	if (strncmp(e->name, VSS_BUS_ERROR_PREFIX, strlen(VSS_BUS_ERROR_PREFIX)) == 0) {
		entry = vss_hr_lookup_name(e->name + strlen(VSS_BUS_ERROR_PREFIX));
		if (entry)
			return entry->hr;
	}
	if (sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED))
		return E_ACCESSDENIED;
	if (sd_bus_error_has_name(e, SD_BUS_ERROR_NO_MEMORY))
		return E_OUTOFMEMORY;
	if (sd_bus_error_has_name(e, SD_BUS_ERROR_INVALID_ARGS))
		return E_INVALIDARG;
	return VSS_E_UNEXPECTED;
}

int bus_append_id(sd_bus_message *m, const vss_id *id)
{
	char buf[VSS_ID_STRING_MAX];

	return sd_bus_message_append(m, "s", vss_id_format(id, buf));
}

static int append_str(sd_bus_message *m, const char *key, const char *value)
{
	if (!value)
		return 0;
	return sd_bus_message_append(m, "{sv}", key, "s", value);
}

static int append_id(sd_bus_message *m, const char *key, const vss_id *id)
{
	char buf[VSS_ID_STRING_MAX];

	return sd_bus_message_append(m, "{sv}", key, "s", vss_id_format(id, buf));
}

#define TRY(x)                  \
	do {                    \
		int _r = (x);   \
		if (_r < 0)     \
			return _r; \
	} while (0)

int bus_append_snapshot_prop(sd_bus_message *m, const vss_snapshot_prop *p)
{
	TRY(sd_bus_message_open_container(m, 'a', "{sv}"));
	TRY(append_id(m, "Id", &p->snapshot_id));
	TRY(append_id(m, "SetId", &p->snapshot_set_id));
	TRY(sd_bus_message_append(m, "{sv}", "SnapshotsCount", "i", p->snapshots_count));
	TRY(append_str(m, "DeviceObject", p->snapshot_device_object));
	TRY(append_str(m, "OriginalVolume", p->original_volume_name));
	TRY(append_str(m, "OriginatingMachine", p->originating_machine));
	TRY(append_str(m, "ServiceMachine", p->service_machine));
	TRY(append_str(m, "ExposedName", p->exposed_name));
	TRY(append_str(m, "ExposedPath", p->exposed_path));
	TRY(append_id(m, "ProviderId", &p->provider_id));
	TRY(sd_bus_message_append(m, "{sv}", "Attributes", "i", p->snapshot_attributes));
	TRY(sd_bus_message_append(m, "{sv}", "CreationTimestamp", "x", p->creation_timestamp));
	TRY(sd_bus_message_append(m, "{sv}", "Status", "i", (int32_t)p->status));
	TRY(sd_bus_message_append(m, "{sv}", "HoldWindowUSec", "t", p->hold_window_us));
	TRY(append_str(m, "Consistency", p->consistency));
	return sd_bus_message_close_container(m);
}

/* Read a{sv}, calling @fn for each key with the message positioned inside the
 * variant. Keys a reader does not know are skipped, so either end may add
 * properties without breaking the other. */
static int read_dict(sd_bus_message *m, int (*fn)(sd_bus_message *m, const char *key, void *userdata),
                     void *userdata)
{
	int r;

	TRY(sd_bus_message_enter_container(m, 'a', "{sv}"));
	while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *key, *contents;
		char type;

		TRY(sd_bus_message_read(m, "s", &key));
		TRY(sd_bus_message_peek_type(m, &type, &contents));
		TRY(sd_bus_message_enter_container(m, 'v', contents));
		r = fn(m, key, userdata);
		if (r < 0)
			return r;
		if (r == 0)
			TRY(sd_bus_message_skip(m, contents));
		TRY(sd_bus_message_exit_container(m));
		TRY(sd_bus_message_exit_container(m));
	}
	if (r < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

static int read_str(sd_bus_message *m, char **ret)
{
	const char *s;

	TRY(sd_bus_message_read(m, "s", &s));
	free(*ret);
	*ret = strdup(s);
	return *ret ? 1 : -ENOMEM;
}

static int read_id(sd_bus_message *m, vss_id *ret)
{
	const char *s;

	TRY(sd_bus_message_read(m, "s", &s));
	return VSS_SUCCEEDED(vss_id_parse(s, ret)) ? 1 : -EBADMSG;
}

static int snapshot_field(sd_bus_message *m, const char *key, void *userdata)
{
	vss_snapshot_prop *p = userdata;
	int32_t i;
	int r;

	if (streq(key, "Id"))
		return read_id(m, &p->snapshot_id);
	if (streq(key, "SetId"))
		return read_id(m, &p->snapshot_set_id);
	if (streq(key, "SnapshotsCount"))
		return sd_bus_message_read(m, "i", &p->snapshots_count) < 0 ? -EBADMSG : 1;
	if (streq(key, "DeviceObject"))
		return read_str(m, &p->snapshot_device_object);
	if (streq(key, "OriginalVolume"))
		return read_str(m, &p->original_volume_name);
	if (streq(key, "OriginatingMachine"))
		return read_str(m, &p->originating_machine);
	if (streq(key, "ServiceMachine"))
		return read_str(m, &p->service_machine);
	if (streq(key, "ExposedName"))
		return read_str(m, &p->exposed_name);
	if (streq(key, "ExposedPath"))
		return read_str(m, &p->exposed_path);
	if (streq(key, "ProviderId"))
		return read_id(m, &p->provider_id);
	if (streq(key, "Attributes"))
		return sd_bus_message_read(m, "i", &p->snapshot_attributes) < 0 ? -EBADMSG : 1;
	if (streq(key, "CreationTimestamp"))
		return sd_bus_message_read(m, "x", &p->creation_timestamp) < 0 ? -EBADMSG : 1;
	if (streq(key, "Status")) {
		r = sd_bus_message_read(m, "i", &i);
		if (r < 0)
			return r;
		p->status = (vss_snapshot_state)i;
		return 1;
	}
	if (streq(key, "HoldWindowUSec"))
		return sd_bus_message_read(m, "t", &p->hold_window_us) < 0 ? -EBADMSG : 1;
	if (streq(key, "Consistency"))
		return read_str(m, &p->consistency);
	return 0;
}

int bus_read_snapshot_prop(sd_bus_message *m, vss_snapshot_prop *ret)
{
	vss_snapshot_prop p = { 0 };
	int r;

	r = read_dict(m, snapshot_field, &p);
	if (r < 0) {
		vss_free_snapshot_properties(&p);
		return r;
	}
	*ret = p;
	return 0;
}

int bus_append_provider_prop(sd_bus_message *m, const vss_provider_prop *p)
{
	TRY(sd_bus_message_open_container(m, 'a', "{sv}"));
	TRY(append_id(m, "Id", &p->provider_id));
	TRY(append_str(m, "Name", p->provider_name));
	TRY(sd_bus_message_append(m, "{sv}", "Type", "i", (int32_t)p->provider_type));
	TRY(append_str(m, "Version", p->provider_version));
	TRY(append_id(m, "VersionId", &p->provider_version_id));
	TRY(append_id(m, "ClassId", &p->class_id));
	return sd_bus_message_close_container(m);
}

/* The strings of a page, in their column order; a row's presence byte has
 * bit i set when string i is not NULL ("" on the wire either way). */
#define PAGE_STRINGS BUS_SNAPSHOT_PAGE_STRINGS

static char **page_string(vss_snapshot_prop *p, unsigned i)
{
	char **const fields[PAGE_STRINGS] = {
		&p->snapshot_device_object, &p->original_volume_name, &p->originating_machine,
		&p->service_machine,        &p->exposed_name,         &p->exposed_path,
		&p->consistency,
	};

	return fields[i];
}

static char *memdup(const void *p, size_t n)
{
	char *d = malloc(n);

	return d ? memcpy(d, p, n) : NULL;
}

static int column_put(BusSnapshotColumn *c, const void *p, size_t n)
{
	if (array_reserve(&c->data, &c->allocated, c->size + n, 1) < 0)
		return -ENOMEM;
	memcpy((uint8_t *)c->data + c->size, p, n);
	c->size += n;
	return 0;
}

int bus_snapshot_page_add(BusSnapshotPage *page, const vss_snapshot_prop *p)
{
	const int32_t ints[3] = { p->snapshots_count, p->snapshot_attributes, (int32_t)p->status };
	const vss_id *ids[3] = { &p->snapshot_id, &p->snapshot_set_id, &p->provider_id };
	uint8_t present = 0;

	for (unsigned c = 0; c < 3; c++) {
		TRY(column_put(&page->ids[c], ids[c]->bytes, 16));
		TRY(column_put(&page->ints[c], &ints[c], sizeof(int32_t)));
	}
	TRY(column_put(&page->created, &p->creation_timestamp, sizeof(int64_t)));
	TRY(column_put(&page->hold, &p->hold_window_us, sizeof(uint64_t)));
	for (unsigned k = 0; k < PAGE_STRINGS; k++) {
		const char *v = *page_string((vss_snapshot_prop *)p, k);

		if (v)
			present |= 1u << k;
		TRY(column_put(&page->strings[k], v ?: "", v ? strlen(v) + 1 : 1));
	}
	TRY(column_put(&page->present, &present, 1));
	page->n++;
	return 0;
}

void bus_snapshot_page_clear(BusSnapshotPage *page)
{
	BusSnapshotColumn *all[] = {
		&page->ids[0], &page->ids[1], &page->ids[2], &page->ints[0], &page->ints[1], &page->ints[2],
		&page->created, &page->hold, &page->present,
	};

	for (size_t i = 0; i < ELEMENTSOF(all); i++)
		free(all[i]->data);
	for (unsigned k = 0; k < PAGE_STRINGS; k++)
		free(page->strings[k].data);
	*page = (BusSnapshotPage){ 0 };
}

/* sd_bus_message_append_array() refuses NULL even for no element. */
static int append_column(sd_bus_message *m, char type, const BusSnapshotColumn *c)
{
	return sd_bus_message_append_array(m, type, c->data ?: "", c->size);
}

int bus_append_snapshot_page(sd_bus_message *m, const char *next, const BusSnapshotPage *page)
{
	TRY(sd_bus_message_append_basic(m, 's', next));
	for (unsigned c = 0; c < 3; c++)
		TRY(append_column(m, 'y', &page->ids[c]));
	for (unsigned c = 0; c < 3; c++)
		TRY(append_column(m, 'i', &page->ints[c]));
	TRY(append_column(m, 'x', &page->created));
	TRY(append_column(m, 't', &page->hold));
	TRY(append_column(m, 'y', &page->present));
	for (unsigned k = 0; k < PAGE_STRINGS; k++)
		TRY(append_column(m, 'y', &page->strings[k]));
	return 0;
}

/* A fixed-size column of exactly n elements. */
static int read_column(sd_bus_message *m, char type, size_t element, size_t n, const void **ret)
{
	size_t size;

	TRY(sd_bus_message_read_array(m, type, ret, &size));
	return size == element * n ? 0 : -EBADMSG;
}

int bus_read_snapshot_page_next(sd_bus_message *m, const char **ret_next)
{
	return sd_bus_message_read_basic(m, 's', ret_next);
}

int bus_read_snapshot_page(sd_bus_message *m, vss_snapshot_prop **props, size_t *n, size_t *allocated, bool borrow)
{
	const uint8_t *ids, *set_ids, *provider_ids, *present;
	const int32_t *counts, *attributes, *status;
	const int64_t *created;
	const uint64_t *hold;
	size_t rows, first = *n;

	TRY(sd_bus_message_read_array(m, 'y', (const void **)&ids, &rows));
	if (rows % 16)
		return -EBADMSG;
	rows /= 16;
	TRY(read_column(m, 'y', 16, rows, (const void **)&set_ids));
	TRY(read_column(m, 'y', 16, rows, (const void **)&provider_ids));
	TRY(read_column(m, 'i', sizeof(int32_t), rows, (const void **)&counts));
	TRY(read_column(m, 'i', sizeof(int32_t), rows, (const void **)&attributes));
	TRY(read_column(m, 'i', sizeof(int32_t), rows, (const void **)&status));
	TRY(read_column(m, 'x', sizeof(int64_t), rows, (const void **)&created));
	TRY(read_column(m, 't', sizeof(uint64_t), rows, (const void **)&hold));
	TRY(read_column(m, 'y', 1, rows, (const void **)&present));
	if (array_reserve((void **)props, allocated, *n + rows, sizeof(**props)) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < rows; i++) {
		vss_snapshot_prop *p = &(*props)[first + i];

		*p = (vss_snapshot_prop){
			.snapshots_count = counts[i],
			.snapshot_attributes = attributes[i],
			.status = (vss_snapshot_state)status[i],
			.creation_timestamp = created[i],
			.hold_window_us = hold[i],
		};
		memcpy(p->snapshot_id.bytes, ids + 16 * i, 16);
		memcpy(p->snapshot_set_id.bytes, set_ids + 16 * i, 16);
		memcpy(p->provider_id.bytes, provider_ids + 16 * i, 16);
	}
	/* From here the rows are the caller's, to free on failure too. */
	*n = first + rows;
	for (unsigned k = 0; k < PAGE_STRINGS; k++) {
		const char *text, *end;
		size_t size;

		TRY(sd_bus_message_read_array(m, 'y', (const void **)&text, &size));
		end = text + size;
		for (size_t i = 0; i < rows; i++) {
			const char *nul = text < end ? memchr(text, 0, (size_t)(end - text)) : NULL;
			char **field = page_string(&(*props)[first + i], k);

			/* The column ended before the ids did. */
			if (!nul)
				return -EBADMSG;
			if (present[i] & (1u << k)) {
				*field = borrow ? (char *)text : memdup(text, (size_t)(nul - text) + 1);
				if (!*field)
					return -ENOMEM;
			}
			text = nul + 1;
		}
		/* A column longer than the ids. */
		if (text != end)
			return -EBADMSG;
	}
	return 0;
}

static int provider_field(sd_bus_message *m, const char *key, void *userdata)
{
	vss_provider_prop *p = userdata;
	int32_t i;
	int r;

	if (streq(key, "Id"))
		return read_id(m, &p->provider_id);
	if (streq(key, "Name"))
		return read_str(m, &p->provider_name);
	if (streq(key, "Type")) {
		r = sd_bus_message_read(m, "i", &i);
		if (r < 0)
			return r;
		p->provider_type = (vss_provider_type)i;
		return 1;
	}
	if (streq(key, "Version"))
		return read_str(m, &p->provider_version);
	if (streq(key, "VersionId"))
		return read_id(m, &p->provider_version_id);
	if (streq(key, "ClassId"))
		return read_id(m, &p->class_id);
	return 0;
}

int bus_read_provider_prop(sd_bus_message *m, vss_provider_prop *ret)
{
	vss_provider_prop p = { 0 };
	int r;

	r = read_dict(m, provider_field, &p);
	if (r < 0) {
		vss_free_provider_properties(&p);
		return r;
	}
	*ret = p;
	return 0;
}

static const char *const event_names[_EVENT_MAX] = {
	[EVENT_IDENTIFY] = "Identify",
	[EVENT_PREPARE_BACKUP] = "PrepareBackup",
	[EVENT_PREPARE_SNAPSHOT] = "PrepareSnapshot",
	[EVENT_FREEZE] = "Freeze",
	[EVENT_THAW] = "Thaw",
	[EVENT_POST_SNAPSHOT] = "PostSnapshot",
	[EVENT_ABORT] = "Abort",
	[EVENT_BACKUP_COMPLETE] = "BackupComplete",
	[EVENT_BACKUP_SHUTDOWN] = "BackupShutdown",
	[EVENT_PRE_RESTORE] = "PreRestore",
	[EVENT_POST_RESTORE] = "PostRestore",
};

const char *writer_event_to_string(WriterEvent e)
{
	return e < _EVENT_MAX ? event_names[e] : "?";
}

WriterEvent writer_event_from_string(const char *s)
{
	for (WriterEvent e = 0; e < _EVENT_MAX; e++)
		if (streq(s, event_names[e]))
			return e;
	return _EVENT_MAX;
}

static int append_files(sd_bus_message *m, const vss_wm_file *f, size_t n)
{
	TRY(sd_bus_message_open_container(m, 'a', "(issb)"));
	for (size_t i = 0; i < n; i++)
		TRY(sd_bus_message_append(m, "(issb)", (int32_t)f[i].kind, f[i].path, f[i].filespec,
					  (int)f[i].recursive));
	return sd_bus_message_close_container(m);
}

int bus_append_components(sd_bus_message *m, const vss_writer_metadata *md)
{
	TRY(sd_bus_message_open_container(m, 'a', "(isssba(issb))"));
	for (size_t i = 0; i < md->n_components; i++) {
		const vss_wm_component *c = &md->components[i];

		TRY(sd_bus_message_open_container(m, 'r', "isssba(issb)"));
		TRY(sd_bus_message_append(m, "isssb", (int32_t)c->type, c->logical_path ?: "", c->name,
					  c->caption ?: "", (int)c->selectable));
		TRY(append_files(m, c->files, c->n_files));
		TRY(sd_bus_message_close_container(m));
	}
	TRY(sd_bus_message_close_container(m));
	return append_files(m, md->excluded, md->n_excluded);
}

static char *dup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

static int read_files(sd_bus_message *m, vss_wm_file **ret, size_t *ret_n)
{
	vss_wm_file *files = NULL;
	size_t n = 0;
	int r;

	TRY(sd_bus_message_enter_container(m, 'a', "(issb)"));
	for (;;) {
		const char *path, *spec;
		int32_t kind;
		int recursive;
		vss_wm_file *f;

		r = sd_bus_message_read(m, "(issb)", &kind, &path, &spec, &recursive);
		if (r <= 0)
			break;
		f = array_grow((void **)&files, &n, sizeof(*f));
		if (f)
			*f = (vss_wm_file){ .kind = (vss_file_kind)kind, .path = strdup(path), .filespec = strdup(spec),
					    .recursive = recursive };
		if (!f || !f->path || !f->filespec) {
			r = -ENOMEM;
			break;
		}
	}
	*ret = files;
	*ret_n = n;
	if (r < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

int bus_read_components(sd_bus_message *m, vss_writer_metadata *md)
{
	int r;

	TRY(sd_bus_message_enter_container(m, 'a', "(isssba(issb))"));
	while ((r = sd_bus_message_enter_container(m, 'r', "isssba(issb)")) > 0) {
		const char *logical, *name, *caption;
		int32_t type;
		int selectable;
		vss_wm_component *c;

		TRY(sd_bus_message_read(m, "isssb", &type, &logical, &name, &caption, &selectable));
		c = array_grow((void **)&md->components, &md->n_components, sizeof(*c));
		if (!c)
			return -ENOMEM;
		*c = (vss_wm_component){ .type = (vss_component_type)type, .logical_path = dup_or_null(logical),
					 .name = strdup(name), .caption = dup_or_null(caption),
					 .selectable = selectable };
		if (!c->name)
			return -ENOMEM;
		TRY(read_files(m, &c->files, &c->n_files));
		TRY(sd_bus_message_exit_container(m));
	}
	if (r < 0)
		return r;
	TRY(sd_bus_message_exit_container(m));
	return read_files(m, &md->excluded, &md->n_excluded);
}

int bus_append_writer_metadata(sd_bus_message *m, const vss_writer_metadata *md)
{
	char a[VSS_ID_STRING_MAX], b[VSS_ID_STRING_MAX];

	TRY(sd_bus_message_open_container(m, 'r', "ssssiii" WRITER_METADATA_COMPONENTS));
	TRY(sd_bus_message_append(m, "ssssiii", vss_id_format(&md->instance_id, a), vss_id_format(&md->class_id, b),
				  md->name, md->instance_name ?: "", (int32_t)md->usage, (int32_t)md->source,
				  (int32_t)md->level));
	TRY(bus_append_components(m, md));
	return sd_bus_message_close_container(m);
}

int bus_read_writer_metadata(sd_bus_message *m, vss_writer_metadata *ret)
{
	vss_writer_metadata md = { 0 };
	const char *instance, *class, *name, *instance_name;
	int32_t usage, source, level;
	int r;

	r = sd_bus_message_enter_container(m, 'r', "ssssiii" WRITER_METADATA_COMPONENTS);
	if (r <= 0)
		return r;
	r = sd_bus_message_read(m, "ssssiii", &instance, &class, &name, &instance_name, &usage, &source, &level);
	if (r >= 0 && (VSS_FAILED(vss_id_parse(instance, &md.instance_id)) || VSS_FAILED(vss_id_parse(class, &md.class_id))))
		r = -EBADMSG;
	if (r >= 0) {
		md.name = strdup(name);
		md.instance_name = dup_or_null(instance_name);
		md.usage = (vss_usage_type)usage;
		md.source = (vss_source_type)source;
		md.level = (vss_application_level)level;
		r = md.name ? bus_read_components(m, &md) : -ENOMEM;
	}
	if (r >= 0)
		r = sd_bus_message_exit_container(m);
	if (r < 0) {
		vss_writer_metadata_clear(&md);
		return r;
	}
	*ret = md;
	return 1;
}

int bus_append_writer_status(sd_bus_message *m, const vss_writer_status *s)
{
	char a[VSS_ID_STRING_MAX], b[VSS_ID_STRING_MAX];

	return sd_bus_message_append(m, "(sssiis)", vss_id_format(&s->instance_id, a), vss_id_format(&s->class_id, b),
				     s->name, (int32_t)s->state, s->failure, s->message ?: "");
}

int bus_read_writer_status(sd_bus_message *m, vss_writer_status *ret)
{
	const char *instance, *class, *name, *message;
	vss_writer_status s = { 0 };
	int32_t state, failure;
	int r;

	r = sd_bus_message_read(m, "(sssiis)", &instance, &class, &name, &state, &failure, &message);
	if (r <= 0)
		return r;
	if (VSS_FAILED(vss_id_parse(instance, &s.instance_id)) || VSS_FAILED(vss_id_parse(class, &s.class_id)))
		return -EBADMSG;
	s.name = strdup(name);
	s.message = dup_or_null(message);
	s.state = (vss_writer_state)state;
	s.failure = failure;
	if (!s.name) {
		vss_writer_status_clear(&s);
		return -ENOMEM;
	}
	*ret = s;
	return 1;
}
