/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The requestor API. Each call is one D-Bus method on the object vssd made
 * for this requestor; vssd keeps the state machine, so the library only checks
 * what it must (its own pointers) before asking.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <vss/vss.h>

#include "basic/props.h"
#include "basic/util.h"
#include "libvss/client.h"
#include "protocol/bus.h"

#define CALL_TIMEOUT_USEC (120ULL * 1000000ULL)

#define BACKUP_CALL(b, method, reply, types, ...) \
	client_call((b)->bus, (b)->path, VSS_BUS_BACKUP_IFACE, (method), CALL_TIMEOUT_USEC, (reply), (types), ##__VA_ARGS__)

static vss_hr bad_reply(sd_bus_message *reply, const char *method, int r)
{
	sd_bus_message_unref(reply);
	return client_fail(VSS_E_UNEXPECTED, "malformed reply to %s: %s", method, strerror(-r));
}

vss_hr vss_create_backup_components(vss_backup **ret)
{
	sd_bus_message *reply = NULL;
	const char *path;
	vss_backup *b;
	vss_hr hr;
	int r;

	client_begin();
	if (!ret)
		return client_fail(E_INVALIDARG, "ret is NULL");
	*ret = NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return client_fail(E_OUTOFMEMORY, "out of memory");
	hr = client_connect(&b->bus);
	if (VSS_FAILED(hr)) {
		free(b);
		return hr;
	}
	hr = client_call(b->bus, VSS_BUS_MANAGER_PATH, VSS_BUS_MANAGER_IFACE, "CreateBackupComponents",
			 CALL_TIMEOUT_USEC, &reply, NULL);
	if (VSS_FAILED(hr)) {
		sd_bus_flush_close_unref(b->bus);
		free(b);
		return hr;
	}
	r = sd_bus_message_read(reply, "o", &path);
	if (r >= 0) {
		b->path = strdup(path);
		if (!b->path)
			r = -ENOMEM;
	}
	sd_bus_message_unref(reply);
	if (r < 0) {
		sd_bus_flush_close_unref(b->bus);
		free(b);
		return client_fail(VSS_E_UNEXPECTED, "malformed reply to CreateBackupComponents: %s", strerror(-r));
	}
	*ret = b;
	return S_OK;
}

vss_hr vss_backup_release(vss_backup *b)
{
	client_begin();
	if (!b)
		return S_OK;
	/* Closing the connection alone would do (vssd releases the objects of
	 * a peer that leaves), but an explicit Release lets vssd finish the
	 * auto-release deletion before we return. */
	if (b->path)
		(void)BACKUP_CALL(b, "Release", NULL, NULL);
	vss_backup_free_writer_metadata(b);
	vss_backup_free_writer_status(b);
	sd_bus_flush_close_unref(b->bus);
	free(b->path);
	free(b);
	client_begin();
	return S_OK;
}

vss_hr vss_backup_initialize_for_backup(vss_backup *b, const char *xml_or_null)
{
	client_begin();
	if (!b)
		return client_fail(E_INVALIDARG, "b is NULL");
	return BACKUP_CALL(b, "InitializeForBackup", NULL, "s", xml_or_null ?: "");
}

vss_hr vss_backup_set_context(vss_backup *b, int32_t context)
{
	client_begin();
	if (!b)
		return client_fail(E_INVALIDARG, "b is NULL");
	return BACKUP_CALL(b, "SetContext", NULL, "i", context);
}

vss_hr vss_backup_set_backup_state(vss_backup *b, bool select_components, bool bootable_system_state,
                                   vss_backup_type backup_type, bool partial_file_support)
{
	client_begin();
	if (!b)
		return client_fail(E_INVALIDARG, "b is NULL");
	return BACKUP_CALL(b, "SetBackupState", NULL, "bbib", (int)select_components, (int)bootable_system_state,
			   (int32_t)backup_type, (int)partial_file_support);
}

/* Read one id string from a reply into *ret. */
static vss_hr read_id_reply(sd_bus_message *reply, const char *method, vss_id *ret)
{
	const char *s;
	int r;

	r = sd_bus_message_read(reply, "s", &s);
	if (r < 0)
		return bad_reply(reply, method, r);
	if (VSS_FAILED(vss_id_parse(s, ret)))
		return bad_reply(reply, method, -EBADMSG);
	sd_bus_message_unref(reply);
	return S_OK;
}

vss_hr vss_backup_start_snapshot_set(vss_backup *b, vss_id *ret_set_id)
{
	sd_bus_message *reply;
	vss_hr hr;

	client_begin();
	if (ret_set_id)
		*ret_set_id = VSS_ID_NULL;
	if (!b || !ret_set_id)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : "ret_set_id");
	hr = BACKUP_CALL(b, "StartSnapshotSet", &reply, NULL);
	if (VSS_FAILED(hr))
		return hr;
	return read_id_reply(reply, "StartSnapshotSet", ret_set_id);
}

static const char *id_arg(const vss_id *id, char buf[VSS_ID_STRING_MAX])
{
	if (vss_id_is_null(id))
		return "";
	return vss_id_format(id, buf);
}

vss_hr vss_backup_add_to_snapshot_set(vss_backup *b, const char *volume, const vss_id *provider_or_null,
                                      vss_id *ret_snapshot_id)
{
	char buf[VSS_ID_STRING_MAX];
	sd_bus_message *reply;
	vss_hr hr;

	client_begin();
	if (ret_snapshot_id)
		*ret_snapshot_id = VSS_ID_NULL;
	if (!b || !volume || !ret_snapshot_id)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : !volume ? "volume" : "ret_snapshot_id");
	hr = BACKUP_CALL(b, "AddToSnapshotSet", &reply, "ss", volume, id_arg(provider_or_null, buf));
	if (VSS_FAILED(hr))
		return hr;
	return read_id_reply(reply, "AddToSnapshotSet", ret_snapshot_id);
}

vss_hr vss_backup_is_volume_supported(vss_backup *b, const vss_id *provider_or_null, const char *volume,
                                      bool *ret_supported)
{
	char buf[VSS_ID_STRING_MAX];
	sd_bus_message *reply;
	int supported, r;
	vss_hr hr;

	client_begin();
	if (ret_supported)
		*ret_supported = false;
	if (!b || !volume || !ret_supported)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : !volume ? "volume" : "ret_supported");
	hr = BACKUP_CALL(b, "IsVolumeSupported", &reply, "ss", id_arg(provider_or_null, buf), volume);
	if (VSS_FAILED(hr))
		return hr;
	r = sd_bus_message_read(reply, "b", &supported);
	if (r < 0)
		return bad_reply(reply, "IsVolumeSupported", r);
	sd_bus_message_unref(reply);
	*ret_supported = supported;
	return S_OK;
}

/* A method that answers with the object path of a new operation. */
/* The operation a reply names; takes the reply over. */
static vss_hr async_from_reply(vss_backup *b, sd_bus_message *reply, const char *method, vss_async **ret)
{
	const char *path;
	vss_async *a;
	int r;

	r = sd_bus_message_read(reply, "o", &path);
	if (r < 0)
		return bad_reply(reply, method, r);
	a = calloc(1, sizeof(*a));
	if (a)
		a->path = strdup(path);
	sd_bus_message_unref(reply);
	if (!a || !a->path) {
		free(a);
		return client_fail(E_OUTOFMEMORY, "out of memory");
	}
	a->bus = sd_bus_ref(b->bus);
	*ret = a;
	return S_OK;
}

static vss_hr async_call(vss_backup *b, const char *method, vss_async **ret)
{
	sd_bus_message *reply;
	vss_hr hr;

	client_begin();
	if (ret)
		*ret = NULL;
	if (!b || !ret)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : "ret");
	hr = BACKUP_CALL(b, method, &reply, NULL);
	if (VSS_FAILED(hr))
		return hr;
	return async_from_reply(b, reply, method, ret);
}

vss_hr vss_backup_prepare_for_backup(vss_backup *b, vss_async **ret)
{
	return async_call(b, "PrepareForBackup", ret);
}

vss_hr vss_backup_do_snapshot_set(vss_backup *b, vss_async **ret)
{
	return async_call(b, "DoSnapshotSet", ret);
}

vss_hr vss_backup_backup_complete(vss_backup *b, vss_async **ret)
{
	return async_call(b, "BackupComplete", ret);
}

vss_hr vss_backup_abort_backup(vss_backup *b)
{
	client_begin();
	if (!b)
		return client_fail(E_INVALIDARG, "b is NULL");
	return BACKUP_CALL(b, "AbortBackup", NULL, NULL);
}

vss_hr vss_backup_get_snapshot_properties(vss_backup *b, const vss_id *snapshot_id, vss_snapshot_prop *ret_prop)
{
	char buf[VSS_ID_STRING_MAX];
	sd_bus_message *reply;
	vss_hr hr;
	int r;

	client_begin();
	if (ret_prop)
		*ret_prop = (vss_snapshot_prop){ 0 };
	if (!b || !snapshot_id || !ret_prop)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : !snapshot_id ? "snapshot_id" : "ret_prop");
	hr = BACKUP_CALL(b, "GetSnapshotProperties", &reply, "s", vss_id_format(snapshot_id, buf));
	if (VSS_FAILED(hr))
		return hr;
	r = bus_read_snapshot_prop(reply, ret_prop);
	if (r < 0)
		return bad_reply(reply, "GetSnapshotProperties", r);
	sd_bus_message_unref(reply);
	return S_OK;
}

/* A QuerySnapshots call in flight, and its reply once it came. */
typedef struct PendingPage {
	sd_bus_slot *slot;
	sd_bus_message *reply;
} PendingPage;

static int page_arrived(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	PendingPage *p = userdata;

	(void)ret_error;
	p->reply = sd_bus_message_ref(m);
	return 1;
}

static vss_hr page_ask(vss_backup *b, const char *set, const char *volume, const char *after, PendingPage *p)
{
	sd_bus_message *call = NULL;
	int r;

	r = sd_bus_message_new_method_call(b->bus, &call, VSS_BUS_NAME, b->path, VSS_BUS_BACKUP_IFACE,
					   "QuerySnapshots");
	if (r >= 0)
		r = sd_bus_message_append(call, "sssu", set, volume, after, (uint32_t)0);
	if (r >= 0)
		r = sd_bus_call_async(b->bus, &p->slot, call, page_arrived, p, CALL_TIMEOUT_USEC);
	sd_bus_message_unref(call);
	if (r < 0)
		return client_fail(r == -ENOMEM ? E_OUTOFMEMORY : VSS_E_UNEXPECTED, "cannot send QuerySnapshots: %s",
				   strerror(-r));
	return S_OK;
}

/* The reply to page_ask(), or the failure it carries. */
static vss_hr page_wait(vss_backup *b, PendingPage *p, sd_bus_message **ret)
{
	const sd_bus_error *e;
	vss_hr hr;
	int r;

	while (!p->reply) {
		r = sd_bus_process(b->bus, NULL);
		if (r == 0)
			r = sd_bus_wait(b->bus, UINT64_MAX);
		if (r < 0) {
			p->slot = sd_bus_slot_unref(p->slot);
			return client_fail(VSS_E_UNEXPECTED, "lost the connection to vssd during QuerySnapshots: %s",
					   strerror(-r));
		}
	}
	p->slot = sd_bus_slot_unref(p->slot);
	e = sd_bus_message_get_error(p->reply);
	if (e) {
		hr = bus_error_to_hr(e);
		client_fail(hr, "%s", e->message ?: e->name);
		p->reply = sd_bus_message_unref(p->reply);
		return hr;
	}
	*ret = TAKE_PTR(p->reply);
	return S_OK;
}

/* A page of rows, handed to fn. With borrow, their strings are the reply's
 * (valid during fn only); without, fn may take them (leaving NULL) and the
 * rest are freed after it. */
typedef vss_hr (*page_fn)(vss_snapshot_prop *props, size_t n, void *userdata);

/* Read every page of QuerySnapshots, handing each to fn as it comes. The
 * next page is asked for before this one is read, so that vssd reads its
 * catalog while this process decodes and fn works (a position comes first
 * in each reply for that). */
static vss_hr query_pages(vss_backup *b, const vss_id *set_id, const char *volume, bool borrow, page_fn fn,
			  void *userdata)
{
	char buf[VSS_ID_STRING_MAX];
	const char *set = id_arg(set_id, buf), *next;
	vss_snapshot_prop *snaps = NULL;
	size_t n = 0, allocated = 0;
	PendingPage pending = { 0 };
	bool asked;
	vss_hr hr;
	int r;

	hr = page_ask(b, set, volume ?: "", "", &pending);
	for (asked = VSS_SUCCEEDED(hr); asked;) {
		sd_bus_message *reply = NULL;

		hr = page_wait(b, &pending, &reply);
		if (VSS_FAILED(hr))
			break;
		r = bus_read_snapshot_page_next(reply, &next);
		if (r < 0) {
			hr = bad_reply(reply, "QuerySnapshots", r);
			break;
		}
		asked = next[0];
		if (asked)
			hr = page_ask(b, set, volume ?: "", next, &pending);
		r = VSS_SUCCEEDED(hr) ? bus_read_snapshot_page(reply, &snaps, &n, &allocated, borrow) : 0;
		if (r < 0)
			hr = client_fail(VSS_E_UNEXPECTED, "malformed reply to QuerySnapshots: %s", strerror(-r));
		if (VSS_SUCCEEDED(hr))
			hr = fn(snaps, n, userdata);
		for (size_t i = 0; i < n; i++)
			if (borrow)
				snaps[i] = (vss_snapshot_prop){ 0 };
			else
				vss_free_snapshot_properties(&snaps[i]);
		n = 0;
		sd_bus_message_unref(reply);
		if (VSS_FAILED(hr))
			break;
	}
	/* A page asked for but not waited for: its reply is dropped. */
	pending.slot = sd_bus_slot_unref(pending.slot);
	sd_bus_message_unref(pending.reply);
	free(snaps);
	return hr;
}

typedef struct Gathered {
	vss_object_prop *props;
	size_t n, allocated;
} Gathered;

static vss_hr gather_page(vss_snapshot_prop *snaps, size_t n, void *userdata)
{
	Gathered *g = userdata;

	if (array_reserve((void **)&g->props, &g->allocated, g->n + n, sizeof(*g->props)) < 0)
		return client_fail(E_OUTOFMEMORY, "out of memory");
	/* The strings move to the list. */
	for (size_t i = 0; i < n; i++) {
		g->props[g->n++] = (vss_object_prop){ .type = VSS_OBJECT_SNAPSHOT, .obj.snap = snaps[i] };
		snaps[i] = (vss_snapshot_prop){ 0 };
	}
	return S_OK;
}

/* Every page of QuerySnapshots in one list. */
static vss_hr query_snapshots(vss_backup *b, const vss_id *set_id, const char *volume, vss_object_prop **ret_props,
                              size_t *ret_count)
{
	Gathered g = { 0 };
	vss_hr hr;

	hr = query_pages(b, set_id, volume, false, gather_page, &g);
	if (VSS_SUCCEEDED(hr) && !g.props && !(g.props = calloc(1, sizeof(*g.props))))
		hr = client_fail(E_OUTOFMEMORY, "out of memory");
	if (VSS_FAILED(hr)) {
		vss_free_object_props(g.props, g.n);
		return hr;
	}
	*ret_props = g.props;
	*ret_count = g.n;
	return S_OK;
}

typedef struct UserPages {
	vss_snapshot_page_fn fn;
	void *userdata;
} UserPages;

static vss_hr user_page(vss_snapshot_prop *snaps, size_t n, void *userdata)
{
	UserPages *u = userdata;

	return u->fn(snaps, n, u->userdata);
}

vss_hr vss_backup_query(vss_backup *b, const vss_id *query_id_or_null, vss_object_type queried_type,
                        vss_object_type returned_type, vss_object_prop **ret_props, size_t *ret_count)
{
	char buf[VSS_ID_STRING_MAX];
	vss_object_prop *props = NULL;
	sd_bus_message *reply;
	size_t n = 0;
	vss_hr hr;
	int r;

	client_begin();
	if (ret_props)
		*ret_props = NULL;
	if (ret_count)
		*ret_count = 0;
	if (!b || !ret_props || !ret_count)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : !ret_props ? "ret_props" : "ret_count");
	/* vssd checks the arguments, which Query alone takes; a valid snapshot
	 * query then reads the list in pages. */
	if (returned_type == VSS_OBJECT_SNAPSHOT && (!query_id_or_null || vss_id_is_null(query_id_or_null)) &&
	    queried_type == VSS_OBJECT_NONE)
		return query_snapshots(b, NULL, NULL, ret_props, ret_count);
	hr = BACKUP_CALL(b, "Query", &reply, "sii", id_arg(query_id_or_null, buf), (int32_t)queried_type,
			 (int32_t)returned_type);
	if (VSS_FAILED(hr))
		return hr;
	r = sd_bus_message_enter_container(reply, 'a', "a{sv}");
	while (r >= 0) {
		vss_object_prop *p;

		r = sd_bus_message_at_end(reply, false);
		if (r != 0)
			break;
		p = array_grow((void **)&props, &n, sizeof(*p));
		if (!p) {
			r = -ENOMEM;
			break;
		}
		p->type = returned_type;
		if (returned_type == VSS_OBJECT_SNAPSHOT)
			r = bus_read_snapshot_prop(reply, &p->obj.snap);
		else
			r = bus_read_provider_prop(reply, &p->obj.prov);
	}
	if (r < 0) {
		vss_free_object_props(props, n);
		return bad_reply(reply, "Query", r);
	}
	sd_bus_message_unref(reply);
	*ret_props = props;
	*ret_count = n;
	return S_OK;
}

vss_hr vss_backup_query_snapshots(vss_backup *b, const vss_id *set_id_or_null, const char *volume_or_null,
                                  vss_object_prop **ret_props, size_t *ret_count)
{
	client_begin();
	if (ret_props)
		*ret_props = NULL;
	if (ret_count)
		*ret_count = 0;
	if (!b || !ret_props || !ret_count)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : !ret_props ? "ret_props" : "ret_count");
	return query_snapshots(b, set_id_or_null, volume_or_null, ret_props, ret_count);
}

vss_hr vss_backup_query_snapshot_pages(vss_backup *b, const vss_id *set_id_or_null, const char *volume_or_null,
                                       vss_snapshot_page_fn page, void *userdata)
{
	UserPages u = { .fn = page, .userdata = userdata };

	client_begin();
	if (!b || !page)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : "page");
	return query_pages(b, set_id_or_null, volume_or_null, true, user_page, &u);
}

vss_hr vss_backup_delete_snapshots(vss_backup *b, const vss_id *source_id, vss_object_type source_type,
                                   bool force_delete, int32_t *ret_deleted, vss_id *ret_nondeleted)
{
	char buf[VSS_ID_STRING_MAX];
	const char *failed, *message;
	sd_bus_message *reply;
	int32_t hr_remote, deleted;
	vss_hr hr;
	int r;

	client_begin();
	if (ret_deleted)
		*ret_deleted = 0;
	if (ret_nondeleted)
		*ret_nondeleted = VSS_ID_NULL;
	if (!b || !source_id || !ret_deleted || !ret_nondeleted)
		return client_fail(E_INVALIDARG, "%s is NULL",
				   !b ? "b" : !source_id ? "source_id" : !ret_deleted ? "ret_deleted" : "ret_nondeleted");
	hr = BACKUP_CALL(b, "DeleteSnapshots", &reply, "sib", vss_id_format(source_id, buf), (int32_t)source_type,
			 (int)force_delete);
	if (VSS_FAILED(hr))
		return hr;
	/* The counts matter on failure too, so the result travels in-band. */
	r = sd_bus_message_read(reply, "iiss", &hr_remote, &deleted, &failed, &message);
	if (r < 0)
		return bad_reply(reply, "DeleteSnapshots", r);
	*ret_deleted = deleted;
	if (VSS_FAILED(vss_id_parse(failed, ret_nondeleted)))
		*ret_nondeleted = VSS_ID_NULL;
	if (VSS_FAILED(hr_remote))
		client_fail(hr_remote, "%s", message);
	sd_bus_message_unref(reply);
	return hr_remote;
}

vss_hr vss_backup_expose_snapshot(vss_backup *b, const vss_id *snapshot_id, const char *path_from_root_or_null,
                                  int32_t attributes, const char *expose_or_null, char **ret_exposed_name)
{
	char buf[VSS_ID_STRING_MAX];
	sd_bus_message *reply;
	const char *exposed;
	vss_hr hr;
	int r;

	client_begin();
	if (ret_exposed_name)
		*ret_exposed_name = NULL;
	if (!b || !snapshot_id || !ret_exposed_name)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : !snapshot_id ? "snapshot_id" : "ret_exposed_name");
	hr = BACKUP_CALL(b, "ExposeSnapshot", &reply, "ssis", vss_id_format(snapshot_id, buf),
			 path_from_root_or_null ?: "", attributes, expose_or_null ?: "");
	if (VSS_FAILED(hr))
		return hr;
	r = sd_bus_message_read(reply, "s", &exposed);
	if (r < 0)
		return bad_reply(reply, "ExposeSnapshot", r);
	*ret_exposed_name = strdup(exposed);
	sd_bus_message_unref(reply);
	return *ret_exposed_name ? S_OK : client_fail(E_OUTOFMEMORY, "out of memory");
}

vss_hr vss_backup_unexpose_snapshot(vss_backup *b, const vss_id *snapshot_id)
{
	char buf[VSS_ID_STRING_MAX];

	client_begin();
	if (!b || !snapshot_id)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : "snapshot_id");
	return BACKUP_CALL(b, "UnexposeSnapshot", NULL, "s", vss_id_format(snapshot_id, buf));
}

vss_hr vss_backup_query_diff_areas(vss_backup *b, const char *volume_or_null, vss_diff_area_prop **ret_props,
                                   size_t *ret_count)
{
	vss_diff_area_prop *props = NULL;
	sd_bus_message *reply;
	size_t n = 0;
	vss_hr hr;
	int r;

	client_begin();
	if (ret_props)
		*ret_props = NULL;
	if (ret_count)
		*ret_count = 0;
	if (!b || !ret_props || !ret_count)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : !ret_props ? "ret_props" : "ret_count");
	hr = BACKUP_CALL(b, "QueryDiffAreas", &reply, "s", volume_or_null ?: "");
	if (VSS_FAILED(hr))
		return hr;
	r = sd_bus_message_enter_container(reply, 'a', "(ssxxx)");
	while (r >= 0) {
		const char *volume, *storage;
		int64_t maximum, allocated, used;
		vss_diff_area_prop *p;

		r = sd_bus_message_read(reply, "(ssxxx)", &volume, &storage, &maximum, &allocated, &used);
		if (r <= 0)
			break;
		p = array_grow((void **)&props, &n, sizeof(*p));
		if (p)
			*p = (vss_diff_area_prop){
				.volume_name = strdup(volume),
				.diff_area_volume_name = storage[0] ? strdup(storage) : NULL,
				.maximum_diff_space = maximum,
				.allocated_diff_space = allocated,
				.used_diff_space = used,
			};
		if (!p || !p->volume_name)
			r = -ENOMEM;
	}
	if (r < 0) {
		vss_free_diff_area_props(props, n);
		return bad_reply(reply, "QueryDiffAreas", r);
	}
	sd_bus_message_unref(reply);
	*ret_props = props;
	*ret_count = n;
	return S_OK;
}

vss_hr vss_backup_change_diff_area_maximum_size(vss_backup *b, const char *volume, int64_t maximum)
{
	client_begin();
	if (!b || !volume)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : "volume");
	return BACKUP_CALL(b, "ChangeDiffAreaMaximumSize", NULL, "sx", volume, maximum);
}

vss_hr vss_backup_get_diff_area_maximum_size(vss_backup *b, const char *volume, int64_t *ret_maximum)
{
	sd_bus_message *reply;
	int64_t maximum;
	vss_hr hr;
	int r;

	client_begin();
	if (ret_maximum)
		*ret_maximum = 0;
	if (!b || !volume || !ret_maximum)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : !volume ? "volume" : "ret_maximum");
	hr = BACKUP_CALL(b, "GetDiffAreaMaximumSize", &reply, "s", volume);
	if (VSS_FAILED(hr))
		return hr;
	r = sd_bus_message_read(reply, "x", &maximum);
	if (r < 0)
		return bad_reply(reply, "GetDiffAreaMaximumSize", r);
	sd_bus_message_unref(reply);
	*ret_maximum = maximum;
	return S_OK;
}

#define WRITERS_CALL(b, method, reply, types, ...) \
	client_call((b)->bus, (b)->path, VSS_BUS_BACKUP_WRITERS_IFACE, (method), CALL_TIMEOUT_USEC, (reply), (types), \
		    ##__VA_ARGS__)

static vss_hr writers_async(vss_backup *b, const char *method, vss_async **ret)
{
	sd_bus_message *reply;
	const char *path;
	vss_async *a;
	vss_hr hr;
	int r;

	client_begin();
	if (ret)
		*ret = NULL;
	if (!b || !ret)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : "ret");
	hr = WRITERS_CALL(b, method, &reply, NULL);
	if (VSS_FAILED(hr))
		return hr;
	r = sd_bus_message_read(reply, "o", &path);
	if (r < 0)
		return bad_reply(reply, method, r);
	a = calloc(1, sizeof(*a));
	if (a)
		a->path = strdup(path);
	sd_bus_message_unref(reply);
	if (!a || !a->path) {
		free(a);
		return client_fail(E_OUTOFMEMORY, "out of memory");
	}
	a->bus = sd_bus_ref(b->bus);
	*ret = a;
	return S_OK;
}

vss_hr vss_backup_gather_writer_metadata(vss_backup *b, vss_async **ret)
{
	if (b)
		vss_backup_free_writer_metadata(b);
	return writers_async(b, "GatherWriterMetadata", ret);
}

vss_hr vss_backup_gather_writer_status(vss_backup *b, vss_async **ret)
{
	if (b)
		vss_backup_free_writer_status(b);
	return writers_async(b, "GatherWriterStatus", ret);
}

/* Call a BackupWriters1 method whose reply is an array, and read it item by
 * item (read() returning 0 at its end) into *items, *n of size bytes each. */
static vss_hr load_array(vss_backup *b, const char *method, const char *contents, size_t size,
                         int (*read)(sd_bus_message *m, void *item), void **items, size_t *n)
{
	sd_bus_message *reply;
	vss_hr hr;
	int r;

	hr = WRITERS_CALL(b, method, &reply, NULL);
	if (VSS_FAILED(hr))
		return hr;
	r = sd_bus_message_enter_container(reply, 'a', contents);
	while (r >= 0) {
		void *item = array_grow(items, n, size);

		if (!item) {
			r = -ENOMEM;
			break;
		}
		r = read(reply, item);
		if (r <= 0) {
			(*n)--; /* nothing was read into it */
			break;
		}
	}
	if (r < 0)
		return bad_reply(reply, method, r);
	sd_bus_message_unref(reply);
	return S_OK;
}

static int read_metadata(sd_bus_message *m, void *item)
{
	return bus_read_writer_metadata(m, item);
}

static vss_hr load_metadata(vss_backup *b)
{
	vss_hr hr;

	if (b->have_metadata)
		return S_OK;
	hr = load_array(b, "GetWriterMetadata", "(ssssiii" WRITER_METADATA_COMPONENTS ")", sizeof(*b->metadata),
			read_metadata, (void **)&b->metadata, &b->n_metadata);
	if (VSS_FAILED(hr))
		vss_backup_free_writer_metadata(b);
	else
		b->have_metadata = true;
	return hr;
}

vss_hr vss_backup_get_writer_metadata_count(vss_backup *b, unsigned *ret_count)
{
	vss_hr hr;

	client_begin();
	if (ret_count)
		*ret_count = 0;
	if (!b || !ret_count)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : "ret_count");
	hr = load_metadata(b);
	if (VSS_FAILED(hr))
		return hr;
	*ret_count = (unsigned)b->n_metadata;
	return S_OK;
}

vss_hr vss_backup_get_writer_metadata(vss_backup *b, unsigned index, vss_id *ret_instance_id,
                                      const vss_writer_metadata **ret_metadata)
{
	vss_hr hr;

	client_begin();
	if (ret_instance_id)
		*ret_instance_id = VSS_ID_NULL;
	if (ret_metadata)
		*ret_metadata = NULL;
	if (!b || !ret_instance_id || !ret_metadata)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : !ret_instance_id ? "ret_instance_id" : "ret_metadata");
	hr = load_metadata(b);
	if (VSS_FAILED(hr))
		return hr;
	if (index >= b->n_metadata)
		return client_fail(E_INVALIDARG, "index %u is past the %zu writers", index, b->n_metadata);
	*ret_instance_id = b->metadata[index].instance_id;
	*ret_metadata = &b->metadata[index];
	return S_OK;
}

vss_hr vss_backup_free_writer_metadata(vss_backup *b)
{
	if (!b)
		return E_INVALIDARG;
	for (size_t i = 0; i < b->n_metadata; i++)
		vss_writer_metadata_clear(&b->metadata[i]);
	free(b->metadata);
	b->metadata = NULL;
	b->n_metadata = 0;
	b->have_metadata = false;
	return S_OK;
}

static int read_status(sd_bus_message *m, void *item)
{
	return bus_read_writer_status(m, item);
}

static vss_hr load_status(vss_backup *b)
{
	vss_hr hr;

	if (b->have_status)
		return S_OK;
	hr = load_array(b, "GetWriterStatus", "(sssiis)", sizeof(*b->status), read_status, (void **)&b->status,
			&b->n_status);
	if (VSS_FAILED(hr))
		vss_backup_free_writer_status(b);
	else
		b->have_status = true;
	return hr;
}

vss_hr vss_backup_get_writer_status_count(vss_backup *b, unsigned *ret_count)
{
	vss_hr hr;

	client_begin();
	if (ret_count)
		*ret_count = 0;
	if (!b || !ret_count)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : "ret_count");
	hr = load_status(b);
	if (VSS_FAILED(hr))
		return hr;
	*ret_count = (unsigned)b->n_status;
	return S_OK;
}

vss_hr vss_backup_get_writer_status(vss_backup *b, unsigned index, const vss_writer_status **ret_status)
{
	vss_hr hr;

	client_begin();
	if (ret_status)
		*ret_status = NULL;
	if (!b || !ret_status)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : "ret_status");
	hr = load_status(b);
	if (VSS_FAILED(hr))
		return hr;
	if (index >= b->n_status)
		return client_fail(E_INVALIDARG, "index %u is past the %zu writers", index, b->n_status);
	*ret_status = &b->status[index];
	return S_OK;
}

vss_hr vss_backup_free_writer_status(vss_backup *b)
{
	if (!b)
		return E_INVALIDARG;
	for (size_t i = 0; i < b->n_status; i++)
		vss_writer_status_clear(&b->status[i]);
	free(b->status);
	b->status = NULL;
	b->n_status = 0;
	b->have_status = false;
	return S_OK;
}

vss_hr vss_backup_add_component(vss_backup *b, const vss_id *instance_id, const vss_id *class_id,
                                vss_component_type type, const char *logical_path_or_null, const char *name)
{
	char ib[VSS_ID_STRING_MAX], cb[VSS_ID_STRING_MAX];

	client_begin();
	if (!b || !instance_id || !class_id || !name)
		return client_fail(E_INVALIDARG, "a component is named by its writer and its name");
	return WRITERS_CALL(b, "AddComponent", NULL, "ssiss", vss_id_format(instance_id, ib),
			    vss_id_format(class_id, cb), (int32_t)type, logical_path_or_null ?: "", name);
}

vss_hr vss_backup_set_backup_succeeded(vss_backup *b, const vss_id *instance_id, const vss_id *class_id,
                                       vss_component_type type, const char *logical_path_or_null,
                                       const char *name, bool succeeded)
{
	char ib[VSS_ID_STRING_MAX], cb[VSS_ID_STRING_MAX];

	client_begin();
	if (!b || !instance_id || !class_id || !name)
		return client_fail(E_INVALIDARG, "a component is named by its writer and its name");
	return WRITERS_CALL(b, "SetBackupSucceeded", NULL, "ssissb", vss_id_format(instance_id, ib),
			    vss_id_format(class_id, cb), (int32_t)type, logical_path_or_null ?: "", name,
			    (int)succeeded);
}

static vss_hr writer_classes(vss_backup *b, const char *method, const vss_id *class_ids, unsigned n)
{
	sd_bus_message *call = NULL;
	char buf[VSS_ID_STRING_MAX];
	int r;

	client_begin();
	if (!b || (n > 0 && !class_ids))
		return client_fail(E_INVALIDARG, "no classes given");
	r = sd_bus_message_new_method_call(b->bus, &call, VSS_BUS_NAME, b->path, VSS_BUS_BACKUP_WRITERS_IFACE, method);
	if (r >= 0)
		r = sd_bus_message_open_container(call, 'a', "s");
	for (unsigned i = 0; r >= 0 && i < n; i++)
		r = sd_bus_message_append(call, "s", vss_id_format(&class_ids[i], buf));
	if (r >= 0)
		r = sd_bus_message_close_container(call);
	if (r < 0) {
		sd_bus_message_unref(call);
		return client_fail(E_OUTOFMEMORY, "cannot build the %s call", method);
	}
	return client_call_message(b->bus, call, CALL_TIMEOUT_USEC, NULL);
}

vss_hr vss_backup_disable_writer_classes(vss_backup *b, const vss_id *class_ids, unsigned n)
{
	return writer_classes(b, "DisableWriterClasses", class_ids, n);
}

vss_hr vss_backup_enable_writer_classes(vss_backup *b, const vss_id *class_ids, unsigned n)
{
	return writer_classes(b, "EnableWriterClasses", class_ids, n);
}

/* A revert's answer waits for its end: unmounting, the provider's work,
 * mounting again. */
#define REVERT_TIMEOUT_USEC (3600ULL * 1000000ULL)

vss_hr vss_backup_revert_to_snapshot(vss_backup *b, const vss_id *snapshot_id, bool force_unmount)
{
	char buf[VSS_ID_STRING_MAX];

	client_begin();
	if (!b || !snapshot_id)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : "snapshot_id");
	return client_call(b->bus, b->path, VSS_BUS_BACKUP_IFACE, "RevertToSnapshot", REVERT_TIMEOUT_USEC, NULL, "sb",
			   vss_id_format(snapshot_id, buf), (int)force_unmount);
}

vss_hr vss_backup_query_revert_status(vss_backup *b, const char *volume, vss_async **ret)
{
	sd_bus_message *reply;
	vss_hr hr;

	client_begin();
	if (ret)
		*ret = NULL;
	if (!b || !volume || !ret)
		return client_fail(E_INVALIDARG, "%s is NULL", !b ? "b" : !volume ? "volume" : "ret");
	hr = BACKUP_CALL(b, "QueryRevertStatus", &reply, "s", volume);
	if (VSS_FAILED(hr))
		return hr;
	return async_from_reply(b, reply, "QueryRevertStatus", ret);
}
