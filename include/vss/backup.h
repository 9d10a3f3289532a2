/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VSS_BACKUP_H
#define VSS_BACKUP_H

/*
 * vss_backup: IVssBackupComponents, the requestor API.
 *
 * One object serves one backup, following the sequence of
 * docs/STATE-MACHINE.md; a call out of that order returns VSS_E_BAD_STATE.
 * The object lives in vssd, which decides every call from the caller's
 * credentials: the caller must be root or a member of the backup-operators
 * group configured in vssd.conf (default "backup"), else E_ACCESSDENIED.
 *
 * The library finds vssd at $VSS_SOCKET, else at VSS_DEFAULT_SOCKET. An object
 * is not thread-safe: use it from one thread at a time.
 *
 * Results: every function returns a vss_hr; outputs are the last arguments
 * and are written only on success; a NULL output pointer gives E_INVALIDARG.
 * If vssd cannot be reached, or the connection is lost, the result is
 * VSS_E_UNEXPECTED and vss_last_error_message() says why.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vss/async.h>
#include <vss/hresult.h>
#include <vss/types.h>
#include <vss/writer.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VSS_DEFAULT_SOCKET "/run/vss/vssd.sock"

/* At most this many volumes in one set (vssd may be configured lower). */
#define VSS_MAX_VOLUMES_PER_SET 64

typedef struct vss_backup vss_backup;

/**
 * vss_create_backup_components() - connect to vssd and create a backup object.
 * @ret: the new object; release it with vss_backup_release().
 *
 * Return: S_OK; E_INVALIDARG when @ret is NULL; E_ACCESSDENIED when the
 * caller lacks backup privilege; E_OUTOFMEMORY; VSS_E_UNEXPECTED when vssd
 * cannot be reached.
 */
vss_hr vss_create_backup_components(vss_backup **ret);

/**
 * vss_backup_release() - release the object and close its connection.
 * @b: the object; NULL is accepted.
 *
 * Snapshots made in an auto-release context (VSS_CTX_BACKUP,
 * VSS_CTX_FILE_SHARE_BACKUP) are deleted; an unfinished set is aborted and
 * the system-wide creation slot is freed. vssd does the same when the
 * connection drops, so a crashed requestor leaves nothing behind.
 *
 * Return: S_OK.
 */
vss_hr vss_backup_release(vss_backup *b);

/**
 * vss_backup_initialize_for_backup() - start a backup; the first call.
 * @b: the object.
 * @xml_or_null: a Backup Components Document to import a transportable set;
 *               vss makes no transportable sets, so it must be NULL.
 *
 * Return: S_OK; VSS_E_BAD_STATE when already initialized;
 * VSS_E_INVALID_XML_DOCUMENT when @xml_or_null is not NULL.
 */
vss_hr vss_backup_initialize_for_backup(vss_backup *b, const char *xml_or_null);

/**
 * vss_backup_set_context() - choose the kind of snapshots to make.
 * @b: the object.
 * @context: a VSS_CTX_* value, optionally ORed with the attribute bits a
 *           requestor may set (NO_AUTORECOVERY, NOT_TRANSACTED,
 *           ROLLBACK_RECOVERY, TXF_RECOVERY, DIFFERENTIAL, PLEX).
 *
 * Once only, after initialize and before start_snapshot_set. The default is
 * VSS_CTX_BACKUP. VSS_CTX_ALL makes an object that can query and delete
 * snapshots of every context but cannot create a set.
 *
 * Return: S_OK; VSS_E_BAD_STATE out of order; E_INVALIDARG for an unknown
 * context or a bit the requestor may not set; VSS_E_UNSUPPORTED_CONTEXT for
 * VSS_VOLSNAP_ATTR_TRANSPORTABLE (transportable sets need a hardware
 * provider).
 */
vss_hr vss_backup_set_context(vss_backup *b, int32_t context);

/**
 * vss_backup_set_backup_state() - describe the backup to writers.
 * @b: the object.
 * @select_components: whether components are selected explicitly.
 * @bootable_system_state: whether the system state is backed up.
 * @backup_type: a VSS_BT_* value other than VSS_BT_UNDEFINED.
 * @partial_file_support: whether the requestor can back up parts of files.
 *
 * Return: S_OK; VSS_E_BAD_STATE when not initialized or after
 * prepare_for_backup; E_INVALIDARG for a bad @backup_type.
 */
vss_hr vss_backup_set_backup_state(vss_backup *b, bool select_components,
                                   bool bootable_system_state,
                                   vss_backup_type backup_type,
                                   bool partial_file_support);

/**
 * vss_backup_start_snapshot_set() - open a new, empty snapshot set.
 * @b: the object.
 * @ret_set_id: the set's id.
 *
 * Takes the system-wide creation slot until do_snapshot_set ends, or the
 * object is aborted or released.
 *
 * Return: S_OK; VSS_E_BAD_STATE out of order;
 * VSS_E_SNAPSHOT_SET_IN_PROGRESS when another creation holds the slot.
 */
vss_hr vss_backup_start_snapshot_set(vss_backup *b, vss_id *ret_set_id);

/**
 * vss_backup_add_to_snapshot_set() - add a volume to the open set.
 * @b: the object.
 * @volume: the volume's path: a mount point, or a btrfs subvolume.
 * @provider_or_null: a provider id, or NULL (or the null id) to let vss pick.
 * @ret_snapshot_id: the id the volume's snapshot will have.
 *
 * Return: S_OK; VSS_E_BAD_STATE when no set is open;
 * E_INVALIDARG for a NULL @volume;
 * VSS_E_OBJECT_NOT_FOUND when @volume does not exist or is not a volume;
 * VSS_E_OBJECT_ALREADY_EXISTS when it is already in the set;
 * VSS_E_VOLUME_NOT_SUPPORTED when no provider supports it;
 * VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER when the named provider does not;
 * VSS_E_PROVIDER_NOT_REGISTERED for an unknown provider id;
 * VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED when the set is full;
 * VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED when the volume already has the
 * most snapshots allowed.
 */
vss_hr vss_backup_add_to_snapshot_set(vss_backup *b, const char *volume,
                                      const vss_id *provider_or_null,
                                      vss_id *ret_snapshot_id);

/**
 * vss_backup_is_volume_supported() - whether a volume can be snapshotted.
 * @b: the object (initialized).
 * @provider_or_null: ask this provider, or NULL for any provider.
 * @volume: the volume's path.
 * @ret_supported: the answer.
 *
 * Return: S_OK (with false for a path that is no volume or that no provider
 * supports); VSS_E_BAD_STATE before initialize; VSS_E_PROVIDER_NOT_REGISTERED
 * for an unknown provider id; VSS_E_OBJECT_NOT_FOUND when @volume does not
 * exist.
 */
vss_hr vss_backup_is_volume_supported(vss_backup *b,
                                      const vss_id *provider_or_null,
                                      const char *volume, bool *ret_supported);

/**
 * vss_backup_prepare_for_backup() - tell writers a backup is coming.
 * @b: the object, with a set open and set_backup_state called.
 * @ret: the operation; release it with vss_async_release().
 *
 * Only in contexts with writers (VSS_CTX_BACKUP, APP_ROLLBACK,
 * CLIENT_ACCESSIBLE_WRITERS).
 *
 * Return: S_OK; VSS_E_BAD_STATE out of order or in a writer-less context.
 */
vss_hr vss_backup_prepare_for_backup(vss_backup *b, vss_async **ret);

/**
 * vss_backup_do_snapshot_set() - commit every snapshot of the set at once.
 * @b: the object, with a set holding at least one volume.
 * @ret: the operation; its status gives the outcome.
 *
 * The set is all or nothing: on any failure every member is aborted and no
 * snapshot of it remains. The creation slot is freed when it ends.
 *
 * Return: S_OK when the operation started; VSS_E_BAD_STATE out of order.
 * Through vss_async_query_status(): VSS_S_ASYNC_FINISHED, or
 * VSS_E_INSUFFICIENT_STORAGE, VSS_E_PROVIDER_VETO,
 * VSS_E_UNEXPECTED_PROVIDER_ERROR, VSS_E_FLUSH_WRITES_TIMEOUT,
 * VSS_E_HOLD_WRITES_TIMEOUT, VSS_E_REBOOT_REQUIRED, VSS_E_UNEXPECTED,
 * VSS_S_ASYNC_CANCELLED.
 */
vss_hr vss_backup_do_snapshot_set(vss_backup *b, vss_async **ret);

/**
 * vss_backup_abort_backup() - stop the backup.
 * @b: the object.
 *
 * Aborts an open set, freeing the creation slot. While do_snapshot_set runs
 * it cancels it if the commit has not started; a set that is completed anyway
 * is deleted, since its requestor gave it up. After a finished or failed set
 * it marks the backup aborted (auto-release snapshots go on release). With
 * nothing in progress (right after initialize, or after backup_complete) it
 * does nothing.
 *
 * Return: S_OK; VSS_E_BAD_STATE before initialize.
 */
vss_hr vss_backup_abort_backup(vss_backup *b);

/**
 * vss_backup_backup_complete() - tell writers the backup is done.
 * @b: the object, after a successful do_snapshot_set, in a writer context.
 * @ret: the operation.
 *
 * Return: S_OK; VSS_E_BAD_STATE otherwise.
 */
vss_hr vss_backup_backup_complete(vss_backup *b, vss_async **ret);

/**
 * vss_backup_get_snapshot_properties() - describe one finished snapshot.
 * @b: the object (initialized).
 * @snapshot_id: the snapshot.
 * @ret_prop: filled in; release with vss_free_snapshot_properties().
 *
 * Return: S_OK; VSS_E_OBJECT_NOT_FOUND when no finished snapshot has this id;
 * VSS_E_BAD_STATE before initialize; E_INVALIDARG for NULL arguments.
 */
vss_hr vss_backup_get_snapshot_properties(vss_backup *b,
                                          const vss_id *snapshot_id,
                                          vss_snapshot_prop *ret_prop);

/**
 * vss_backup_query() - list finished snapshots or registered providers.
 * @b: the object (initialized).
 * @query_id_or_null: must be NULL or the null id (as in VSS).
 * @queried_type: must be VSS_OBJECT_NONE.
 * @returned_type: VSS_OBJECT_SNAPSHOT or VSS_OBJECT_PROVIDER.
 * @ret_props: a new array; release with vss_free_object_props().
 * @ret_count: its length (may be 0).
 *
 * Snapshots are those of the object's context only; an object set to
 * VSS_CTX_ALL sees every context.
 *
 * Return: S_OK; VSS_E_BAD_STATE before initialize; E_INVALIDARG otherwise.
 */
vss_hr vss_backup_query(vss_backup *b, const vss_id *query_id_or_null,
                        vss_object_type queried_type,
                        vss_object_type returned_type,
                        vss_object_prop **ret_props, size_t *ret_count);

/**
 * vss_backup_query_snapshots() - list finished snapshots, filtered by vssd.
 * @b: the object (initialized).
 * @set_id_or_null: only this set's snapshots (NULL or the null id: any set).
 * @volume_or_null: only this volume's, named by its canonical path as the
 *     snapshots record it (original_volume_name); NULL: any volume.
 * @ret_props: a new array of VSS_OBJECT_SNAPSHOT entries; release with
 *     vss_free_object_props().
 * @ret_count: its length (may be 0).
 *
 * What vss_backup_query() returns for snapshots, narrowed in vssd's catalog
 * (on its indexes) rather than by the caller, oldest set first. Both read
 * vssd's list in pages of at most 1000 snapshots, so that no message grows
 * with the catalog; a snapshot deleted or made while the pages are read may
 * be missing or present, but none is listed twice.
 *
 * Return: S_OK; VSS_E_BAD_STATE before initialize; E_INVALIDARG for NULL
 * @b, @ret_props or @ret_count.
 */
vss_hr vss_backup_query_snapshots(vss_backup *b, const vss_id *set_id_or_null, const char *volume_or_null,
                                  vss_object_prop **ret_props, size_t *ret_count);

/* Called with each page of snapshots; a failure stops the listing. */
typedef vss_hr (*vss_snapshot_page_fn)(const vss_snapshot_prop *props, size_t n, void *userdata);

/**
 * vss_backup_query_snapshot_pages() - vss_backup_query_snapshots(), a page at a time.
 * @b: the object (initialized).
 * @set_id_or_null: as for vss_backup_query_snapshots().
 * @volume_or_null: as for vss_backup_query_snapshots().
 * @page: called with each page in turn (at most 1000 snapshots, in the
 *     same order); the snapshots are the library's, valid during the call.
 * @userdata: passed to @page.
 *
 * While @page runs, vssd already reads the next page: a caller that writes
 * each page out overlaps its work with vssd's, and holds one page, never
 * the whole list (100,000 snapshots are some 40 MB).
 *
 * Return: as vss_backup_query_snapshots(), E_INVALIDARG for NULL @b or
 * @page, or the failure @page returned.
 */
vss_hr vss_backup_query_snapshot_pages(vss_backup *b, const vss_id *set_id_or_null, const char *volume_or_null,
                                       vss_snapshot_page_fn page, void *userdata);

/**
 * vss_backup_delete_snapshots() - delete a snapshot or a whole set.
 * @b: the object (initialized).
 * @source_id: the snapshot or set id.
 * @source_type: VSS_OBJECT_SNAPSHOT or VSS_OBJECT_SNAPSHOT_SET.
 * @force_delete: accepted for compatibility; vss never refuses on its account.
 * @ret_deleted: how many snapshots were deleted.
 * @ret_nondeleted: the first snapshot that could not be deleted (null id when
 *                  all were).
 *
 * Deletion stops at the first failure, as in VSS.
 *
 * Return: S_OK; VSS_E_OBJECT_NOT_FOUND for an unknown id;
 * VSS_E_PROVIDER_VETO or VSS_E_UNEXPECTED_PROVIDER_ERROR when the provider
 * could not delete (then *@ret_nondeleted names it).
 */
vss_hr vss_backup_delete_snapshots(vss_backup *b, const vss_id *source_id,
                                   vss_object_type source_type,
                                   bool force_delete, int32_t *ret_deleted,
                                   vss_id *ret_nondeleted);

/*
 * Writers (docs/WRITERS.md). In contexts with writers, DoSnapshotSet needs
 * GatherWriterMetadata first; in the others no writer hears of the set.
 */

/**
 * vss_backup_gather_writer_metadata() - ask every writer for its metadata.
 * @b: the object, initialized, before start_snapshot_set; once.
 * @ret: the operation (it sends Identify to every writer not disabled).
 *
 * Return: S_OK; VSS_E_BAD_STATE out of order or when already gathered.
 */
vss_hr vss_backup_gather_writer_metadata(vss_backup *b, vss_async **ret);

/**
 * vss_backup_get_writer_metadata_count() - how many writers answered.
 * @b: the object, after gather_writer_metadata ended.
 * @ret_count: their number.
 *
 * Return: S_OK; VSS_E_BAD_STATE before the gathering ended.
 */
vss_hr vss_backup_get_writer_metadata_count(vss_backup *b, unsigned *ret_count);

/**
 * vss_backup_get_writer_metadata() - one writer's metadata.
 * @b: the object.
 * @index: from 0 to the count - 1.
 * @ret_instance_id: the writer instance.
 * @ret_metadata: borrowed from @b until vss_backup_free_writer_metadata() or
 *                its release.
 *
 * Return: S_OK; E_INVALIDARG for an index out of range; VSS_E_BAD_STATE
 * before the gathering ended.
 */
vss_hr vss_backup_get_writer_metadata(vss_backup *b, unsigned index, vss_id *ret_instance_id,
                                      const vss_writer_metadata **ret_metadata);

/**
 * vss_backup_free_writer_metadata() - drop the metadata read so far.
 */
vss_hr vss_backup_free_writer_metadata(vss_backup *b);

/**
 * vss_backup_add_component() - select a writer's component for the backup.
 * @b: the object, after gather_writer_metadata, before start_snapshot_set.
 * @instance_id, @class_id: the writer.
 * @type: the component's type.
 * @logical_path_or_null, @name: the component.
 *
 * Return: S_OK; VSS_E_OBJECT_NOT_FOUND for a writer or component that is not
 * in the metadata; VSS_E_OBJECT_ALREADY_EXISTS when added already;
 * VSS_E_BAD_STATE out of order or in a context without writers.
 */
vss_hr vss_backup_add_component(vss_backup *b, const vss_id *instance_id, const vss_id *class_id,
                                vss_component_type type, const char *logical_path_or_null, const char *name);

/**
 * vss_backup_disable_writer_classes() - leave writers of these classes out.
 * @b: the object, before gather_writer_metadata.
 * @class_ids: the classes.
 * @n: how many.
 *
 * Return: S_OK; E_INVALIDARG; VSS_E_BAD_STATE after gather_writer_metadata.
 */
vss_hr vss_backup_disable_writer_classes(vss_backup *b, const vss_id *class_ids, unsigned n);

/**
 * vss_backup_enable_writer_classes() - take only writers of these classes.
 * @b: the object, before gather_writer_metadata.
 * @class_ids: the classes; once called, only enabled classes take part.
 * @n: how many.
 *
 * Return: S_OK; E_INVALIDARG; VSS_E_BAD_STATE after gather_writer_metadata.
 */
vss_hr vss_backup_enable_writer_classes(vss_backup *b, const vss_id *class_ids, unsigned n);

/**
 * vss_backup_gather_writer_status() - ask the writers how they are.
 * @b: the object, after gather_writer_metadata.
 * @ret: the operation.
 *
 * Return: S_OK; VSS_E_BAD_STATE before gather_writer_metadata.
 */
vss_hr vss_backup_gather_writer_status(vss_backup *b, vss_async **ret);

/**
 * vss_backup_get_writer_status_count() - writers in the last status.
 */
vss_hr vss_backup_get_writer_status_count(vss_backup *b, unsigned *ret_count);

/**
 * vss_backup_get_writer_status() - one writer's status (GetWriterStatusEx).
 * @b: the object, after gather_writer_status ended.
 * @index: from 0 to the count - 1.
 * @ret_status: borrowed from @b until vss_backup_free_writer_status() or its
 *              release.
 *
 * Return: S_OK; E_INVALIDARG for an index out of range; VSS_E_BAD_STATE.
 */
vss_hr vss_backup_get_writer_status(vss_backup *b, unsigned index, const vss_writer_status **ret_status);

/**
 * vss_backup_free_writer_status() - drop the status read so far.
 */
vss_hr vss_backup_free_writer_status(vss_backup *b);

/**
 * vss_backup_set_backup_succeeded() - record a component's backup outcome.
 * @b: the object, after a successful do_snapshot_set, before backup_complete.
 * @instance_id, @class_id, @type, @logical_path_or_null, @name: the component,
 *                                                              as added.
 * @succeeded: whether its files were backed up.
 *
 * Writers learn it in backup_complete.
 *
 * Return: S_OK; VSS_E_OBJECT_NOT_FOUND for a component not added;
 * VSS_E_BAD_STATE out of order.
 */
vss_hr vss_backup_set_backup_succeeded(vss_backup *b, const vss_id *instance_id, const vss_id *class_id,
                                       vss_component_type type, const char *logical_path_or_null,
                                       const char *name, bool succeeded);

/**
 * vss_backup_expose_snapshot() - mount a finished snapshot read-only.
 * @b: the object (initialized).
 * @snapshot_id: the snapshot.
 * @path_from_root_or_null: for remote exposure (a share); vss exposes locally
 *                          only, so it must be NULL.
 * @attributes: VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY.
 * @expose_or_null: the directory to mount it on: it must be empty (it is made
 *                  if missing); NULL for "<vssd's runtime directory>/exposed/{id}".
 *                  A caller who is not root may name only a directory it owns.
 * @ret_exposed_name: where it is mounted; free() it.
 *
 * The mount survives vssd restarts until vss_backup_unexpose_snapshot(), and
 * the snapshot's exposed_name says where it is. A btrfs snapshot is
 * bind-mounted; an image snapshot is attached to a loop device and mounted
 * (a journal that needs replaying is replayed into vss's private clone, never
 * into the original).
 *
 * Return: S_OK; VSS_E_OBJECT_NOT_FOUND for an unknown snapshot;
 * VSS_E_OBJECT_ALREADY_EXISTS when it is exposed already or the directory is
 * not empty; E_INVALIDARG for remote exposure; E_ACCESSDENIED for a directory
 * the caller does not own; a provider's error when the mount fails.
 */
vss_hr vss_backup_expose_snapshot(vss_backup *b, const vss_id *snapshot_id,
                                  const char *path_from_root_or_null,
                                  int32_t attributes,
                                  const char *expose_or_null,
                                  char **ret_exposed_name);

/**
 * vss_backup_unexpose_snapshot() - unmount an exposed snapshot.
 * @b: the object (initialized).
 * @snapshot_id: the snapshot.
 *
 * A busy mount is detached: it leaves the tree at once and goes when its last
 * user does.
 *
 * Return: S_OK; VSS_E_OBJECT_NOT_FOUND for an unknown snapshot or one that is
 * not exposed.
 */
vss_hr vss_backup_unexpose_snapshot(vss_backup *b, const vss_id *snapshot_id);

/**
 * vss_backup_query_diff_areas() - the shadow storage of volumes.
 * @b: the object (initialized).
 * @volume_or_null: one volume, or NULL for every volume with snapshots or a
 *                  maximum (IVssDifferentialSoftwareSnapshotMgmt's
 *                  QueryDiffAreasForVolume and friends).
 * @ret_props: a new array; release with vss_free_diff_area_props().
 * @ret_count: its length.
 *
 * Used is the space only the volume's snapshots hold (what deleting them all
 * frees): for image clones the extents the image no longer shares, for btrfs
 * the quota groups' exclusive sizes (unknown, -1, when quotas are off).
 *
 * Return: S_OK; VSS_E_OBJECT_NOT_FOUND when @volume_or_null is not a volume;
 * VSS_E_BAD_STATE before initialize.
 */
vss_hr vss_backup_query_diff_areas(vss_backup *b, const char *volume_or_null, vss_diff_area_prop **ret_props,
                                   size_t *ret_count);

/**
 * vss_backup_change_diff_area_maximum_size() - limit a volume's shadow storage.
 * @b: the object (initialized).
 * @volume: the volume.
 * @maximum: bytes, at least 1 MiB; -1 for unbounded.
 *
 * When the volume's snapshots take more than @maximum, its oldest snapshots
 * are deleted at once until they fit; and before each new set, while they
 * take as much as @maximum, so the new snapshot has room. Kept across vssd
 * restarts.
 *
 * Return: S_OK; E_INVALIDARG for a maximum under 1 MiB;
 * VSS_E_OBJECT_NOT_FOUND or VSS_E_VOLUME_NOT_SUPPORTED for @volume.
 */
vss_hr vss_backup_change_diff_area_maximum_size(vss_backup *b, const char *volume, int64_t maximum);

/**
 * vss_backup_get_diff_area_maximum_size() - a volume's maximum, cheaply.
 * @b: the object (initialized).
 * @volume: the volume.
 * @ret_maximum: bytes, or -1 for unbounded.
 *
 * What vss_backup_query_diff_areas() reports as maximum_diff_space, without
 * measuring the space in use (a vss addition to the VSS API).
 *
 * Return: S_OK; VSS_E_OBJECT_NOT_FOUND or VSS_E_VOLUME_NOT_SUPPORTED for
 * @volume.
 */
vss_hr vss_backup_get_diff_area_maximum_size(vss_backup *b, const char *volume, int64_t *ret_maximum);

/**
 * vss_backup_revert_to_snapshot() - make a volume hold what a snapshot holds.
 * @b: the object (initialized).
 * @snapshot_id: a persistent snapshot (a no-auto-release context) of the
 *               volume, not exposed.
 * @force_unmount: unmount the volume although it is in use: whoever holds
 *                 files there keeps the old files, detached.
 *
 * IVssBackupComponents::RevertToSnapshot. Everything the volume holds now,
 * written since the snapshot, is lost. The volume is unmounted, replaced by
 * the snapshot's content, and mounted again where it was with its options;
 * the call returns once that is done. Snapshots of the volume newer than
 * the reverted one are kept and say so in their consistency ("taken before
 * the volume was reverted to {ID} at TIME"). A revert cut short by a crash
 * is finished when vssd starts again, never left half done. Root only.
 *
 * Return: S_OK; E_ACCESSDENIED for a caller who is not root;
 * VSS_E_OBJECT_NOT_FOUND for an unknown snapshot; VSS_E_UNSUPPORTED_CONTEXT
 * for an auto-release one; VSS_E_VOLUME_IN_USE when the volume is in use
 * (nothing changed) or the snapshot is exposed; VSS_E_REVERT_IN_PROGRESS
 * while the volume is being reverted or a revert of it is unfinished;
 * VSS_E_SNAPSHOT_SET_IN_PROGRESS while a set is being created;
 * VSS_E_VOLUME_NOT_SUPPORTED for a volume its provider cannot revert (a
 * btrfs top-level subvolume); VSS_E_BAD_STATE before initialization;
 * VSS_E_UNEXPECTED_PROVIDER_ERROR when the revert failed part-way (it is
 * then unfinished: vss_last_error_message() says what to do).
 */
vss_hr vss_backup_revert_to_snapshot(vss_backup *b, const vss_id *snapshot_id, bool force_unmount);

/**
 * vss_backup_query_revert_status() - follow a volume's revert.
 * @b: the object (initialized).
 * @volume: the volume, as its snapshots name it.
 * @ret: the operation: pending while the revert runs, then its result;
 *       already failed (VSS_E_REVERT_IN_PROGRESS or the failure, with its
 *       message) when a revert of the volume is left unfinished. Release it
 *       with vss_async_release().
 *
 * IVssBackupComponents::QueryRevertStatus. Any requestor may ask.
 *
 * Return: S_OK; VSS_E_OBJECT_NOT_FOUND when no revert of @volume runs or is
 * unfinished; E_INVALIDARG for a relative path; VSS_E_BAD_STATE before
 * initialization.
 */
vss_hr vss_backup_query_revert_status(vss_backup *b, const char *volume, vss_async **ret);

#ifdef __cplusplus
}
#endif

#endif
