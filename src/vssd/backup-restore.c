/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The Backup Components Document and the restore side of a backup object
 * (org.vss.BackupRestore1, docs/RESTORE.md): SaveAsXML composes the
 * document of what the object knows; InitializeForRestore takes one back,
 * the restore calls mark in it what is restored and where, and PreRestore
 * and PostRestore tell the writers of those components.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "basic/id.h"
#include "basic/log.h"
#include "vssd/manager.h"

int backup_parse_document(const char *text, Bcd *ret, sd_bus_error *error)
{
	char reason[512];
	vss_hr hr;
	int r;

	r = bcd_parse(text, strlen(text), ret, reason, sizeof(reason));
	if (r == -ENOMEM)
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	if (r < 0)
		return bus_error_set_hr(error, VSS_E_INVALID_XML_DOCUMENT, "the Backup Components Document is refused: %s",
					reason);
	/* The object takes the document's context: one a requestor could
	 * not set (VSS_CTX_ALL, a bit only vss sets) is not taken from a
	 * document either. */
	if (ret->context == VSS_CTX_ALL || !context_is_valid_for_requestor(ret->context, &hr)) {
		int32_t context = ret->context;

		bcd_clear(ret);
		return bus_error_set_hr(error, VSS_E_INVALID_XML_DOCUMENT,
					"the Backup Components Document is refused: backup.context: 0x%x is not a context "
					"a backup is made in", (unsigned)context);
	}
	return 0;
}

/* The document of a backup, borrowing the object's strings: only its
 * arrays are the caller's to free (compose_free()). */
static int compose(BackupObject *b, Bcd *d, CatalogSnapshot **ret_snaps, size_t *ret_n)
{
	CatalogSnapshot *snaps = NULL;
	size_t n = 0, k = 0;
	int r;

	*d = (Bcd){
		.state = (char *)backup_state_to_string(b->state),
		.backup_type = b->backup_type,
		.select_components = b->select_components,
		.bootable_system_state = b->bootable_system_state,
		.partial_file_support = b->partial_file_support,
		.context = b->context,
		.set_id = b->set_id,
	};
	r = catalog_list_snapshots(b->manager->catalog, &(CatalogFilter){ .set_id = &b->set_id }, &snaps, &n);
	if (r < 0)
		return r;
	d->snapshots = calloc(n ?: 1, sizeof(*d->snapshots));
	d->writers = calloc(b->n_participants ?: 1, sizeof(*d->writers));
	d->components = calloc(b->n_components ?: 1, sizeof(*d->components));
	if (!d->snapshots || !d->writers || !d->components) {
		catalog_snapshots_free(snaps, n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		d->snapshots[d->n_snapshots++] = (BcdSnapshot){
			.snapshot_id = snaps[i].prop.snapshot_id,
			.provider_id = snaps[i].prop.provider_id,
			.volume = snaps[i].prop.original_volume_name,
			.device_object = snaps[i].prop.snapshot_device_object,
			.creation_timestamp = snaps[i].prop.creation_timestamp,
		};
	for (size_t i = 0; i < b->n_participants; i++)
		if (b->participants[i].identified)
			d->writers[k++] = b->participants[i].md;
	d->n_writers = k;
	for (size_t i = 0; i < b->n_components; i++) {
		const Component *c = &b->components[i];

		d->components[d->n_components++] = (BcdComponent){
			.writer_class_id = c->class_id,
			.writer_instance_id = c->instance_id,
			.type = c->type,
			.logical_path = c->logical_path,
			.name = c->name,
			.backup_succeeded = c->succeeded,
		};
	}
	*ret_snaps = snaps;
	*ret_n = n;
	return 0;
}

static void compose_free(Bcd *d, CatalogSnapshot *snaps, size_t n)
{
	free(d->snapshots);
	free(d->writers);
	free(d->components);
	catalog_snapshots_free(snaps, n);
}

static int method_save_as_xml(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	_cleanup_free_ char *text = NULL;
	int r;

	r = backup_check(b, BC_SAVE_AS_XML, error);
	if (r < 0)
		return r;
	if (b->restore) {
		/* A restore saves the document it was given, with its choices;
		 * its state is the restore's. */
		_cleanup_free_ char *was = b->restore->state;

		b->restore->state = (char *)backup_state_to_string(b->state);
		r = bcd_format(b->restore, &text);
		b->restore->state = TAKE_PTR(was);
	} else {
		CatalogSnapshot *snaps = NULL;
		size_t n = 0;
		Bcd d;

		r = compose(b, &d, &snaps, &n);
		if (r >= 0)
			r = bcd_format(&d, &text);
		compose_free(&d, snaps, n);
	}
	if (r == -ENOMEM)
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	if (r == -EINVAL)
		return bus_error_set_hr(error, VSS_E_UNEXPECTED,
					"the backup does not fit a Backup Components Document (too many writers, "
					"components or files, or a string too long)");
	if (r < 0)
		return bus_error_set_hr(error, VSS_E_UNEXPECTED, "cannot read the catalog: %s", strerror(-r));
	return sd_bus_reply_method_return(msg, "s", text);
}

static int method_initialize_for_restore(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	_cleanup_free_ Bcd *doc = NULL;
	_cleanup_(strv_freep) char **volumes = NULL;
	const char *text;
	int r;

	r = sd_bus_message_read(msg, "s", &text);
	if (r < 0)
		return r;
	r = backup_check(b, BC_INITIALIZE_FOR_RESTORE, error);
	if (r < 0)
		return r;
	doc = calloc(1, sizeof(*doc));
	if (!doc)
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	r = backup_parse_document(text, doc, error);
	if (r < 0)
		return r;
	for (size_t i = 0; i < doc->n_snapshots; i++)
		if (strv_push_dup(&volumes, doc->snapshots[i].volume) < 0) {
			bcd_clear(doc);
			return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
		}
	/* Writers hear of the set the document describes. */
	b->context = doc->context;
	b->backup_type = doc->backup_type;
	b->set_id = doc->set_id;
	strv_free(b->set_volumes);
	b->set_volumes = TAKE_PTR(volumes);
	b->restore = TAKE_PTR(doc);
	backup_object_set_state(b, backup_state_next(b->state, BC_INITIALIZE_FOR_RESTORE));
	log_debug("%s: restore of set %s, %zu components", b->path, ID_TO_STRING(&b->restore->set_id),
		  b->restore->n_components);
	return sd_bus_reply_method_return(msg, "");
}

/* The document's component a restore call names (writer class id, type,
 * logical path, name). */
static int find_restore_component(BackupObject *b, sd_bus_message *msg, BcdComponent **ret, sd_bus_error *error)
{
	const char *class, *logical, *name;
	vss_id class_id;
	int32_t type;
	int r;

	r = sd_bus_message_read(msg, "siss", &class, &type, &logical, &name);
	if (r < 0)
		return r;
	r = backup_check(b, BC_SET_SELECTED_FOR_RESTORE, error);
	if (r < 0)
		return r;
	if (VSS_FAILED(vss_id_parse(class, &class_id)))
		return bus_error_set_hr(error, E_INVALIDARG, "\"%s\" is not a writer class id", class);
	*ret = bcd_find_component(b->restore, &class_id, (vss_component_type)type, logical, name);
	if (!*ret)
		return bus_error_set_hr(error, VSS_E_OBJECT_NOT_FOUND,
					"the document has no component %s%s%s of writer class %s", logical,
					logical[0] ? "\\" : "", name, class);
	return 0;
}

static int method_set_selected_for_restore(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BcdComponent *c;
	int selected, r;

	r = find_restore_component(userdata, msg, &c, error);
	if (r >= 0)
		r = sd_bus_message_read(msg, "b", &selected);
	if (r < 0)
		return r;
	c->selected_for_restore = selected;
	return sd_bus_reply_method_return(msg, "");
}

static int checked_string(const char *s, const char *what, bool absolute, char **ret, sd_bus_error *error)
{
	if (strlen(s) > BCD_MAX_STRING)
		return bus_error_set_hr(error, E_INVALIDARG, "%s is longer than %u bytes", what, BCD_MAX_STRING);
	if (absolute && s[0] != '/')
		return bus_error_set_hr(error, E_INVALIDARG, "%s \"%s\" is not an absolute path", what, s);
	*ret = strdup(s);
	if (!*ret)
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	return 0;
}

static int method_set_restore_options(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	const char *options;
	char *copy = NULL;
	BcdComponent *c;
	int r;

	r = find_restore_component(userdata, msg, &c, error);
	if (r >= 0)
		r = sd_bus_message_read(msg, "s", &options);
	if (r >= 0 && options[0])
		r = checked_string(options, "the restore options", false, &copy, error);
	if (r < 0)
		return r;
	free(c->restore_options);
	c->restore_options = copy;
	return sd_bus_reply_method_return(msg, "");
}

static int method_add_new_target(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	const char *path, *filespec, *alternate;
	BcdTarget t = { 0 }, *nt;
	BcdComponent *c;
	int recursive, r;

	r = find_restore_component(userdata, msg, &c, error);
	if (r >= 0)
		r = sd_bus_message_read(msg, "ssbs", &path, &filespec, &recursive, &alternate);
	if (r < 0)
		return r;
	if (c->n_new_targets >= BCD_MAX_TARGETS)
		return bus_error_set_hr(error, E_INVALIDARG, "a component has at most %u new targets", BCD_MAX_TARGETS);
	if (!filespec[0])
		return bus_error_set_hr(error, E_INVALIDARG, "a new target needs a filespec (\"*\" for all)");
	r = checked_string(path, "the path", true, &t.path, error);
	if (r >= 0)
		r = checked_string(filespec, "the filespec", false, &t.filespec, error);
	if (r >= 0)
		r = checked_string(alternate, "the alternate path", true, &t.alternate_path, error);
	if (r >= 0 && !(nt = array_grow((void **)&c->new_targets, &c->n_new_targets, sizeof(*nt))))
		r = bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	if (r < 0) {
		free(t.path);
		free(t.filespec);
		free(t.alternate_path);
		return r;
	}
	t.recursive = recursive;
	*nt = t;
	return sd_bus_reply_method_return(msg, "");
}

static bool class_selected(const Bcd *d, const vss_id *class_id)
{
	for (size_t i = 0; i < d->n_components; i++)
		if (d->components[i].selected_for_restore && vss_id_equal(&d->components[i].writer_class_id, class_id))
			return true;
	return false;
}

/* PreRestore and PostRestore: a round to the writers of the components
 * being restored, ending their operation. */
static int restore_call(sd_bus_message *msg, BackupObject *b, BackupCall call, WriterEvent e, sd_bus_error *error)
{
	int r;

	r = backup_check(b, call, error);
	if (r >= 0)
		r = manager_check_running(b->manager, error);
	if (r < 0)
		return r;
	/* The writers of the selected components' classes take part, the
	 * instance running now, whatever the one that made the backup; one
	 * that failed Identify too (a database whose server is down is what a
	 * restore is often for). PostRestore goes to those that did not fail
	 * PreRestore. */
	if (e == EVENT_PRE_RESTORE)
		for (size_t i = 0; i < b->n_participants; i++) {
			Participant *p = &b->participants[i];

			p->taking_part = class_selected(b->restore, &p->md.class_id);
			p->failed = false;
		}
	return backup_start_writers_round(msg, b, call, e, error);
}

static int method_pre_restore(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	return restore_call(msg, userdata, BC_PRE_RESTORE, EVENT_PRE_RESTORE, error);
}

static int method_post_restore(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	return restore_call(msg, userdata, BC_POST_RESTORE, EVENT_POST_RESTORE, error);
}

/* The files a component had, from the document's metadata of its writer. */
static const vss_wm_component *recorded(const Bcd *d, const BcdComponent *c)
{
	for (size_t i = 0; i < d->n_writers; i++) {
		const vss_writer_metadata *md = &d->writers[i];

		if (!vss_id_equal(&md->instance_id, &c->writer_instance_id))
			continue;
		for (size_t k = 0; k < md->n_components; k++)
			if (md->components[k].type == c->type && streq(md->components[k].name, c->name) &&
			    streq(md->components[k].logical_path ?: "", c->logical_path ?: ""))
				return &md->components[k];
	}
	return NULL;
}

void restore_append_components(sd_bus_message *m, BackupObject *b)
{
	char buf[VSS_ID_STRING_MAX];

	if (!b->restore)
		return;
	(void)sd_bus_message_open_container(m, 'e', "sv");
	(void)sd_bus_message_append(m, "s", "RestoreComponents");
	(void)sd_bus_message_open_container(m, 'v', RESTORE_COMPONENTS_SIGNATURE);
	(void)sd_bus_message_open_container(m, 'a', "(sisssa(issb)a(ssbs))");
	for (size_t i = 0; i < b->restore->n_components; i++) {
		const BcdComponent *c = &b->restore->components[i];
		const vss_wm_component *wc;

		if (!c->selected_for_restore)
			continue;
		wc = recorded(b->restore, c);
		(void)sd_bus_message_open_container(m, 'r', "sisssa(issb)a(ssbs)");
		(void)sd_bus_message_append(m, "sisss", vss_id_format(&c->writer_class_id, buf), (int32_t)c->type,
					    c->logical_path ?: "", c->name, c->restore_options ?: "");
		(void)sd_bus_message_open_container(m, 'a', "(issb)");
		for (size_t f = 0; wc && f < wc->n_files; f++)
			(void)sd_bus_message_append(m, "(issb)", (int32_t)wc->files[f].kind, wc->files[f].path,
						    wc->files[f].filespec, (int)wc->files[f].recursive);
		(void)sd_bus_message_close_container(m);
		(void)sd_bus_message_open_container(m, 'a', "(ssbs)");
		for (size_t t = 0; t < c->n_new_targets; t++)
			(void)sd_bus_message_append(m, "(ssbs)", c->new_targets[t].path, c->new_targets[t].filespec,
						    (int)c->new_targets[t].recursive, c->new_targets[t].alternate_path);
		(void)sd_bus_message_close_container(m);
		(void)sd_bus_message_close_container(m);
	}
	(void)sd_bus_message_close_container(m);
	(void)sd_bus_message_close_container(m);
	(void)sd_bus_message_close_container(m);
}

const sd_bus_vtable backup_restore_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("SaveAsXML", "", "s", method_save_as_xml, 0),
	SD_BUS_METHOD("InitializeForRestore", "s", "", method_initialize_for_restore, 0),
	SD_BUS_METHOD("SetSelectedForRestore", "sissb", "", method_set_selected_for_restore, 0),
	SD_BUS_METHOD("SetRestoreOptions", "sisss", "", method_set_restore_options, 0),
	SD_BUS_METHOD("AddNewTarget", "sissssbs", "", method_add_new_target, 0),
	SD_BUS_METHOD("PreRestore", "", "o", method_pre_restore, 0),
	SD_BUS_METHOD("PostRestore", "", "o", method_post_restore, 0),
	SD_BUS_VTABLE_END,
};
