/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <poll.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>

#include "basic/list.h"
#include "basic/macro.h"
#include "protocol/bus.h"
#include "vssd/manager.h"
#include "tests.h"

/*
 * Writer rounds (src/vssd/writers.c) against a writer played by the test: a
 * socket pair carries vssd's side of a real sd-bus connection and the
 * writer's, and the writer keeps each Event call to answer when the test
 * says, so that answers can come late, after their round was cancelled or
 * replaced. No root, no daemon.
 */

#define MAX_CALLS 8

static sd_bus *vssd_bus, *writer_bus;
static sd_bus_message *calls[MAX_CALLS];
static size_t n_calls;

static Manager manager;
static Connection conn = { .manager = &manager };
static Writer writer;
static BackupObject backup = { .manager = &manager, .conn = &conn };

static int method_event(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
	(void)userdata, (void)error;
	ASSERT_TRUE(n_calls < MAX_CALLS);
	calls[n_calls++] = sd_bus_message_ref(msg);
	return 1; /* answered later, by answer() */
}

static const sd_bus_vtable writer_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("Event", "sa{sv}", "bis", method_event, 0),
	SD_BUS_VTABLE_END,
};

/* Run both ends until nothing is left to do on either. */
static void pump(void)
{
	for (int idle = 0; idle < 3;) {
		int a = sd_bus_process(vssd_bus, NULL), b = sd_bus_process(writer_bus, NULL);

		ASSERT_TRUE(a >= 0 && b >= 0);
		if (a > 0 || b > 0) {
			idle = 0;
			continue;
		}
		idle++;
		(void)poll(&(struct pollfd){ .fd = sd_bus_get_fd(writer_bus), .events = POLLIN }, 1, 20);
	}
}

static void answer(size_t i)
{
	ASSERT_TRUE(i < n_calls);
	ASSERT_OK(sd_bus_reply_method_return(calls[i], "bis", 1, S_OK, ""));
	calls[i] = sd_bus_message_unref(calls[i]);
	pump();
}

static void setup(void)
{
	sd_id128_t id = SD_ID128_MAKE(7e, 57, 00, 01, 00, 00, 00, 00, 00, 00, 00, 00, 00, 00, 00, 01);
	int fds[2];

	ASSERT_EQ_INT(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds));
	ASSERT_OK(sd_bus_new(&vssd_bus));
	ASSERT_OK(sd_bus_set_fd(vssd_bus, fds[0], fds[0]));
	ASSERT_OK(sd_bus_set_server(vssd_bus, 1, id));
	ASSERT_OK(sd_bus_set_trusted(vssd_bus, true));
	ASSERT_OK(sd_bus_start(vssd_bus));
	ASSERT_OK(sd_bus_new(&writer_bus));
	ASSERT_OK(sd_bus_set_fd(writer_bus, fds[1], fds[1]));
	ASSERT_OK(sd_bus_set_trusted(writer_bus, true));
	ASSERT_OK(sd_bus_start(writer_bus));
	ASSERT_OK(sd_bus_add_object_vtable(writer_bus, NULL, VSS_BUS_WRITER_PATH, VSS_BUS_WRITER_IFACE,
					   writer_vtable, NULL));
	pump();

	conn.bus = vssd_bus;
	writer = (Writer){ .manager = &manager, .conn = &conn, .name = (char *)"w", .level = VSS_APP_FRONT_END,
			   .freeze_timeout_ms = 60000, .state = VSS_WS_STABLE };
	LIST_PREPEND(writers, manager.writers, &writer);
	ASSERT_OK(participants_make(&backup));
	ASSERT_EQ_UINT(1, backup.n_participants);
}

static void teardown(void)
{
	participants_free(&backup);
	for (size_t i = 0; i < n_calls; i++)
		sd_bus_message_unref(calls[i]);
	vssd_bus = sd_bus_flush_close_unref(vssd_bus);
	writer_bus = sd_bus_flush_close_unref(writer_bus);
}

static void count_done(BackupObject *b, void *userdata)
{
	(void)b;
	(*(unsigned *)userdata)++;
}

static bool select_none(const Participant *p, void *data)
{
	(void)p, (void)data;
	return false;
}

static void test_round_waits_for_its_answer(void)
{
	unsigned done = 0;

	round_start(&backup, &backup.round, EVENT_PREPARE_BACKUP, NULL, NULL, count_done, &done);
	pump();
	ASSERT_EQ_UINT(1, n_calls);
	ASSERT_TRUE(backup.facts.round_in_flight);
	ASSERT_EQ_UINT(1, backup.round.outstanding);
	ASSERT_EQ_UINT(0, done);
	answer(0);
	ASSERT_EQ_UINT(1, done);
	ASSERT_FALSE(backup.facts.round_in_flight);
	ASSERT_EQ_UINT(0, backup.round.outstanding);
	ASSERT_EQ_INT(VSS_WS_STABLE, backup.participants[0].state);
}

/* An answer for a round that was cancelled neither ends the next round nor
 * makes its count wrap around. */
static void test_late_answer_after_cancel(void)
{
	unsigned first = 0, second = 0;
	uint64_t generation;
	size_t base = n_calls;

	round_start(&backup, &backup.round, EVENT_PREPARE_SNAPSHOT, NULL, NULL, count_done, &first);
	pump();
	generation = backup.round.generation;
	round_cancel(&backup.round, NULL);
	ASSERT_FALSE(backup.facts.round_in_flight);
	ASSERT_EQ_UINT(0, backup.round.outstanding);
	ASSERT_TRUE(backup.round.generation > generation);
	ASSERT_NULL(backup.participants[0].call);

	round_start(&backup, &backup.round, EVENT_POST_SNAPSHOT, NULL, NULL, count_done, &second);
	pump();
	ASSERT_EQ_UINT(base + 2, n_calls);
	answer(base);                   /* the cancelled round's */
	ASSERT_EQ_UINT(0, first);
	ASSERT_EQ_UINT(0, second);
	ASSERT_EQ_UINT(1, backup.round.outstanding);
	ASSERT_TRUE(backup.facts.round_in_flight);
	answer(base + 1);
	ASSERT_EQ_UINT(0, first);
	ASSERT_EQ_UINT(1, second);
	ASSERT_EQ_UINT(0, backup.round.outstanding);
	ASSERT_FALSE(backup.facts.round_in_flight);
	/* Cancelling a round that is over does nothing. */
	round_cancel(&backup.round, NULL);
	ASSERT_EQ_UINT(0, backup.round.outstanding);
}

/* The way rounds overlapped when StartSnapshotSet and PrepareForBackup were
 * taken during GatherWriterMetadata: Identify in flight to a writer, then a
 * round that does not select it (it has not answered Identify) ends at once,
 * then the late Identify answer comes. */
static void test_late_answer_of_a_writer_the_next_round_left_out(void)
{
	unsigned old = 0, next = 0;
	size_t base = n_calls;

	round_start(&backup, &backup.round, EVENT_PREPARE_BACKUP, NULL, NULL, count_done, &old);
	pump();
	round_start(&backup, &backup.round, EVENT_PREPARE_BACKUP, select_none, NULL, count_done, &next);
	ASSERT_EQ_UINT(1, next);
	ASSERT_EQ_UINT(base + 1, n_calls);
	answer(base);
	ASSERT_EQ_UINT(0, old);
	ASSERT_EQ_UINT(1, next);
	ASSERT_EQ_UINT(0, backup.round.outstanding);
	ASSERT_FALSE(backup.facts.round_in_flight);
}

/* A round started over one in flight (which the state machine prevents)
 * replaces it: only the new round's answer counts, once. */
static void test_overlapping_round_replaces_the_old(void)
{
	unsigned old = 0, new = 0;
	size_t base = n_calls;

	round_start(&backup, &backup.round, EVENT_PREPARE_BACKUP, NULL, NULL, count_done, &old);
	pump();
	round_start(&backup, &backup.round, EVENT_BACKUP_COMPLETE, NULL, NULL, count_done, &new);
	pump();
	ASSERT_EQ_UINT(base + 2, n_calls);
	ASSERT_EQ_UINT(1, backup.round.outstanding);
	answer(base + 1);
	ASSERT_EQ_UINT(1, new);
	answer(base);                   /* late, and twice over: nothing */
	ASSERT_EQ_UINT(0, old);
	ASSERT_EQ_UINT(1, new);
	ASSERT_EQ_UINT(0, backup.round.outstanding);
	ASSERT_FALSE(backup.facts.round_in_flight);
}

/* Nobody selected: the round is over at once, and the object is free. */
static void test_empty_round(void)
{
	unsigned done = 0;
	size_t base = n_calls;

	round_start(&backup, &backup.round, EVENT_FREEZE, select_none, NULL, count_done, &done);
	ASSERT_EQ_UINT(1, done);
	ASSERT_FALSE(backup.facts.round_in_flight);
	pump();
	ASSERT_EQ_UINT(base, n_calls);
}

int main(void)
{
	setup();
	RUN_TEST(test_round_waits_for_its_answer);
	RUN_TEST(test_late_answer_after_cancel);
	RUN_TEST(test_late_answer_of_a_writer_the_next_round_left_out);
	RUN_TEST(test_overlapping_round_replaces_the_old);
	RUN_TEST(test_empty_round);
	teardown();
	TEST_SUMMARY();
	return 0;
}
