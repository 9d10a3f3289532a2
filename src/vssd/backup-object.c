/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The requestor's IVssBackupComponents, as a D-Bus object per requestor
 * object (/org/vss/backup/N on the requestor's own connection). Every method
 * checks the state machine first; DoSnapshotSet records the set in the
 * catalog and hands it to the engine.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fd-util.h"
#include "basic/id.h"
#include "basic/log.h"
#include "protocol/bus.h"
#include "providers/mounts.h"
#include "vssd/creation/creation.h"
#include "vssd/creation/freeze.h"
#include "vssd/revert.h"

int backup_check(BackupObject *b, BackupCall call, sd_bus_error *error)
{
	const char *reason;

	if (backup_state_check(b->state, &b->facts, call, &reason) != S_OK)
		return bus_error_set_hr(error, VSS_E_BAD_STATE, "%s: %s (object is %s)", backup_call_to_string(call),
					reason, backup_state_to_string(b->state));
	/* The calls that answer with a new operation. */
	if (call == BC_PREPARE_FOR_BACKUP || call == BC_DO_SNAPSHOT_SET || call == BC_BACKUP_COMPLETE ||
	    call == BC_GATHER_WRITER_METADATA || call == BC_GATHER_WRITER_STATUS)
		return connection_check_objects(b->conn, error);
	return 0;
}

static void set_state(BackupObject *b, BackupState s)
{
	if (b->state == s)
		return;
	log_debug("%s: %s -> %s", b->path, backup_state_to_string(b->state), backup_state_to_string(s));
	b->state = s;
	if (b->manager->slot_owner == b && !backup_state_holds_slot(s))
		b->manager->slot_owner = NULL;
	/* SnapshotSetTimeoutSec runs until DoSnapshotSet or the end of the set. */
	if (s != BS_SET_OPEN && s != BS_PREPARED)
		b->set_timer = sd_event_source_disable_unref(b->set_timer);
}

static void free_members(BackupObject *b)
{
	/* After DoSnapshotSet the job owns the members. */
	for (size_t i = 0; b->members && i < b->facts.n_volumes; i++)
		provider_member_free_fields(&b->members[i]);
	free(b->members);
	b->members = NULL;
	b->facts.n_volumes = 0;
}

static int read_id_arg(const char *s, vss_id *ret, sd_bus_error *error)
{
	if (s[0] == '\0') {
		*ret = VSS_ID_NULL;
		return 0;
	}
	if (VSS_FAILED(vss_id_parse(s, ret)))
		return bus_error_set_hr(error, E_INVALIDARG, "\"%s\" is not an id", s);
	return 0;
}

static int method_initialize_for_backup(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	const char *xml;
	int r;

	r = sd_bus_message_read(msg, "s", &xml);
	if (r < 0)
		return r;
	r = backup_check(b, BC_INITIALIZE_FOR_BACKUP, error);
	if (r < 0)
		return r;
	if (xml[0] != '\0') {
		/* A backup that continues from a document: its context and
		 * backup state, which SetContext and SetBackupState may still
		 * change (docs/RESTORE.md). */
		Bcd doc;

		r = backup_parse_document(xml, &doc, error);
		if (r < 0)
			return r;
		b->context = doc.context;
		b->facts.context_all = false;
		b->facts.writers_context = context_has_writers(doc.context);
		b->backup_type = doc.backup_type;
		b->select_components = doc.select_components;
		b->bootable_system_state = doc.bootable_system_state;
		b->partial_file_support = doc.partial_file_support;
		b->facts.backup_state_set = doc.backup_type != VSS_BT_UNDEFINED;
		bcd_clear(&doc);
	}
	set_state(b, backup_state_next(b->state, BC_INITIALIZE_FOR_BACKUP));
	return sd_bus_reply_method_return(msg, "");
}

static int method_set_context(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	int32_t context;
	vss_hr hr;
	int r;

	r = sd_bus_message_read(msg, "i", &context);
	if (r < 0)
		return r;
	r = backup_check(b, BC_SET_CONTEXT, error);
	if (r < 0)
		return r;
	if (!context_is_valid_for_requestor(context, &hr))
		return bus_error_set_hr(error, hr, "context 0x%x cannot be set by a requestor", (unsigned)context);
	b->context = context;
	b->facts.context_set = true;
	b->facts.context_all = context == VSS_CTX_ALL;
	b->facts.writers_context = context_has_writers(context);
	return sd_bus_reply_method_return(msg, "");
}

static int method_set_backup_state(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	int select_components, bootable, partial;
	int32_t type;
	int r;

	r = sd_bus_message_read(msg, "bbib", &select_components, &bootable, &type, &partial);
	if (r < 0)
		return r;
	r = backup_check(b, BC_SET_BACKUP_STATE, error);
	if (r < 0)
		return r;
	if (type <= VSS_BT_UNDEFINED || type > VSS_BT_OTHER)
		return bus_error_set_hr(error, E_INVALIDARG, "backup type %d is not valid", type);
	b->backup_type = (vss_backup_type)type;
	b->select_components = select_components;
	b->bootable_system_state = bootable;
	b->partial_file_support = partial;
	b->facts.backup_state_set = true;
	return sd_bus_reply_method_return(msg, "");
}

/* A set started and never made would hold the creation slot for as long as
 * its requestor lives: after SnapshotSetTimeoutSec it fails instead. */
static int on_set_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	BackupObject *b = userdata;
	Manager *m = b->manager;

	(void)s, (void)usec;
	log_warning("%s: set %s of pid %d uid %u was started %llu s ago and not made (SnapshotSetTimeoutSec): "
		    "it fails, and the creation slot is free", b->path, ID_TO_STRING(&b->set_id), (int)b->conn->cred.pid,
		    (unsigned)b->conn->cred.uid, (unsigned long long)(m->config.snapshot_set_timeout / USEC_PER_SEC));
	if (b->round_async) {
		AsyncOp *a = b->round_async;

		round_cancel(&b->round, "the set took longer than SnapshotSetTimeoutSec");
		b->round_async = NULL;
		async_op_set_message(a, "the set took longer than SnapshotSetTimeoutSec");
		async_op_complete(a, VSS_E_BAD_STATE);
	}
	room_abandon(b, VSS_E_BAD_STATE, "the set took longer than SnapshotSetTimeoutSec");
	if (b->state == BS_PREPARED)
		writers_abort(b);
	free_members(b);
	set_state(b, BS_FAILED);
	return 0;
}

static int method_start_snapshot_set(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	Manager *m = b->manager;
	char buf[VSS_ID_STRING_MAX];
	int r;

	r = backup_check(b, BC_START_SNAPSHOT_SET, error);
	if (r >= 0)
		r = manager_check_running(m, error);
	if (r < 0)
		return r;
	if (manager_slot_busy(m))
		return bus_error_set_hr(error, VSS_E_SNAPSHOT_SET_IN_PROGRESS,
					"another snapshot set is being created; try again when it is done");
	r = sd_event_add_time_relative(m->event, &b->set_timer, CLOCK_MONOTONIC, m->config.snapshot_set_timeout, 0,
				       on_set_timeout, b);
	if (r < 0)
		return bus_error_set_hr(error, E_OUTOFMEMORY, "cannot time the set: %s", strerror(-r));
	vss_id_generate(&b->set_id);
	set_state(b, backup_state_next(b->state, BC_START_SNAPSHOT_SET));
	m->slot_owner = b;
	log_debug("%s: set %s started", b->path, vss_id_format(&b->set_id, buf));
	return sd_bus_reply_method_return(msg, "s", buf);
}

/* What would make a volume no provider takes snapshotable, for its error. */
static const char *unsupported_hint(const VolumeInfo *v)
{
	bool guest = streq(v->fs_type, "ext4") || streq(v->fs_type, "xfs");

	if (guest && v->source && strncmp(v->source, "/dev/loop", 9) == 0)
		return "its image file is not on a filesystem that can clone it (XFS with reflink, btrfs)";
	if (guest && v->source && strncmp(v->source, "/dev/mapper/", 12) == 0)
		return "LVM logical volumes have no provider yet; keep the filesystem in an image file on "
		       "a reflink filesystem (XFS, btrfs), or use btrfs";
	if (guest)
		return "no provider snapshots plain block devices; keep the filesystem in an image file on a "
		       "reflink filesystem (XFS, btrfs), or use btrfs";
	return "vss snapshots btrfs subvolumes, and ext4 and XFS kept in image files on a reflink filesystem";
}

static vss_hr select_volume(const char *volume, const vss_id *provider, VolumeInfo *ret_info,
                            const provider_ops **ret_ops, sd_bus_error *error)
{
	vss_hr hr;

	hr = volume_resolve(volume, ret_info);
	if (hr == E_INVALIDARG) {
		bus_error_set_hr(error, hr, "%s is not an absolute path", volume);
		return hr;
	}
	if (hr == VSS_E_OBJECT_NOT_FOUND) {
		bus_error_set_hr(error, hr, "%s does not exist", volume);
		return hr;
	}
	if (VSS_FAILED(hr)) {
		log_error("cannot resolve %s: %s", volume, vss_hr_name(hr));
		bus_error_set_hr(error, hr, "cannot read the mount table for %s", volume);
		return hr;
	}
	/* The name is the volume's in the catalog and on the wire: one D-Bus
	 * cannot carry would make every later Query fail. */
	if (!utf8_is_valid(ret_info->path)) {
		bus_error_set_hr(error, VSS_E_VOLUME_NOT_SUPPORTED, "%s resolves to a path that is not valid UTF-8",
				 volume);
		volume_info_clear(ret_info);
		return VSS_E_VOLUME_NOT_SUPPORTED;
	}
	if (path_in_store(ret_info->path)) {
		bus_error_set_hr(error, VSS_E_VOLUME_NOT_SUPPORTED, "%s is in a vss snapshot store (" STORE_NAME
				 "): vss's own snapshots are not volumes", ret_info->path);
		volume_info_clear(ret_info);
		return VSS_E_VOLUME_NOT_SUPPORTED;
	}
	hr = volume_select_provider(ret_info, provider, ret_ops);
	switch (hr) {
	case S_OK:
		return hr;
	case VSS_E_PROVIDER_NOT_REGISTERED:
		bus_error_set_hr(error, hr, "no provider %s is registered", ID_TO_STRING(provider));
		break;
	case VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER:
		bus_error_set_hr(error, hr, "provider %s does not support %s (%s)",
				 provider_find_by_id(provider)->name, ret_info->path, ret_info->fs_type);
		break;
	case VSS_E_VOLUME_NOT_SUPPORTED:
		bus_error_set_hr(error, hr, "no provider supports %s (%s on %s): %s", ret_info->path,
				 ret_info->fs_type, ret_info->source ?: "?", unsupported_hint(ret_info));
		break;
	default:
		bus_error_set_hr(error, hr, "%s is not a volume: neither a mount point nor a volume a provider knows",
				 ret_info->path);
		break;
	}
	volume_info_clear(ret_info);
	return hr;
}

static bool fd_rests_on(int fd, dev_t held)
{
	struct stat st;

	return fd >= 0 && fstat(fd, &st) == 0 && device_rests_on(st.st_dev, held);
}

static bool path_rests_on(const char *path, dev_t held)
{
	dev_t dev;

	return path_device(path, &dev) == 0 && device_rests_on(dev, held);
}

/* Whether vssd writes to the filesystem of fd, or to one on it: held, it
 * would hang. */
static const char *vssd_writes_to(Manager *m, int fd)
{
	dev_t held;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return "an unknown filesystem";
	held = st.st_dev;
	if (path_rests_on(m->state_dir, held))
		return "its catalog";
	if (path_rests_on(m->runtime_dir, held))
		return "its runtime directory";
	if (fstat(STDERR_FILENO, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) &&
	    device_rests_on(st.st_dev, held))
		return "its log";
	return NULL;
}

/* Whether anything a member's steps touch (its volume, image, store, the
 * filesystem it holds) rests on held, another member's held filesystem:
 * with that one frozen, this member's freeze or snapshot would wait on it. */
static bool member_rests_on(const ProviderMember *pm, dev_t held)
{
	return fd_rests_on(pm->volume_fd, held) || fd_rests_on(pm->hold_fd, held) || fd_rests_on(pm->backing_fd, held) ||
	       fd_rests_on(pm->store_root_fd, held);
}

/* Whether two members' images are one file, under whatever names. */
static bool same_image(const ProviderMember *a, const ProviderMember *b)
{
	struct stat x, y;

	return a->backing_fd >= 0 && b->backing_fd >= 0 && fstat(a->backing_fd, &x) == 0 && fstat(b->backing_fd, &y) == 0 &&
	       x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

static bool held_device(const ProviderMember *pm, dev_t *ret)
{
	struct stat st;

	if (pm->hold_fd < 0 || fstat(pm->hold_fd, &st) < 0)
		return false;
	*ret = st.st_dev;
	return true;
}

/* The checks that involve the set as a whole or vssd itself, once the
 * provider has located the new member. */
static int check_member(BackupObject *b, const ProviderMember *pm, sd_bus_error *error)
{
	Manager *m = b->manager;
	const char *what;
	dev_t held = 0, other = 0;

	if (pm->hold_fd >= 0 && (what = vssd_writes_to(m, pm->hold_fd)))
		return bus_error_set_hr(error, VSS_E_VOLUME_NOT_SUPPORTED,
					"%s holds %s of vssd: vssd cannot freeze it", pm->volume, what);
	for (size_t i = 0; i < b->facts.n_volumes; i++) {
		const ProviderMember *o = &b->members[i];
		bool pm_held = held_device(pm, &held), o_held = held_device(o, &other);

		if ((pm->backing_file && o->backing_file && streq(pm->backing_file, o->backing_file)) || same_image(pm, o) ||
		    (pm_held && o_held && held == other))
			return bus_error_set_hr(error, VSS_E_OBJECT_ALREADY_EXISTS,
						"%s is the filesystem (or the image) of %s, already in the set",
						pm->volume, o->volume);
		if ((pm->backing_file && path_is_below(pm->backing_file, o->volume)) ||
		    (o->backing_file && path_is_below(o->backing_file, pm->volume)) ||
		    (o_held && member_rests_on(pm, other)) || (pm_held && member_rests_on(o, held)))
			return bus_error_set_hr(error, VSS_E_NESTED_VOLUME_LIMIT,
						"%s and %s are nested: one lives in an image on the other",
						pm->volume, o->volume);
	}
	if (pm->ops->check_set) {
		const ProviderPolicy policy = { .max_image_nesting = m->config.max_image_nesting };
		ProviderMember *set[b->facts.n_volumes + 1];
		char reason[512] = "";
		int r;

		/* pm is the slot after the set's last member. */
		for (size_t i = 0; i <= b->facts.n_volumes; i++)
			set[i] = &b->members[i];
		r = pm->ops->check_set(set, b->facts.n_volumes + 1, &policy, reason, sizeof(reason));
		if (r < 0)
			return bus_error_set_hr(error, provider_result_to_hr(r), "%s",
						reason[0] ? reason : "the provider refuses this set");
	}
	return 0;
}

static int method_add_to_snapshot_set(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	Manager *m = b->manager;
	const char *volume, *provider_str;
	const provider_ops *ops;
	VolumeInfo vi = { .fd = -1 };
	ProviderMember *pm, *nm;
	char buf[VSS_ID_STRING_MAX];
	vss_id provider;
	uint64_t count;
	int r;

	r = sd_bus_message_read(msg, "ss", &volume, &provider_str);
	if (r < 0)
		return r;
	r = backup_check(b, BC_ADD_TO_SNAPSHOT_SET, error);
	if (r < 0)
		return r;
	if (volume[0] == '\0')
		return bus_error_set_hr(error, E_INVALIDARG, "no volume given");
	r = read_id_arg(provider_str, &provider, error);
	if (r < 0)
		return r;
	if (b->facts.n_volumes >= m->config.max_volumes_per_set)
		return bus_error_set_hr(error, VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED,
					"a set holds at most %u volumes", m->config.max_volumes_per_set);
	/* Being reverted, a volume is not mounted: by the name it had. */
	r = revert_check_volume(m, volume, error);
	if (r < 0)
		return r;
	if (VSS_FAILED(select_volume(volume, &provider, &vi, &ops, error)))
		return -EIO;
	r = revert_check_volume(m, vi.path, error);
	if (r < 0)
		goto out;

	for (size_t i = 0; i < b->facts.n_volumes; i++)
		if (streq(b->members[i].volume, vi.path)) {
			r = bus_error_set_hr(error, VSS_E_OBJECT_ALREADY_EXISTS, "%s is already in the set", vi.path);
			goto out;
		}
	r = catalog_count_volume_snapshots(m->catalog, vi.path, &count);
	if (r < 0) {
		r = bus_error_set_hr(error, VSS_E_UNEXPECTED, "cannot read the catalog");
		goto out;
	}
	if (count >= m->config.max_snapshots_per_volume) {
		r = bus_error_set_hr(error, VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED,
				     "%s already has %llu snapshots, the most allowed; delete old ones first",
				     vi.path, (unsigned long long)count);
		goto out;
	}

	nm = realloc(b->members, sizeof(*nm) * (b->facts.n_volumes + 1));
	if (!nm) {
		r = bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
		goto out;
	}
	b->members = nm;
	pm = &b->members[b->facts.n_volumes];
	provider_member_init(pm);
	pm->ops = ops;
	pm->index = (unsigned)b->facts.n_volumes + 1;
	pm->set_id = b->set_id;
	pm->context = b->context;
	pm->volume = TAKE_PTR(vi.path);
	pm->mount_point = TAKE_PTR(vi.mount_point);
	/* From here the member is this fd, whatever its name comes to mean. */
	pm->volume_fd = TAKE_FD(vi.fd);
	pm->volume_mount_id = vi.mount_id;
	pm->state = VSS_SS_PREPARING;
	vss_id_generate(&pm->snapshot_id);
	r = ops->locate(pm);
	if (r < 0) {
		const char *reason = pm->reason;

		provider_member_free_fields(pm);
		r = bus_error_set_hr(error, provider_result_to_hr(r), "%s provider cannot place a snapshot of %s%s%s",
				     ops->name, volume, reason ? ": " : "", reason ?: "");
		goto out;
	}
	r = check_member(b, pm, error);
	if (r < 0) {
		provider_member_free_fields(pm);
		goto out;
	}
	b->facts.n_volumes++;
	log_debug("%s: added %s (provider %s)", b->path, pm->volume, ops->name);
	r = sd_bus_reply_method_return(msg, "s", vss_id_format(&pm->snapshot_id, buf));
out:
	volume_info_clear(&vi);
	return r;
}

static int method_is_volume_supported(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	const char *volume, *provider_str;
	const provider_ops *ops;
	VolumeInfo vi = { .fd = -1 };
	vss_id provider;
	vss_hr hr;
	int r;

	r = sd_bus_message_read(msg, "ss", &provider_str, &volume);
	if (r < 0)
		return r;
	r = backup_check(b, BC_IS_VOLUME_SUPPORTED, error);
	if (r < 0)
		return r;
	r = read_id_arg(provider_str, &provider, error);
	if (r < 0)
		return r;
	if (volume[0] == '\0')
		return bus_error_set_hr(error, E_INVALIDARG, "no volume given");
	hr = volume_resolve(volume, &vi);
	if (hr == E_INVALIDARG)
		return bus_error_set_hr(error, hr, "%s is not an absolute path", volume);
	if (VSS_FAILED(hr))
		return bus_error_set_hr(error, hr, "%s does not exist", volume);
	hr = volume_select_provider(&vi, &provider, &ops);
	volume_info_clear(&vi);
	if (hr == VSS_E_PROVIDER_NOT_REGISTERED)
		return bus_error_set_hr(error, hr, "no provider %s is registered", provider_str);
	return sd_bus_reply_method_return(msg, "b", hr == S_OK);
}

int backup_reply_with_async(sd_bus_message *msg, BackupObject *b, vss_hr status, AsyncOp **ret,
                            sd_bus_error *error)
{
	AsyncOp *a;
	int r = async_op_new(b->conn, status, &a);

	if (r < 0)
		return bus_error_set_hr(error, E_OUTOFMEMORY, "cannot create the operation: %s", strerror(-r));
	if (ret)
		*ret = a;
	return sd_bus_reply_method_return(msg, "o", a->path);
}

int backup_start_writers_round(sd_bus_message *msg, BackupObject *b, BackupCall call, WriterEvent e,
			       sd_bus_error *error)
{
	AsyncOp *a;
	int r;

	set_state(b, backup_state_next(b->state, call));
	r = backup_reply_with_async(msg, b, VSS_S_ASYNC_PENDING, &a, error);
	if (r >= 0)
		writers_round_for_call(b, e, a);
	return r;
}

/* PrepareForBackup and BackupComplete: an event to the writers, the
 * operation ending with their answers. */
static int writers_call(sd_bus_message *msg, BackupObject *b, BackupCall call, WriterEvent e, sd_bus_error *error)
{
	int r;

	r = backup_check(b, call, error);
	if (r >= 0)
		r = manager_check_running(b->manager, error);
	if (r < 0)
		return r;
	return backup_start_writers_round(msg, b, call, e, error);
}

static int method_prepare_for_backup(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	return writers_call(msg, userdata, BC_PREPARE_FOR_BACKUP, EVENT_PREPARE_BACKUP, error);
}

static int method_backup_complete(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	return writers_call(msg, userdata, BC_BACKUP_COMPLETE, EVENT_BACKUP_COMPLETE, error);
}

/* The set is recorded and handed to a new job; the requestor gets the
 * operation that ends with it. */
static int cut_set(sd_bus_message *msg, BackupObject *b, sd_bus_error *error)
{
	Creation *cr;
	bool members_gone = false;
	int r;

	r = manager_check_running(b->manager, error);
	if (r >= 0)
		r = creation_start(b, &cr, &members_gone, error);
	if (r < 0) {
		if (members_gone)
			set_state(b, BS_FAILED);
		return r;
	}
	set_state(b, backup_state_next(b->state, BC_DO_SNAPSHOT_SET));
	return backup_reply_with_async(msg, b, VSS_S_ASYNC_PENDING, &cr->async, error);
}

/* Room was made while the loop served others: DoSnapshotSet goes on, and
 * is answered as it would have been at once. */
static void on_room_made(BackupObject *b, sd_bus_message *call, const sd_bus_error *room_error)
{
	_cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
	int r;

	if (room_error) {
		(void)sd_bus_reply_method_error(call, room_error);
		return;
	}
	r = cut_set(call, b, &error);
	if (r < 0)
		(void)sd_bus_reply_method_errno(call, r, &error);
}

static int method_do_snapshot_set(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	int r;

	r = backup_check(b, BC_DO_SNAPSHOT_SET, error);
	if (r >= 0)
		r = manager_check_running(b->manager, error);
	if (r >= 0)
		r = room_make(b, msg, on_room_made, error);
	if (r < 0)
		return r;
	/* Answered once room is made. */
	if (r > 0)
		return 1;
	return cut_set(msg, b, error);
}

static int method_abort_backup(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	int r;

	r = backup_check(b, BC_ABORT_BACKUP, error);
	if (r < 0)
		return r;
	creation_abandon(b);
	room_abandon(b, VSS_S_ASYNC_CANCELLED, "AbortBackup came before the set was cut");
	/* Writers hear of it, possibly not for the first time: OnAbort must
	 * bear that. Before PrepareForBackup they have nothing to undo. */
	if (b->state != BS_INITIALIZED && b->state != BS_COMPLETE)
		writers_abort(b);
	set_state(b, backup_state_next(b->state, BC_ABORT_BACKUP));
	return sd_bus_reply_method_return(msg, "");
}

static int list_visible(BackupObject *b, const CatalogFilter *f, CatalogSnapshot **ret, size_t *ret_n,
                        sd_bus_error *error)
{
	CatalogSnapshot *all;
	size_t n, k = 0;
	int r;

	r = catalog_list_snapshots(b->manager->catalog, f, &all, &n);
	if (r < 0)
		return bus_error_set_hr(error, VSS_E_UNEXPECTED, "cannot read the catalog: %s", strerror(-r));
	/* A requestor sees the snapshots of its own context (VSS_CTX_ALL: all). */
	for (size_t i = 0; i < n; i++) {
		if (context_matches(b->context, all[i].context))
			all[k++] = all[i];
		else
			catalog_snapshot_clear(&all[i]);
	}
	*ret = all;
	*ret_n = k;
	return 0;
}

static int method_query(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	const char *query_id;
	int32_t queried, returned;
	vss_id id;
	int r;

	r = sd_bus_message_read(msg, "sii", &query_id, &queried, &returned);
	if (r < 0)
		return r;
	r = backup_check(b, BC_QUERY, error);
	if (r < 0)
		return r;
	r = read_id_arg(query_id, &id, error);
	if (r < 0)
		return r;
	if (!vss_id_is_null(&id) || queried != VSS_OBJECT_NONE)
		return bus_error_set_hr(error, E_INVALIDARG, "Query takes the null id and VSS_OBJECT_NONE");
	if (returned != VSS_OBJECT_SNAPSHOT && returned != VSS_OBJECT_PROVIDER)
		return bus_error_set_hr(error, E_INVALIDARG, "Query returns snapshots or providers");

	r = sd_bus_message_new_method_return(msg, &reply);
	if (r >= 0)
		r = sd_bus_message_open_container(reply, 'a', "a{sv}");
	if (r < 0)
		return r;
	if (returned == VSS_OBJECT_SNAPSHOT) {
		CatalogSnapshot *snaps;
		size_t n;

		r = list_visible(b, NULL, &snaps, &n, error);
		if (r < 0)
			return r;
		for (size_t i = 0; r >= 0 && i < n; i++)
			r = bus_append_snapshot_prop(reply, &snaps[i].prop);
		catalog_snapshots_free(snaps, n);
	} else {
		size_t n;
		const provider_ops *const *all = provider_registry(&n);

		for (size_t i = 0; r >= 0 && i < n; i++) {
			vss_provider_prop p = {
				.provider_id = all[i]->id,
				.provider_name = (char *)all[i]->name,
				.provider_type = all[i]->type,
				.provider_version = (char *)all[i]->version_string,
				.provider_version_id = all[i]->version_id,
				.class_id = all[i]->class_id,
			};
			r = bus_append_provider_prop(reply, &p);
		}
	}
	if (r >= 0)
		r = sd_bus_message_close_container(reply);
	if (r < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
}

/* QuerySnapshots answers in pages, so that no reply grows with the
 * catalog: with 100,000 snapshots one Query reply is some 70 MB, which
 * vssd holds while it is sent and the client while it reads it. */
#define QUERY_PAGE_MAX 1000

typedef struct QueryPage {
	int32_t context;
	BusSnapshotPage page;
} QueryPage;

/* Straight from SQLite's row into the page: no CatalogSnapshot, no copy of
 * each string on the heap. */
static int query_row(const CatalogRow *row, void *userdata)
{
	QueryPage *q = userdata;
	vss_snapshot_prop p = {
		.snapshot_id = row->snapshot_id,
		.snapshot_set_id = row->set_id,
		.snapshots_count = row->snapshots_count,
		.snapshot_device_object = (char *)row->strings[0],
		.original_volume_name = (char *)row->strings[1],
		.originating_machine = (char *)row->strings[2],
		.service_machine = (char *)row->strings[3],
		.exposed_name = (char *)row->strings[4],
		.exposed_path = (char *)row->strings[5],
		.provider_id = row->provider_id,
		.snapshot_attributes = row->attributes,
		.creation_timestamp = row->created_us,
		.status = (vss_snapshot_state)row->status,
		.hold_window_us = row->hold_window_us,
		.consistency = (char *)row->strings[6],
	};

	/* Only finished sets are listed (the filter), and only those of
	 * contexts this object sees. */
	if (!context_matches(q->context, row->context))
		return 0;
	return bus_snapshot_page_add(&q->page, &p);
}

static int method_query_snapshots(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	const char *set_str, *volume, *after_str;
	char next[CATALOG_POSITION_MAX] = "";
	QueryPage q = { .context = b->context };
	CatalogPosition after, last;
	bool more;
	uint32_t limit;
	vss_id set;
	int r;

	r = sd_bus_message_read(msg, "sssu", &set_str, &volume, &after_str, &limit);
	if (r < 0)
		return r;
	r = backup_check(b, BC_QUERY, error);
	if (r < 0)
		return r;
	r = read_id_arg(set_str, &set, error);
	if (r < 0)
		return r;
	if (after_str[0] && catalog_position_parse(after_str, &after) < 0)
		return bus_error_set_hr(error, E_INVALIDARG, "\"%s\" is not a position QuerySnapshots returned",
					after_str);
	if (limit == 0 || limit > QUERY_PAGE_MAX)
		limit = QUERY_PAGE_MAX;
	r = catalog_list_rows(b->manager->catalog,
			      &(CatalogFilter){
				      .set_id = vss_id_is_null(&set) ? NULL : &set,
				      .volume = volume[0] ? volume : NULL,
				      .after = after_str[0] ? &after : NULL,
				      .limit = limit,
			      },
			      query_row, &q, &last, &more);
	if (r < 0) {
		bus_snapshot_page_clear(&q.page);
		if (r == -ENOMEM)
			return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
		return bus_error_set_hr(error, VSS_E_UNEXPECTED, "cannot read the catalog: %s", strerror(-r));
	}
	/* A full page may have more after it; the position is the last row
	 * read, whether or not this context sees it. */
	if (more)
		catalog_position_format(&last, next);
	r = sd_bus_message_new_method_return(msg, &reply);
	if (r >= 0)
		r = bus_append_snapshot_page(reply, next, &q.page);
	bus_snapshot_page_clear(&q.page);
	if (r < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
}

static int method_delete_snapshots(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	const char *id_str;
	int32_t type, deleted = 0;
	int force;
	CatalogSnapshot *snaps;
	size_t n;
	vss_id id, failed = VSS_ID_NULL;
	char msgbuf[512] = "", buf[VSS_ID_STRING_MAX];
	vss_hr hr;
	int r;

	r = sd_bus_message_read(msg, "sib", &id_str, &type, &force);
	if (r < 0)
		return r;
	r = backup_check(b, BC_DELETE_SNAPSHOTS, error);
	if (r < 0)
		return r;
	if (VSS_FAILED(vss_id_parse(id_str, &id)))
		return bus_error_set_hr(error, E_INVALIDARG, "\"%s\" is not an id", id_str);
	if (type != VSS_OBJECT_SNAPSHOT && type != VSS_OBJECT_SNAPSHOT_SET)
		return bus_error_set_hr(error, E_INVALIDARG, "DeleteSnapshots deletes a snapshot or a set");

	r = list_visible(b,
			 &(CatalogFilter){
				 .snapshot_id = type == VSS_OBJECT_SNAPSHOT ? &id : NULL,
				 .set_id = type == VSS_OBJECT_SNAPSHOT_SET ? &id : NULL,
			 },
			 &snaps, &n, error);
	if (r < 0)
		return r;
	if (n == 0) {
		catalog_snapshots_free(snaps, n);
		return bus_error_set_hr(error, VSS_E_OBJECT_NOT_FOUND, "no finished %s has id %s in this context",
					type == VSS_OBJECT_SNAPSHOT ? "snapshot" : "snapshot set", id_str);
	}
	hr = manager_delete_snapshots(b->manager, snaps, n, &deleted, &failed, msgbuf, sizeof(msgbuf));
	catalog_snapshots_free(snaps, n);
	return sd_bus_reply_method_return(msg, "iiss", hr, deleted, vss_id_format(&failed, buf), msgbuf);
}

/* The one finished snapshot with this id, whatever the context (as VSS's
 * ExposeSnapshot takes any). */
static int find_snapshot(BackupObject *b, const char *id_str, CatalogSnapshot **ret, sd_bus_error *error)
{
	CatalogSnapshot *snaps = NULL;
	size_t n = 0;
	vss_id id;
	int r;

	if (VSS_FAILED(vss_id_parse(id_str, &id)))
		return bus_error_set_hr(error, E_INVALIDARG, "\"%s\" is not an id", id_str);
	r = catalog_list_snapshots(b->manager->catalog, &(CatalogFilter){ .snapshot_id = &id }, &snaps, &n);
	if (r < 0)
		return bus_error_set_hr(error, VSS_E_UNEXPECTED, "cannot read the catalog: %s", strerror(-r));
	if (n == 0) {
		free(snaps);
		return bus_error_set_hr(error, VSS_E_OBJECT_NOT_FOUND, "no finished snapshot has id %s", id_str);
	}
	*ret = snaps;
	return 0;
}

static int method_get_snapshot_properties(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	CatalogSnapshot *s = NULL;
	const char *id;
	int r;

	r = sd_bus_message_read(msg, "s", &id);
	if (r < 0)
		return r;
	r = backup_check(b, BC_GET_SNAPSHOT_PROPERTIES, error);
	if (r < 0)
		return r;
	r = find_snapshot(b, id, &s, error);
	if (r < 0)
		return r;
	r = sd_bus_message_new_method_return(msg, &reply);
	if (r >= 0)
		r = bus_append_snapshot_prop(reply, &s->prop);
	catalog_snapshots_free(s, 1);
	if (r < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
}

static int method_expose_snapshot(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	const char *id, *path_from_root, *expose;
	_cleanup_free_ char *exposed = NULL;
	CatalogSnapshot *s = NULL;
	char reason[512] = "";
	int32_t attributes;
	vss_hr hr;
	int r;

	r = sd_bus_message_read(msg, "ssis", &id, &path_from_root, &attributes, &expose);
	if (r < 0)
		return r;
	r = backup_check(b, BC_EXPOSE_SNAPSHOT, error);
	if (r < 0)
		return r;
	if (attributes != VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY || path_from_root[0] != '\0')
		return bus_error_set_hr(error, E_INVALIDARG,
					"vss exposes snapshots locally only (VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY, "
					"no path from root)");
	r = find_snapshot(b, id, &s, error);
	if (r < 0)
		return r;
	hr = snapshot_expose(b->manager, s, expose, &b->conn->cred, &exposed, reason, sizeof(reason));
	if (VSS_SUCCEEDED(hr))
		backup_note_set_used(b, &s->prop.snapshot_set_id);
	catalog_snapshots_free(s, 1);
	if (VSS_FAILED(hr))
		return bus_error_set_hr(error, hr, "%s", reason);
	return sd_bus_reply_method_return(msg, "s", exposed);
}

static int method_unexpose_snapshot(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	CatalogSnapshot *s = NULL;
	char reason[512] = "";
	const char *id;
	vss_hr hr;
	int r;

	r = sd_bus_message_read(msg, "s", &id);
	if (r < 0)
		return r;
	r = backup_check(b, BC_UNEXPOSE_SNAPSHOT, error);
	if (r < 0)
		return r;
	r = find_snapshot(b, id, &s, error);
	if (r < 0)
		return r;
	hr = snapshot_unexpose(b->manager, s, reason, sizeof(reason));
	catalog_snapshots_free(s, 1);
	if (VSS_FAILED(hr))
		return bus_error_set_hr(error, hr, "%s", reason);
	return sd_bus_reply_method_return(msg, "");
}

/* A volume named by a requestor, as the catalog keeps it. */
static int canonical_volume(const char *volume, char **ret, sd_bus_error *error)
{
	const provider_ops *ops;
	VolumeInfo vi = { .fd = -1 };

	if (VSS_FAILED(select_volume(volume, NULL, &vi, &ops, error)))
		return -EIO;
	*ret = TAKE_PTR(vi.path);
	volume_info_clear(&vi);
	return 0;
}

static int method_query_diff_areas(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	_cleanup_free_ char *canonical = NULL;
	DiffArea *areas = NULL;
	const char *volume;
	size_t n = 0;
	int r;

	r = sd_bus_message_read(msg, "s", &volume);
	if (r < 0)
		return r;
	r = backup_check(b, BC_QUERY_DIFF_AREAS, error);
	if (r < 0)
		return r;
	if (volume[0] != '\0') {
		r = canonical_volume(volume, &canonical, error);
		if (r < 0)
			return r;
	}
	r = storage_query(b->manager, canonical, &areas, &n);
	if (r < 0)
		return bus_error_set_hr(error, VSS_E_UNEXPECTED, "cannot measure shadow storage: %s", strerror(-r));
	r = sd_bus_message_new_method_return(msg, &reply);
	if (r >= 0)
		r = sd_bus_message_open_container(reply, 'a', "(ssxxx)");
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = sd_bus_message_append(reply, "(ssxxx)", areas[i].volume, areas[i].storage_volume ?: "",
					  areas[i].maximum, areas[i].allocated, areas[i].used);
	if (r >= 0)
		r = sd_bus_message_close_container(reply);
	diff_areas_free(areas, n);
	if (r < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
}

static int method_change_diff_area_maximum_size(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	_cleanup_free_ char *canonical = NULL;
	char reason[512] = "";
	const char *volume;
	int64_t maximum;
	vss_hr hr;
	int r;

	r = sd_bus_message_read(msg, "sx", &volume, &maximum);
	if (r < 0)
		return r;
	r = backup_check(b, BC_CHANGE_DIFF_AREA_MAXIMUM_SIZE, error);
	if (r < 0)
		return r;
	/* As vssadmin's /maxsize: at least 1 MB, or unbounded (-1). */
	if (maximum != -1 && maximum < (1 << 20))
		return bus_error_set_hr(error, E_INVALIDARG, "a maximum is at least 1 MiB (or -1, unbounded)");
	r = canonical_volume(volume, &canonical, error);
	if (r < 0)
		return r;
	hr = storage_set_maximum(b->manager, canonical, maximum, reason, sizeof(reason));
	if (VSS_FAILED(hr))
		return bus_error_set_hr(error, hr, "%s", reason);
	return sd_bus_reply_method_return(msg, "");
}

static int method_get_diff_area_maximum_size(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;
	_cleanup_free_ char *canonical = NULL;
	const char *volume;
	int64_t maximum = -1;
	int r;

	r = sd_bus_message_read(msg, "s", &volume);
	if (r < 0)
		return r;
	r = backup_check(b, BC_QUERY_DIFF_AREAS, error);
	if (r < 0)
		return r;
	r = canonical_volume(volume, &canonical, error);
	if (r < 0)
		return r;
	r = catalog_storage_maximum(b->manager->catalog, canonical, &maximum);
	if (r < 0)
		return bus_error_set_hr(error, VSS_E_UNEXPECTED, "cannot read the catalog: %s", strerror(-r));
	return sd_bus_reply_method_return(msg, "x", maximum);
}

static int method_release(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	(void)error;
	backup_object_free(userdata);
	return sd_bus_reply_method_return(msg, "");
}

static int property_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;

	(void)bus, (void)path, (void)interface, (void)property, (void)error;
	return sd_bus_message_append(reply, "s", backup_state_to_string(b->state));
}

static int property_context(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;

	(void)bus, (void)path, (void)interface, (void)property, (void)error;
	return sd_bus_message_append(reply, "i", b->context);
}

static int property_set_id(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	BackupObject *b = userdata;

	(void)bus, (void)path, (void)interface, (void)property, (void)error;
	return bus_append_id(reply, &b->set_id);
}

static const sd_bus_vtable backup_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_PROPERTY("State", "s", property_state, 0, 0),
	SD_BUS_PROPERTY("Context", "i", property_context, 0, 0),
	SD_BUS_PROPERTY("SnapshotSetId", "s", property_set_id, 0, 0),
	SD_BUS_METHOD("InitializeForBackup", "s", "", method_initialize_for_backup, 0),
	SD_BUS_METHOD("SetContext", "i", "", method_set_context, 0),
	SD_BUS_METHOD("SetBackupState", "bbib", "", method_set_backup_state, 0),
	SD_BUS_METHOD("StartSnapshotSet", "", "s", method_start_snapshot_set, 0),
	SD_BUS_METHOD("AddToSnapshotSet", "ss", "s", method_add_to_snapshot_set, 0),
	SD_BUS_METHOD("IsVolumeSupported", "ss", "b", method_is_volume_supported, 0),
	SD_BUS_METHOD("PrepareForBackup", "", "o", method_prepare_for_backup, 0),
	SD_BUS_METHOD("DoSnapshotSet", "", "o", method_do_snapshot_set, 0),
	SD_BUS_METHOD("AbortBackup", "", "", method_abort_backup, 0),
	SD_BUS_METHOD("BackupComplete", "", "o", method_backup_complete, 0),
	SD_BUS_METHOD("GetSnapshotProperties", "s", "a{sv}", method_get_snapshot_properties, 0),
	SD_BUS_METHOD("Query", "sii", "aa{sv}", method_query, 0),
	SD_BUS_METHOD("QuerySnapshots", "sssu", BUS_SNAPSHOT_PAGE_SIGNATURE, method_query_snapshots, 0),
	SD_BUS_METHOD("DeleteSnapshots", "sib", "iiss", method_delete_snapshots, 0),
	SD_BUS_METHOD("ExposeSnapshot", "ssis", "s", method_expose_snapshot, 0),
	SD_BUS_METHOD("UnexposeSnapshot", "s", "", method_unexpose_snapshot, 0),
	SD_BUS_METHOD("QueryDiffAreas", "s", "a(ssxxx)", method_query_diff_areas, 0),
	SD_BUS_METHOD("ChangeDiffAreaMaximumSize", "sx", "", method_change_diff_area_maximum_size, 0),
	SD_BUS_METHOD("GetDiffAreaMaximumSize", "s", "x", method_get_diff_area_maximum_size, 0),
	SD_BUS_METHOD("Release", "", "", method_release, 0),
	/* revert.c */
	SD_BUS_METHOD("RevertToSnapshot", "sb", "", method_revert_to_snapshot, 0),
	SD_BUS_METHOD("QueryRevertStatus", "s", "o", method_query_revert_status, 0),
	SD_BUS_VTABLE_END,
};

int backup_object_new(Connection *c, BackupObject **ret)
{
	BackupObject *b = calloc(1, sizeof(*b));
	int r;

	if (!b)
		return -ENOMEM;
	b->manager = c->manager;
	b->conn = c;
	b->state = BS_NEW;
	b->context = VSS_CTX_BACKUP;
	b->facts.writers_context = context_has_writers(VSS_CTX_BACKUP);
	object_path(c->manager, VSS_BUS_BACKUP_PREFIX, b->path);
	r = sd_bus_add_object_vtable(c->bus, &b->slot, b->path, VSS_BUS_BACKUP_IFACE, backup_vtable, b);
	if (r >= 0)
		r = sd_bus_add_object_vtable(c->bus, &b->writers_slot, b->path, VSS_BUS_BACKUP_WRITERS_IFACE,
					     backup_writers_vtable, b);
	if (r >= 0)
		r = sd_bus_add_object_vtable(c->bus, &b->schedules_slot, b->path, VSS_BUS_BACKUP_SCHEDULES_IFACE,
					     backup_schedules_vtable, b);
	if (r >= 0)
		r = sd_bus_add_object_vtable(c->bus, &b->restore_slot, b->path, VSS_BUS_BACKUP_RESTORE_IFACE,
					     backup_restore_vtable, b);
	if (r < 0) {
		sd_bus_slot_unref(b->slot);
		sd_bus_slot_unref(b->writers_slot);
		sd_bus_slot_unref(b->schedules_slot);
		sd_bus_slot_unref(b->restore_slot);
		free(b);
		return r;
	}
	LIST_PREPEND(backups, c->backups, b);
	*ret = b;
	return 0;
}

BackupObject *backup_object_free(BackupObject *b)
{
	Manager *m;

	if (!b)
		return NULL;
	m = b->manager;
	/* A requestor gone between PrepareForBackup and the end of its set
	 * leaves its writers prepared or frozen: they are told to abort. */
	if (b->state == BS_PREPARED || b->state == BS_CREATING)
		writers_abort(b);
	/* Released (or its requestor gone) while its set is being cut: the
	 * set is not kept. */
	if (m->creation && m->creation->owner == b) {
		creation_abandon(b);
		m->creation->owner = NULL;
		creation_release_phase(m->creation);
	}
	revert_abandon(b);
	room_abandon(b, m->stopping ? VSS_E_UNEXPECTED : VSS_E_BAD_STATE,
		     m->stopping ? "vssd is stopping" : "the object was released before its set was cut");
	if (b->round_async) {
		async_op_complete(b->round_async, m->stopping ? VSS_E_UNEXPECTED : VSS_S_ASYNC_CANCELLED);
		b->round_async = NULL;
	}
	/* Releasing the object is the end of the backup for its writers. */
	writers_shutdown(b);
	participants_free(b);
	components_free(b);
	strv_free(b->set_volumes);
	free(b->disabled_classes);
	free(b->enabled_classes);
	if (m->slot_owner == b)
		m->slot_owner = NULL;
	sd_event_source_disable_unref(b->set_timer);
	if (b->set_created && context_auto_release(b->context))
		manager_delete_set(m, &b->set_id, "its requestor released it (auto-release context)");
	free_members(b);
	LIST_REMOVE(backups, b->conn->backups, b);
	backup_schedules_free(b);
	sd_bus_slot_unref(b->slot);
	sd_bus_slot_unref(b->writers_slot);
	sd_bus_slot_unref(b->schedules_slot);
	sd_bus_slot_unref(b->restore_slot);
	bcd_clear(b->restore);
	free(b->restore);
	free(b);
	return NULL;
}

void backup_object_set_state(BackupObject *b, BackupState s)
{
	set_state(b, s);
}
