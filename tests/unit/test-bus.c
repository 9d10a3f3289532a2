/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <systemd/sd-bus.h>

#include "basic/hresult-table.h"
#include "basic/macro.h"
#include "basic/props.h"
#include "basic/util.h"
#include "protocol/bus.h"
#include "tests.h"

/*
 * sd-bus only makes messages on a bus that has been started, and starting one
 * needs a transport. One end of a socket pair is enough: nothing is ever sent,
 * the message is sealed and read back in place.
 */
static sd_bus *bus;
static int peer_fd = -1;

static void bus_setup(void)
{
	int fds[2];

	ASSERT_EQ_INT(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
	ASSERT_OK(sd_bus_new(&bus));
	ASSERT_OK(sd_bus_set_fd(bus, fds[0], fds[0]));
	ASSERT_OK(sd_bus_start(bus));
	peer_fd = fds[1];
}

static void bus_teardown(void)
{
	bus = sd_bus_close_unref(bus);
	close(peer_fd);
}

static sd_bus_message *new_message(void)
{
	sd_bus_message *m = NULL;

	ASSERT_OK(sd_bus_message_new_method_call(bus, &m, VSS_BUS_NAME, VSS_BUS_MANAGER_PATH,
						 VSS_BUS_MANAGER_IFACE, "Test"));
	return m;
}

/* Seal as if sent, and go back to the start as if received. */
static void seal_and_rewind(sd_bus_message *m)
{
	ASSERT_OK(sd_bus_message_seal(m, 1, 0));
	ASSERT_OK(sd_bus_message_rewind(m, 1));
}

/* id_of(1) in text form, worked out by hand: bytes 0x01, 0x12, ... 0xef, 0x00. */
#define ID_STRING_OF_ID1 "{01122334-4556-6778-899a-abbccddeef00}"

static vss_id id_of(uint8_t seed)
{
	vss_id id;

	for (unsigned i = 0; i < sizeof(id.bytes); i++)
		id.bytes[i] = (uint8_t)(seed + i * 17);
	return id;
}

static vss_snapshot_prop full_snapshot(void)
{
	return (vss_snapshot_prop){
		.snapshot_id = id_of(1),
		.snapshot_set_id = id_of(2),
		.snapshots_count = 3,
		.snapshot_device_object = (char *)"/srv/a/.vss/{snap}",
		.original_volume_name = (char *)"/srv/a",
		.originating_machine = (char *)"origin.example",
		.service_machine = (char *)"service.example",
		.exposed_name = (char *)"exposé ünïcode",
		.exposed_path = (char *)"/mnt/exposed path",
		.provider_id = id_of(3),
		.snapshot_attributes = VSS_CTX_CLIENT_ACCESSIBLE | VSS_VOLSNAP_ATTR_DIFFERENTIAL |
				       VSS_VOLSNAP_ATTR_FILE_SHARE,
		/* Values that do not fit 32 bits, or are negative, catch a
		 * narrowed or unsigned wire type. */
		.creation_timestamp = -1234567890123456789LL,
		.status = VSS_SS_CREATED,
		.hold_window_us = UINT64_MAX - 5,
		.consistency = (char *)"crash-consistent set",
	};
}

static void check_snapshot(const vss_snapshot_prop *w, const vss_snapshot_prop *g)
{
	ASSERT_ID_EQ(&w->snapshot_id, &g->snapshot_id);
	ASSERT_ID_EQ(&w->snapshot_set_id, &g->snapshot_set_id);
	ASSERT_EQ_INT(w->snapshots_count, g->snapshots_count);
	ASSERT_STREQ(w->snapshot_device_object, g->snapshot_device_object);
	ASSERT_STREQ(w->original_volume_name, g->original_volume_name);
	ASSERT_STREQ(w->originating_machine, g->originating_machine);
	ASSERT_STREQ(w->service_machine, g->service_machine);
	ASSERT_STREQ(w->exposed_name, g->exposed_name);
	ASSERT_STREQ(w->exposed_path, g->exposed_path);
	ASSERT_ID_EQ(&w->provider_id, &g->provider_id);
	ASSERT_EQ_INT(w->snapshot_attributes, g->snapshot_attributes);
	ASSERT_EQ_INT(w->creation_timestamp, g->creation_timestamp);
	ASSERT_EQ_INT(w->status, g->status);
	ASSERT_EQ_UINT(w->hold_window_us, g->hold_window_us);
	ASSERT_STREQ(w->consistency, g->consistency);
	/* Strings are the reader's own copies, not pointers into the message. */
	if (w->snapshot_device_object)
		ASSERT_TRUE(g->snapshot_device_object != w->snapshot_device_object);
}

static void roundtrip_snapshot(const vss_snapshot_prop *w)
{
	sd_bus_message *m = new_message();
	vss_snapshot_prop g;

	ASSERT_OK(bus_append_snapshot_prop(m, w));
	seal_and_rewind(m);
	memset(&g, 0xa5, sizeof(g));
	ASSERT_OK(bus_read_snapshot_prop(m, &g));
	check_snapshot(w, &g);
	/* The whole message was consumed. */
	ASSERT_EQ_INT(1, sd_bus_message_at_end(m, true));
	vss_free_snapshot_properties(&g);
	sd_bus_message_unref(m);
}

static void test_snapshot_roundtrip(void)
{
	vss_snapshot_prop p = full_snapshot();

	roundtrip_snapshot(&p);

	/* Optional strings absent stay NULL, and an empty string stays empty:
	 * vssadmin prints the two differently. */
	p.exposed_name = NULL;
	p.exposed_path = NULL;
	p.consistency = NULL;
	p.service_machine = (char *)"";
	roundtrip_snapshot(&p);

	/* All zero: the null ids and zero numbers travel too. */
	p = (vss_snapshot_prop){ 0 };
	roundtrip_snapshot(&p);

	p = full_snapshot();
	p.creation_timestamp = INT64_MAX;
	p.snapshots_count = INT32_MAX;
	p.snapshot_attributes = INT32_MIN;
	p.status = VSS_SS_ABORTED;
	p.hold_window_us = 0;
	roundtrip_snapshot(&p);
}

static void check_provider(const vss_provider_prop *w, const vss_provider_prop *g)
{
	ASSERT_ID_EQ(&w->provider_id, &g->provider_id);
	ASSERT_STREQ(w->provider_name, g->provider_name);
	ASSERT_EQ_INT(w->provider_type, g->provider_type);
	ASSERT_STREQ(w->provider_version, g->provider_version);
	ASSERT_ID_EQ(&w->provider_version_id, &g->provider_version_id);
	ASSERT_ID_EQ(&w->class_id, &g->class_id);
}

static void roundtrip_provider(const vss_provider_prop *w)
{
	sd_bus_message *m = new_message();
	vss_provider_prop g;

	ASSERT_OK(bus_append_provider_prop(m, w));
	seal_and_rewind(m);
	memset(&g, 0x5a, sizeof(g));
	ASSERT_OK(bus_read_provider_prop(m, &g));
	check_provider(w, &g);
	ASSERT_EQ_INT(1, sd_bus_message_at_end(m, true));
	vss_free_provider_properties(&g);
	sd_bus_message_unref(m);
}

static void test_provider_roundtrip(void)
{
	vss_provider_prop p = {
		.provider_id = id_of(10),
		.provider_name = (char *)"vss btrfs provider",
		.provider_type = VSS_PROV_SOFTWARE,
		.provider_version = (char *)"1.2.3",
		.provider_version_id = id_of(11),
		.class_id = id_of(12),
	};

	roundtrip_provider(&p);
	p.provider_type = VSS_PROV_FILESHARE;
	p.provider_version = NULL;
	roundtrip_provider(&p);
	p = (vss_provider_prop){ 0 };
	roundtrip_provider(&p);
}

/* Several properties in one message, as Query returns them, each read
 * stopping exactly at the end of its own dictionary. */
static void test_array_of_props(void)
{
	sd_bus_message *m = new_message();
	vss_snapshot_prop a = full_snapshot(), b = full_snapshot(), g;
	vss_provider_prop p = { .provider_id = id_of(7), .provider_name = (char *)"p",
				.provider_type = VSS_PROV_SYSTEM };
	vss_provider_prop gp;

	b.snapshot_id = id_of(99);
	b.original_volume_name = (char *)"/srv/b";
	ASSERT_OK(sd_bus_message_open_container(m, 'a', "a{sv}"));
	ASSERT_OK(bus_append_snapshot_prop(m, &a));
	ASSERT_OK(bus_append_snapshot_prop(m, &b));
	ASSERT_OK(sd_bus_message_close_container(m));
	ASSERT_OK(bus_append_provider_prop(m, &p));
	ASSERT_OK(bus_append_id(m, &a.snapshot_id));
	seal_and_rewind(m);

	ASSERT_OK(sd_bus_message_enter_container(m, 'a', "a{sv}"));
	ASSERT_OK(bus_read_snapshot_prop(m, &g));
	check_snapshot(&a, &g);
	vss_free_snapshot_properties(&g);
	ASSERT_OK(bus_read_snapshot_prop(m, &g));
	check_snapshot(&b, &g);
	vss_free_snapshot_properties(&g);
	ASSERT_OK(sd_bus_message_exit_container(m));
	ASSERT_OK(bus_read_provider_prop(m, &gp));
	check_provider(&p, &gp);
	vss_free_provider_properties(&gp);
	{
		const char *s = NULL;

		ASSERT_OK(sd_bus_message_read(m, "s", &s));
		ASSERT_STREQ(ID_STRING_OF_ID1, s);
	}
	ASSERT_EQ_INT(1, sd_bus_message_at_end(m, true));
	sd_bus_message_unref(m);
}

/* A newer peer may send keys this one does not know, of any type: they are
 * skipped and the known ones still read. */
static void test_unknown_keys_skipped(void)
{
	sd_bus_message *m = new_message();
	vss_snapshot_prop w = full_snapshot(), g;
	char buf[VSS_ID_STRING_MAX];

	ASSERT_OK(sd_bus_message_open_container(m, 'a', "{sv}"));
	ASSERT_OK(sd_bus_message_append(m, "{sv}", "FutureList", "as", 2, "x", "y"));
	ASSERT_OK(sd_bus_message_append(m, "{sv}", "Id", "s", vss_id_format(&w.snapshot_id, buf)));
	ASSERT_OK(sd_bus_message_append(m, "{sv}", "FutureNumber", "t", UINT64_C(42)));
	ASSERT_OK(sd_bus_message_append(m, "{sv}", "OriginalVolume", "s", w.original_volume_name));
	ASSERT_OK(sd_bus_message_append(m, "{sv}", "FutureStruct", "(is)", 1, "z"));
	ASSERT_OK(sd_bus_message_close_container(m));
	seal_and_rewind(m);

	ASSERT_OK(bus_read_snapshot_prop(m, &g));
	ASSERT_ID_EQ(&w.snapshot_id, &g.snapshot_id);
	ASSERT_STREQ(w.original_volume_name, g.original_volume_name);
	/* What was not sent is zero. */
	ASSERT_NULL(g.snapshot_device_object);
	ASSERT_TRUE(vss_id_is_null(&g.snapshot_set_id));
	ASSERT_EQ_INT(0, g.snapshots_count);
	ASSERT_EQ_INT(1, sd_bus_message_at_end(m, true));
	vss_free_snapshot_properties(&g);
	sd_bus_message_unref(m);
}

/* A malformed id or a wrongly typed value fails the read without leaking
 * what was read before it (ASan would tell). */
static void test_malformed(void)
{
	sd_bus_message *m;
	vss_snapshot_prop g = { 0 };
	vss_provider_prop gp = { 0 };

	m = new_message();
	ASSERT_OK(sd_bus_message_open_container(m, 'a', "{sv}"));
	ASSERT_OK(sd_bus_message_append(m, "{sv}", "OriginalVolume", "s", "/srv/a"));
	ASSERT_OK(sd_bus_message_append(m, "{sv}", "Id", "s", "not-an-id"));
	ASSERT_OK(sd_bus_message_close_container(m));
	seal_and_rewind(m);
	ASSERT_TRUE(bus_read_snapshot_prop(m, &g) < 0);
	ASSERT_NULL(g.original_volume_name);
	sd_bus_message_unref(m);

	m = new_message();
	ASSERT_OK(sd_bus_message_open_container(m, 'a', "{sv}"));
	ASSERT_OK(sd_bus_message_append(m, "{sv}", "Name", "s", "x"));
	ASSERT_OK(sd_bus_message_append(m, "{sv}", "Type", "s", "software"));
	ASSERT_OK(sd_bus_message_close_container(m));
	seal_and_rewind(m);
	ASSERT_TRUE(bus_read_provider_prop(m, &gp) < 0);
	ASSERT_NULL(gp.provider_name);
	sd_bus_message_unref(m);

	/* Not a dictionary at all. */
	m = new_message();
	ASSERT_OK(sd_bus_message_append(m, "s", "hello"));
	seal_and_rewind(m);
	ASSERT_TRUE(bus_read_snapshot_prop(m, &g) < 0);
	sd_bus_message_unref(m);
}

static void test_append_id(void)
{
	sd_bus_message *m = new_message();
	vss_id id = id_of(1), null_id = VSS_ID_NULL, back;
	const char *s;

	ASSERT_OK(bus_append_id(m, &id));
	ASSERT_OK(bus_append_id(m, &null_id));
	seal_and_rewind(m);
	ASSERT_OK(sd_bus_message_read(m, "s", &s));
	ASSERT_STREQ(ID_STRING_OF_ID1, s);
	ASSERT_HR(S_OK, vss_id_parse(s, &back));
	ASSERT_ID_EQ(&id, &back);
	ASSERT_OK(sd_bus_message_read(m, "s", &s));
	ASSERT_STREQ("{00000000-0000-0000-0000-000000000000}", s);
	sd_bus_message_unref(m);
}

/* Every result in the table survives the trip through a D-Bus error. */
static void test_error_every_entry(void)
{
	size_t n;
	const struct vss_hr_entry *t = vss_hr_table(&n);

	ASSERT_TRUE(n > 50);
	for (size_t i = 0; i < n; i++) {
		sd_bus_error e = SD_BUS_ERROR_NULL;
		char name[128];

		snprintf(name, sizeof(name), "org.vss.Error.%s", t[i].name);

		/* Without a format, the table's sentence is the message. */
		ASSERT_TRUE(bus_error_set_hr(&e, t[i].hr, NULL) < 0);
		ASSERT_TRUE(sd_bus_error_is_set(&e));
		ASSERT_STREQ(name, e.name);
		ASSERT_STREQ(t[i].message, e.message);
		ASSERT_HR(t[i].hr, bus_error_to_hr(&e));
		sd_bus_error_free(&e);

		ASSERT_TRUE(bus_error_set_hr(&e, t[i].hr, "volume %s: %d", "/srv/a", 42) < 0);
		ASSERT_STREQ(name, e.name);
		ASSERT_STREQ("volume /srv/a: 42", e.message);
		ASSERT_HR(t[i].hr, bus_error_to_hr(&e));
		sd_bus_error_free(&e);
	}
}

static vss_hr hr_of_error(const char *name)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	vss_hr hr;

	sd_bus_error_set(&e, name, "message");
	hr = bus_error_to_hr(&e);
	sd_bus_error_free(&e);
	return hr;
}

static void test_error_foreign(void)
{
	sd_bus_error unset = SD_BUS_ERROR_NULL, e = SD_BUS_ERROR_NULL;

	ASSERT_HR(E_ACCESSDENIED, hr_of_error(SD_BUS_ERROR_ACCESS_DENIED));
	ASSERT_HR(VSS_E_UNEXPECTED, hr_of_error(SD_BUS_ERROR_FAILED));
	ASSERT_HR(VSS_E_UNEXPECTED, hr_of_error(SD_BUS_ERROR_NO_REPLY));
	ASSERT_HR(VSS_E_UNEXPECTED, hr_of_error(SD_BUS_ERROR_UNKNOWN_METHOD));
	ASSERT_HR(VSS_E_UNEXPECTED, hr_of_error("com.example.Whatever"));
	/* Only a known name after the prefix counts. */
	ASSERT_HR(VSS_E_UNEXPECTED, hr_of_error("org.vss.Error.VSS_E_NO_SUCH"));
	ASSERT_HR(VSS_E_UNEXPECTED, hr_of_error("org.vss.Error.UNKNOWN_HRESULT"));
	ASSERT_HR(VSS_E_UNEXPECTED, hr_of_error("org.vss.Errors.VSS_E_BAD_STATE"));
	ASSERT_HR(VSS_E_UNEXPECTED, hr_of_error("org.vss.VSS_E_BAD_STATE"));
	ASSERT_HR(VSS_E_UNEXPECTED, bus_error_to_hr(NULL));
	ASSERT_HR(VSS_E_UNEXPECTED, bus_error_to_hr(&unset));

	/* bus.h promises "VSS_E_UNEXPECTED otherwise", but two more standard
	 * errors are mapped (reported as a header/code mismatch). */
	ASSERT_HR(E_OUTOFMEMORY, hr_of_error(SD_BUS_ERROR_NO_MEMORY));
	ASSERT_HR(E_INVALIDARG, hr_of_error(SD_BUS_ERROR_INVALID_ARGS));

	/* A value outside the table cannot keep its identity on the wire. */
	ASSERT_TRUE(bus_error_set_hr(&e, VSS_HR_(0x80042399), NULL) < 0);
	ASSERT_STREQ("org.vss.Error.UNKNOWN_HRESULT", e.name);
	ASSERT_STREQ("Unknown failure.", e.message);
	ASSERT_HR(VSS_E_UNEXPECTED, bus_error_to_hr(&e));
	sd_bus_error_free(&e);
}

/* An error message is valid UTF-8 however it is cut, whatever it quotes:
 * sd-bus cannot send one that is not, and the caller would get no answer. */
static void test_error_message_utf8(void)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	char arg[2000];

	for (int odd = 0; odd < 3; odd++) {
		size_t n = 0;

		while (n < (size_t)odd)
			arg[n++] = 'x';
		while (n + 2 < sizeof(arg)) {
			arg[n++] = '\xc3';
			arg[n++] = '\xa9';
		}
		arg[n] = '\0';
		ASSERT_TRUE(utf8_is_valid(arg));
		ASSERT_TRUE(bus_error_set_hr(&e, VSS_E_OBJECT_NOT_FOUND, "%s does not exist", arg) < 0);
		ASSERT_TRUE(utf8_is_valid(e.message));
		ASSERT_TRUE(strlen(e.message) > 1000);
		sd_bus_error_free(&e);
	}
	ASSERT_TRUE(bus_error_set_hr(&e, VSS_E_OBJECT_NOT_FOUND, "%s does not exist", "/mnt/\xff\xfe") < 0);
	ASSERT_STREQ("/mnt/?? does not exist", e.message);
	sd_bus_error_free(&e);

	/* What sd-bus refuses, utf8_char_len() refuses. */
	ASSERT_EQ_UINT(4, utf8_char_len("\xf0\x9f\x98\x80", 4));
	ASSERT_EQ_UINT(0, utf8_char_len("\xf0\x9f\x98", 3));
	ASSERT_EQ_UINT(0, utf8_char_len("\xc0\xaf", 2));             /* overlong "/" */
	ASSERT_EQ_UINT(0, utf8_char_len("\xe0\x80\xaf", 3));         /* overlong "/" */
	ASSERT_EQ_UINT(0, utf8_char_len("\xed\xa0\x80", 3));         /* a surrogate */
	ASSERT_EQ_UINT(0, utf8_char_len("\xef\xbf\xbe", 3));         /* U+FFFE */
	ASSERT_EQ_UINT(0, utf8_char_len("\xf4\x90\x80\x80", 4));     /* past U+10FFFF */
	ASSERT_FALSE(utf8_is_valid("ok\x80"));
	ASSERT_TRUE(utf8_is_valid(""));
}

/* A writer's metadata as vssd hands it to requestors: every field, empty
 * optional strings coming back as NULL, nested files in order. */
static void test_writer_metadata_roundtrip(void)
{
	vss_wm_file data[] = {
		{ VSS_FK_DATABASE, (char *)"/srv/pg/data", (char *)"*", false },
		{ VSS_FK_DATABASE_LOG, (char *)"/srv/pg/wal", (char *)"0*", false },
	};
	vss_wm_file excluded[] = { { VSS_FK_FILES, (char *)"/srv/pg/data", (char *)"postmaster.pid", false } };
	vss_wm_component comps[] = {
		{ VSS_CT_DATABASE, (char *)"cluster", (char *)"main", (char *)"the main cluster", true, data, 2 },
		{ VSS_CT_FILEGROUP, NULL, (char *)"config", NULL, false, NULL, 0 },
	};
	vss_writer_metadata md = {
		.instance_id = id_of(20), .class_id = id_of(21), .name = (char *)"PostgreSQL",
		.usage = VSS_UT_USERDATA, .source = VSS_ST_TRANSACTEDDB, .level = VSS_APP_BACK_END,
		.components = comps, .n_components = 2, .excluded = excluded, .n_excluded = 1,
	}, got;
	sd_bus_message *m = new_message();

	ASSERT_OK(bus_append_writer_metadata(m, &md));
	seal_and_rewind(m);
	ASSERT_EQ_INT(1, bus_read_writer_metadata(m, &got));
	ASSERT_EQ_INT(1, sd_bus_message_at_end(m, true));
	ASSERT_ID_EQ(&md.instance_id, &got.instance_id);
	ASSERT_ID_EQ(&md.class_id, &got.class_id);
	ASSERT_STREQ("PostgreSQL", got.name);
	ASSERT_NULL(got.instance_name);
	ASSERT_EQ_INT(VSS_UT_USERDATA, got.usage);
	ASSERT_EQ_INT(VSS_ST_TRANSACTEDDB, got.source);
	ASSERT_EQ_INT(VSS_APP_BACK_END, got.level);
	ASSERT_EQ_UINT(2, got.n_components);
	ASSERT_EQ_INT(VSS_CT_DATABASE, got.components[0].type);
	ASSERT_STREQ("cluster", got.components[0].logical_path);
	ASSERT_STREQ("main", got.components[0].name);
	ASSERT_STREQ("the main cluster", got.components[0].caption);
	ASSERT_TRUE(got.components[0].selectable);
	ASSERT_EQ_UINT(2, got.components[0].n_files);
	ASSERT_EQ_INT(VSS_FK_DATABASE_LOG, got.components[0].files[1].kind);
	ASSERT_STREQ("/srv/pg/wal", got.components[0].files[1].path);
	ASSERT_STREQ("0*", got.components[0].files[1].filespec);
	ASSERT_NULL(got.components[1].logical_path);
	ASSERT_NULL(got.components[1].caption);
	ASSERT_FALSE(got.components[1].selectable);
	ASSERT_EQ_UINT(0, got.components[1].n_files);
	ASSERT_EQ_UINT(1, got.n_excluded);
	ASSERT_STREQ("postmaster.pid", got.excluded[0].filespec);
	vss_writer_metadata_clear(&got);
	ASSERT_NULL(got.name);
	sd_bus_message_unref(m);
}

static void test_writer_status_roundtrip(void)
{
	vss_writer_status st[] = {
		{ id_of(30), id_of(31), (char *)"hooks", VSS_WS_FAILED_AT_FREEZE, VSS_E_WRITERERROR_TIMEOUT,
		  (char *)"no answer in 400 ms" },
		{ id_of(32), id_of(33), (char *)"pg", VSS_WS_STABLE, S_OK, NULL },
	}, got;
	sd_bus_message *m = new_message();

	/* As GetWriterStatus sends them: in an array. */
	ASSERT_OK(sd_bus_message_open_container(m, 'a', "(sssiis)"));
	for (size_t i = 0; i < ELEMENTSOF(st); i++)
		ASSERT_OK(bus_append_writer_status(m, &st[i]));
	ASSERT_OK(sd_bus_message_close_container(m));
	seal_and_rewind(m);
	ASSERT_OK(sd_bus_message_enter_container(m, 'a', "(sssiis)"));
	for (size_t i = 0; i < ELEMENTSOF(st); i++) {
		ASSERT_EQ_INT(1, bus_read_writer_status(m, &got));
		ASSERT_ID_EQ(&st[i].instance_id, &got.instance_id);
		ASSERT_ID_EQ(&st[i].class_id, &got.class_id);
		ASSERT_STREQ(st[i].name, got.name);
		ASSERT_EQ_INT(st[i].state, got.state);
		ASSERT_HR(st[i].failure, got.failure);
		if (st[i].message)
			ASSERT_STREQ(st[i].message, got.message);
		else
			ASSERT_NULL(got.message);
		vss_writer_status_clear(&got);
	}
	/* At the end of the array, a read says so rather than failing. */
	ASSERT_EQ_INT(0, bus_read_writer_status(m, &got));
	ASSERT_OK(sd_bus_message_exit_container(m));
	sd_bus_message_unref(m);
}

static void test_writer_event_names(void)
{
	for (WriterEvent e = 0; e < _EVENT_MAX; e++)
		ASSERT_EQ_INT(e, writer_event_from_string(writer_event_to_string(e)));
	ASSERT_EQ_INT(EVENT_FREEZE, writer_event_from_string("Freeze"));
	ASSERT_EQ_INT(_EVENT_MAX, writer_event_from_string("freeze"));
	ASSERT_STREQ("?", writer_event_to_string(_EVENT_MAX));
}

int main(void)
{
	bus_setup();
	RUN_TEST(test_snapshot_roundtrip);
	RUN_TEST(test_provider_roundtrip);
	RUN_TEST(test_array_of_props);
	RUN_TEST(test_unknown_keys_skipped);
	RUN_TEST(test_malformed);
	RUN_TEST(test_append_id);
	RUN_TEST(test_error_every_entry);
	RUN_TEST(test_error_foreign);
	RUN_TEST(test_error_message_utf8);
	RUN_TEST(test_writer_metadata_roundtrip);
	RUN_TEST(test_writer_status_roundtrip);
	RUN_TEST(test_writer_event_names);
	bus_teardown();
	TEST_SUMMARY();
	return 0;
}
