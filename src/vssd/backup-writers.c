/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The writer side of a backup object: the requestor's writer calls
 * (GatherWriterMetadata, AddComponent, ...) and the events they send
 * (docs/WRITERS.md). The rounds of a set being cut are the creation's
 * (creation/phases.c).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/id.h"
#include "basic/log.h"
#include "basic/props.h"
#include "vssd/manager.h"

/* --- Rounds that end an asynchronous requestor call ---------------------- */

static void round_ends_async(BackupObject *b, void *userdata)
{
	(void)userdata;
	if (b->round_async) {
		AsyncOp *a = b->round_async;

		b->round_async = NULL;
		async_op_complete(a, VSS_S_ASYNC_FINISHED);
	}
}

bool sel_identified(const Participant *p, void *data)
{
	(void)data;
	return p->identified;
}

bool sel_active(const Participant *p, void *data)
{
	(void)data;
	return p->taking_part && !p->failed;
}

static void identify_done(BackupObject *b, void *userdata)
{
	b->facts.metadata_gathered = true;
	round_ends_async(b, userdata);
}

static int method_gather_writer_metadata(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	int r;

	r = backup_check(b, BC_GATHER_WRITER_METADATA, error);
	if (r >= 0)
		r = manager_check_running(b->manager, error);
	if (r < 0)
		return r;
	r = participants_make(b);
	if (r < 0)
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	r = backup_reply_with_async(msg, b, VSS_S_ASYNC_PENDING, &b->round_async, error);
	if (r < 0)
		return r;
	round_start(b, &b->round, EVENT_IDENTIFY, NULL, NULL, identify_done, NULL);
	return r;
}

static int method_get_writer_metadata(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	int r;

	r = backup_check(b, BC_GET_WRITER_METADATA, error);
	if (r < 0)
		return r;
	r = sd_bus_message_new_method_return(msg, &reply);
	if (r >= 0)
		r = sd_bus_message_open_container(reply, 'a', "(ssssiii" WRITER_METADATA_COMPONENTS ")");
	for (size_t i = 0; r >= 0 && i < b->n_participants; i++)
		if (b->participants[i].identified)
			r = bus_append_writer_metadata(reply, &b->participants[i].md);
	if (r >= 0)
		r = sd_bus_message_close_container(reply);
	if (r < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
}

static int read_classes(sd_bus_message *msg, vss_id **ret, size_t *ret_n, sd_bus_error *error)
{
	_cleanup_(strv_freep) char **ids = NULL;
	size_t n;
	vss_id *list;
	int r;

	r = sd_bus_message_read_strv(msg, &ids);
	if (r < 0)
		return r;
	n = strv_length(ids);
	list = calloc(n ?: 1, sizeof(vss_id));
	if (!list)
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	for (size_t i = 0; i < n; i++)
		if (VSS_FAILED(vss_id_parse(ids[i], &list[i]))) {
			free(list);
			return bus_error_set_hr(error, E_INVALIDARG, "\"%s\" is not an id", ids[i]);
		}
	free(*ret);
	*ret = list;
	*ret_n = n;
	return 0;
}

static int method_disable_writer_classes(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	int r;

	r = backup_check(b, BC_DISABLE_WRITER_CLASSES, error);
	if (r < 0)
		return r;
	r = read_classes(msg, &b->disabled_classes, &b->n_disabled_classes, error);
	return r < 0 ? r : sd_bus_reply_method_return(msg, "");
}

static int method_enable_writer_classes(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	int r;

	r = backup_check(b, BC_DISABLE_WRITER_CLASSES, error);
	if (r < 0)
		return r;
	r = read_classes(msg, &b->enabled_classes, &b->n_enabled_classes, error);
	return r < 0 ? r : sd_bus_reply_method_return(msg, "");
}

/* The component a requestor names, in the metadata and among the added. */
static int find_component(BackupObject *b, sd_bus_message *msg, bool added, Component **ret_added,
                          Participant **ret_p, const vss_wm_component **ret_c, sd_bus_error *error)
{
	const char *instance, *class, *logical, *name;
	vss_id instance_id, class_id;
	int32_t type;
	int r;

	r = sd_bus_message_read(msg, "ssiss", &instance, &class, &type, &logical, &name);
	if (r < 0)
		return r;
	if (VSS_FAILED(vss_id_parse(instance, &instance_id)) || VSS_FAILED(vss_id_parse(class, &class_id)))
		return bus_error_set_hr(error, E_INVALIDARG, "the writer is named by two ids");
	for (size_t i = 0; i < b->n_participants; i++) {
		Participant *p = &b->participants[i];

		if (!p->identified || !vss_id_equal(&p->md.instance_id, &instance_id) ||
		    !vss_id_equal(&p->md.class_id, &class_id))
			continue;
		for (size_t k = 0; k < p->md.n_components; k++) {
			const vss_wm_component *c = &p->md.components[k];

			if ((int32_t)c->type != type || !streq(c->name, name) ||
			    !streq(c->logical_path ?: "", logical))
				continue;
			*ret_p = p;
			*ret_c = c;
			*ret_added = NULL;
			for (size_t a = 0; a < b->n_components; a++) {
				Component *x = &b->components[a];

				if (vss_id_equal(&x->instance_id, &instance_id) && streq(x->name, name) &&
				    streq(x->logical_path ?: "", logical))
					*ret_added = x;
			}
			if (added && !*ret_added)
				return bus_error_set_hr(error, VSS_E_OBJECT_NOT_FOUND,
							"component %s of writer %s was not added", name, p->md.name);
			return 0;
		}
		return bus_error_set_hr(error, VSS_E_OBJECT_NOT_FOUND, "writer %s has no component %s",
					p->md.name, name);
	}
	return bus_error_set_hr(error, VSS_E_OBJECT_NOT_FOUND, "no writer %s of class %s answered", instance, class);
}

static int method_add_component(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	const vss_wm_component *c;
	Component *added, *nc;
	Participant *p;
	int r;

	r = backup_check(b, BC_ADD_COMPONENT, error);
	if (r < 0)
		return r;
	r = find_component(b, msg, false, &added, &p, &c, error);
	if (r < 0)
		return r;
	if (added)
		return bus_error_set_hr(error, VSS_E_OBJECT_ALREADY_EXISTS, "component %s is added already", c->name);
	nc = array_grow((void **)&b->components, &b->n_components, sizeof(*nc));
	if (!nc)
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	*nc = (Component){
		.instance_id = p->md.instance_id,
		.class_id = p->md.class_id,
		.type = c->type,
		.logical_path = strdup_or_null(c->logical_path),
		.name = strdup(c->name),
		.succeeded = -1,
	};
	if (!nc->name)
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	return sd_bus_reply_method_return(msg, "");
}

static int method_set_backup_succeeded(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	const vss_wm_component *c;
	Component *added;
	Participant *p;
	int ok, r;

	r = backup_check(b, BC_SET_BACKUP_SUCCEEDED, error);
	if (r < 0)
		return r;
	r = find_component(b, msg, true, &added, &p, &c, error);
	if (r < 0)
		return r;
	r = sd_bus_message_read(msg, "b", &ok);
	if (r < 0)
		return r;
	added->succeeded = ok;
	return sd_bus_reply_method_return(msg, "");
}

void components_free(BackupObject *b)
{
	for (size_t i = 0; i < b->n_components; i++) {
		free(b->components[i].logical_path);
		free(b->components[i].name);
	}
	free(b->components);
	b->components = NULL;
	b->n_components = 0;
}

static int method_gather_writer_status(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	int r;

	r = backup_check(b, BC_GATHER_WRITER_STATUS, error);
	if (r < 0)
		return r;
	/* vssd keeps every writer's state as its events end: nothing to ask. */
	return backup_reply_with_async(msg, b, VSS_S_ASYNC_FINISHED, NULL, error);
}

static int method_get_writer_status(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	int r;

	r = backup_check(b, BC_GATHER_WRITER_STATUS, error);
	if (r < 0)
		return r;
	r = sd_bus_message_new_method_return(msg, &reply);
	if (r >= 0)
		r = participants_status(b, reply);
	if (r < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
}

const sd_bus_vtable backup_writers_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("GatherWriterMetadata", "", "o", method_gather_writer_metadata, 0),
	SD_BUS_METHOD("GetWriterMetadata", "", "a(ssssiii" WRITER_METADATA_COMPONENTS ")", method_get_writer_metadata, 0),
	SD_BUS_METHOD("DisableWriterClasses", "as", "", method_disable_writer_classes, 0),
	SD_BUS_METHOD("EnableWriterClasses", "as", "", method_enable_writer_classes, 0),
	SD_BUS_METHOD("AddComponent", "ssiss", "", method_add_component, 0),
	SD_BUS_METHOD("SetBackupSucceeded", "ssissb", "", method_set_backup_succeeded, 0),
	SD_BUS_METHOD("GatherWriterStatus", "", "o", method_gather_writer_status, 0),
	SD_BUS_METHOD("GetWriterStatus", "", "a(sssiis)", method_get_writer_status, 0),
	SD_BUS_VTABLE_END,
};

/* --- Events the backup calls send -------------------------------------- */

/* PrepareForBackup and BackupComplete: a round, ending their operation. */
void writers_round_for_call(BackupObject *b, WriterEvent e, AsyncOp *a)
{
	b->round_async = a;
	round_start(b, &b->round, e, e == EVENT_PREPARE_BACKUP ? sel_identified : sel_active, NULL, round_ends_async,
		    NULL);
}

/* AbortBackup and release: nobody waits for the answers. */
void writers_abort(BackupObject *b)
{
	writers_notify(b, EVENT_ABORT, sel_identified, NULL);
}

void writers_shutdown(BackupObject *b)
{
	writers_notify(b, EVENT_BACKUP_SHUTDOWN, sel_identified, NULL);
}
