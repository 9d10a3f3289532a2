/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The public API's promise about out-parameters (docs/ABI.md): a call that
 * fails leaves each of them NULL, zero or the null id, never what the caller
 * had there, so that code which goes on after a failure (the README's
 * example) reads nothing stale. Each output starts as garbage, and each call
 * is made the two ways a real program sees it fail: with vssd unreachable,
 * and with a NULL handle after vss_create_backup_components() failed.
 */

#include <vss/vss.h>

#include "tests.h"

#define GARBAGE 0xa5

static void *garbage_ptr(void)
{
	void *p;

	memset(&p, GARBAGE, sizeof(p));
	return p;
}

static vss_id garbage_id(void)
{
	vss_id id;

	memset(&id, GARBAGE, sizeof(id));
	return id;
}

static bool is_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		if (c[i])
			return false;
	return true;
}

#define ASSERT_NULL_ID(id) ASSERT_TRUE(vss_id_is_null(&(id)))

/* Without vssd there is no handle: *ret is NULL, not what it held. */
static void test_create_without_vssd(void)
{
	vss_backup *b = garbage_ptr();

	ASSERT_TRUE(VSS_FAILED(vss_create_backup_components(&b)));
	ASSERT_NULL(b);
}

/* What the README's sequence does when the first call failed: every later
 * call gets the NULL handle, fails, and clears its outputs. */
static void test_calls_on_a_null_handle(void)
{
	vss_async *op = garbage_ptr();
	vss_id id = garbage_id(), id2 = garbage_id();
	vss_snapshot_prop prop;
	vss_object_prop *props = garbage_ptr();
	vss_diff_area_prop *areas = garbage_ptr();
	const vss_writer_metadata *md = garbage_ptr();
	const vss_writer_status *ws = garbage_ptr();
	char *exposed = garbage_ptr();
	size_t count = 77;
	unsigned ucount = 77;
	int32_t deleted = 77;
	int64_t maximum = 77;
	bool supported = true;
	vss_hr status = VSS_S_ASYNC_FINISHED;

	ASSERT_HR(E_INVALIDARG, vss_backup_start_snapshot_set(NULL, &id));
	ASSERT_NULL_ID(id);
	id = garbage_id();
	ASSERT_HR(E_INVALIDARG, vss_backup_add_to_snapshot_set(NULL, "/srv/data", NULL, &id));
	ASSERT_NULL_ID(id);
	ASSERT_HR(E_INVALIDARG, vss_backup_is_volume_supported(NULL, NULL, "/srv/data", &supported));
	ASSERT_FALSE(supported);

	ASSERT_HR(E_INVALIDARG, vss_backup_prepare_for_backup(NULL, &op));
	ASSERT_NULL(op);
	op = garbage_ptr();
	ASSERT_HR(E_INVALIDARG, vss_backup_do_snapshot_set(NULL, &op));
	ASSERT_NULL(op);
	op = garbage_ptr();
	ASSERT_HR(E_INVALIDARG, vss_backup_backup_complete(NULL, &op));
	ASSERT_NULL(op);
	op = garbage_ptr();
	ASSERT_HR(E_INVALIDARG, vss_backup_gather_writer_metadata(NULL, &op));
	ASSERT_NULL(op);
	op = garbage_ptr();
	ASSERT_HR(E_INVALIDARG, vss_backup_gather_writer_status(NULL, &op));
	ASSERT_NULL(op);

	/* The operation that was never made: waiting on it and asking its
	 * status fail, and the status says so rather than "finished". */
	ASSERT_HR(E_INVALIDARG, vss_async_wait(op, VSS_INFINITE));
	ASSERT_HR(E_INVALIDARG, vss_async_query_status(op, &status));
	ASSERT_HR(E_INVALIDARG, status);
	ASSERT_HR(S_OK, vss_async_release(op));

	memset(&prop, GARBAGE, sizeof(prop));
	id = garbage_id();
	ASSERT_HR(E_INVALIDARG, vss_backup_get_snapshot_properties(NULL, &id, &prop));
	ASSERT_TRUE(is_zero(&prop, sizeof(prop)));
	vss_free_snapshot_properties(&prop);

	ASSERT_HR(E_INVALIDARG, vss_backup_query(NULL, NULL, VSS_OBJECT_NONE, VSS_OBJECT_SNAPSHOT, &props, &count));
	ASSERT_NULL(props);
	ASSERT_EQ_UINT(0, count);

	id2 = garbage_id();
	ASSERT_HR(E_INVALIDARG, vss_backup_delete_snapshots(NULL, &id, VSS_OBJECT_SNAPSHOT, true, &deleted, &id2));
	ASSERT_EQ_INT(0, deleted);
	ASSERT_NULL_ID(id2);

	ASSERT_HR(E_INVALIDARG, vss_backup_expose_snapshot(NULL, &id, NULL, VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY, NULL,
							   &exposed));
	ASSERT_NULL(exposed);

	count = 77;
	ASSERT_HR(E_INVALIDARG, vss_backup_query_diff_areas(NULL, NULL, &areas, &count));
	ASSERT_NULL(areas);
	ASSERT_EQ_UINT(0, count);
	ASSERT_HR(E_INVALIDARG, vss_backup_get_diff_area_maximum_size(NULL, "/srv/data", &maximum));
	ASSERT_EQ_INT(0, maximum);

	ASSERT_HR(E_INVALIDARG, vss_backup_get_writer_metadata_count(NULL, &ucount));
	ASSERT_EQ_UINT(0, ucount);
	id = garbage_id();
	ASSERT_HR(E_INVALIDARG, vss_backup_get_writer_metadata(NULL, 0, &id, &md));
	ASSERT_NULL_ID(id);
	ASSERT_NULL(md);
	ucount = 77;
	ASSERT_HR(E_INVALIDARG, vss_backup_get_writer_status_count(NULL, &ucount));
	ASSERT_EQ_UINT(0, ucount);
	ASSERT_HR(E_INVALIDARG, vss_backup_get_writer_status(NULL, 0, &ws));
	ASSERT_NULL(ws);

	ASSERT_HR(E_INVALIDARG, vss_backup_abort_backup(NULL));
	ASSERT_HR(S_OK, vss_backup_release(NULL));
}

static void test_parsers(void)
{
	vss_id id = garbage_id();
	vss_hr hr = VSS_E_BAD_STATE;

	ASSERT_HR(E_INVALIDARG, vss_id_parse("not an id", &id));
	ASSERT_NULL_ID(id);
	ASSERT_HR(VSS_E_OBJECT_NOT_FOUND, vss_hr_from_name("NO_SUCH_NAME", &hr));
	ASSERT_HR(S_OK, hr);
}

static void test_writer(void)
{
	static const vss_id class_id = { { 1 } };
	vss_writer *w = garbage_ptr();
	vss_id id = garbage_id();

	ASSERT_HR(E_INVALIDARG, vss_writer_new(&class_id, "", NULL, VSS_UT_USERDATA, VSS_ST_OTHER,
					       VSS_APP_FRONT_END, 0, &w));
	ASSERT_NULL(w);
	ASSERT_HR(E_INVALIDARG, vss_writer_get_snapshot_set_id(NULL, &id));
	ASSERT_NULL_ID(id);
}

/* A program built with callbacks version 1 has a structure that ends before
 * pre_restore: libvss reads no further (valgrind and ASan would see it). */
static bool on_freeze(vss_writer *w, void *userdata)
{
	(void)w, (void)userdata;
	return true;
}

/* vss_writer_callbacks as version 1 of <vss/writer.h> had it. */
typedef struct CallbacksV1 {
	uint32_t version;
	bool (*identify)(vss_writer *w, vss_metadata_builder *md, void *userdata);
	bool (*events[8])(vss_writer *w, void *userdata);
} CallbacksV1;

_Static_assert(sizeof(CallbacksV1) == offsetof(vss_writer_callbacks, pre_restore),
	       "version 1 ends where pre_restore begins");

static void test_writer_callbacks_versions(void)
{
	static const vss_id class_id = { { 1 } };
	CallbacksV1 *v1 = malloc(sizeof(*v1));
	vss_writer_callbacks v3 = { .version = VSS_WRITER_CALLBACKS_VERSION + 1 };
	const vss_restore_component *rc = garbage_ptr();
	size_t n = 77;
	char *doc = garbage_ptr();
	vss_writer *w = NULL;

	ASSERT_NOT_NULL(v1);
	memset(v1, 0, sizeof(*v1));
	v1->version = 1;
	v1->events[2] = on_freeze;
	ASSERT_HR(S_OK, vss_writer_new(&class_id, "old", NULL, VSS_UT_USERDATA, VSS_ST_OTHER, VSS_APP_FRONT_END, 0,
				       &w));
	ASSERT_HR(S_OK, vss_writer_set_callbacks(w, (const vss_writer_callbacks *)v1, NULL));
	ASSERT_HR(E_INVALIDARG, vss_writer_set_callbacks(w, &v3, NULL));
	/* Outside a restore callback: nothing to read, and nothing stale. */
	ASSERT_HR(VSS_E_BAD_STATE, vss_writer_get_restore_components(w, &rc, &n));
	ASSERT_NULL(rc);
	ASSERT_EQ_UINT(0, n);
	vss_writer_free(w);
	free(v1);
	ASSERT_HR(E_INVALIDARG, vss_backup_save_as_xml(NULL, &doc));
	ASSERT_NULL(doc);
}

int main(void)
{
	/* A socket nobody listens on: vssd is unreachable. */
	setenv("VSS_SOCKET", "/nonexistent/vss-test-outparams.sock", 1);
	RUN_TEST(test_create_without_vssd);
	RUN_TEST(test_calls_on_a_null_handle);
	RUN_TEST(test_parsers);
	RUN_TEST(test_writer);
	RUN_TEST(test_writer_callbacks_versions);
	TEST_SUMMARY();
	return 0;
}
