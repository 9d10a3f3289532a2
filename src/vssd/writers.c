/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "basic/id.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/props.h"
#include "vssd/manager.h"

/* Events other than freeze get this long to answer. */
#define EVENT_TIMEOUT_USEC (60 * USEC_PER_SEC)

vss_writer_state writer_state_after(WriterEvent e, vss_writer_state before)
{
	switch (e) {
	case EVENT_IDENTIFY:
		/* A writer that answers is no longer failed at identify. */
		return before == VSS_WS_FAILED_AT_IDENTIFY ? VSS_WS_STABLE : before;
	case EVENT_PREPARE_BACKUP:
		return VSS_WS_STABLE;
	case EVENT_PREPARE_SNAPSHOT:
		return VSS_WS_WAITING_FOR_FREEZE;
	case EVENT_FREEZE:
		return VSS_WS_WAITING_FOR_THAW;
	case EVENT_THAW:
		return VSS_WS_WAITING_FOR_POST_SNAPSHOT;
	case EVENT_POST_SNAPSHOT:
		return VSS_WS_WAITING_FOR_BACKUP_COMPLETE;
	case EVENT_BACKUP_COMPLETE:
		return VSS_WS_STABLE;
	case EVENT_PRE_RESTORE:
	case EVENT_POST_RESTORE:
		return VSS_WS_STABLE;
	case EVENT_ABORT:
		/* Back to normal, but a failure stays on record. */
		return before >= VSS_WS_FAILED_AT_IDENTIFY ? before : VSS_WS_STABLE;
	default:
		return before;
	}
}

vss_writer_state writer_state_failed(WriterEvent e, vss_writer_state before)
{
	switch (e) {
	case EVENT_IDENTIFY:
		return VSS_WS_FAILED_AT_IDENTIFY;
	case EVENT_PREPARE_BACKUP:
		return VSS_WS_FAILED_AT_PREPARE_BACKUP;
	case EVENT_PREPARE_SNAPSHOT:
		return VSS_WS_FAILED_AT_PREPARE_SNAPSHOT;
	case EVENT_FREEZE:
		return VSS_WS_FAILED_AT_FREEZE;
	case EVENT_THAW:
		return VSS_WS_FAILED_AT_THAW;
	case EVENT_POST_SNAPSHOT:
		return VSS_WS_FAILED_AT_POST_SNAPSHOT;
	case EVENT_BACKUP_COMPLETE:
		return VSS_WS_FAILED_AT_BACKUP_COMPLETE;
	case EVENT_BACKUP_SHUTDOWN:
		return VSS_WS_FAILED_AT_BACKUPSHUTDOWN;
	case EVENT_PRE_RESTORE:
		return VSS_WS_FAILED_AT_PRE_RESTORE;
	case EVENT_POST_RESTORE:
		return VSS_WS_FAILED_AT_POST_RESTORE;
	default:
		return before;
	}
}

/* Record an outcome on the participant and on the writer itself. message
 * may be the participant's own, so it is copied before the old one goes. */
void participant_record(Participant *p, vss_writer_state state, vss_hr failure, const char *message)
{
	char *copy = message && *message ? strdup(message) : NULL;

	p->state = state;
	p->failure = failure;
	if (p->writer) {
		Writer *w = p->writer;

		w->state = state;
		w->failure = failure;
		free(w->message);
		w->message = strdup_or_null(copy);
	}
	free(p->message);
	p->message = copy;
}

/* BackupComplete's "Components": what SetBackupSucceeded recorded, of every
 * writer (each reads its own, by instance id). */
static void append_outcomes(sd_bus_message *m, BackupObject *b)
{
	char buf[VSS_ID_STRING_MAX];

	(void)sd_bus_message_open_container(m, 'e', "sv");
	(void)sd_bus_message_append(m, "s", "Components");
	(void)sd_bus_message_open_container(m, 'v', "a(sssb)");
	(void)sd_bus_message_open_container(m, 'a', "(sssb)");
	for (size_t i = 0; i < b->n_components; i++) {
		const Component *c = &b->components[i];

		if (c->succeeded >= 0)
			(void)sd_bus_message_append(m, "(sssb)", vss_id_format(&c->instance_id, buf),
						    c->logical_path ?: "", c->name, c->succeeded);
	}
	(void)sd_bus_message_close_container(m);
	(void)sd_bus_message_close_container(m);
	(void)sd_bus_message_close_container(m);
}

static void append_context(sd_bus_message *m, BackupObject *b, WriterEvent e)
{
	char buf[VSS_ID_STRING_MAX];
	char *volumes[b->facts.n_volumes + 1], **list = volumes;
	size_t n = 0;

	/* The volumes of the set; the job holds the members once it runs,
	 * and then the set's list is sent as it is (a restore's, from its
	 * document, has no members at all: n_volumes does not count it). */
	for (; b->members && n < b->facts.n_volumes; n++)
		volumes[n] = b->members[n].volume;
	volumes[n] = NULL;
	if (!b->members && b->set_volumes)
		list = b->set_volumes;
	(void)sd_bus_message_open_container(m, 'a', "{sv}");
	(void)sd_bus_message_append(m, "{sv}", "SetId", "s", vss_id_format(&b->set_id, buf));
	(void)sd_bus_message_append(m, "{sv}", "Context", "i", b->context);
	(void)sd_bus_message_append(m, "{sv}", "BackupType", "i", (int32_t)b->backup_type);
	(void)sd_bus_message_open_container(m, 'e', "sv");
	(void)sd_bus_message_append(m, "s", "Volumes");
	(void)sd_bus_message_open_container(m, 'v', "as");
	(void)sd_bus_message_append_strv(m, list);
	(void)sd_bus_message_close_container(m);
	(void)sd_bus_message_close_container(m);
	if (e == EVENT_BACKUP_COMPLETE)
		append_outcomes(m, b);
	if (e == EVENT_PRE_RESTORE || e == EVENT_POST_RESTORE)
		restore_append_components(m, b);
	(void)sd_bus_message_close_container(m);
}

/* The round is over: the object may take its next call, then hear of it. */
static void round_end(Round *r)
{
	r->backup->facts.round_in_flight = false;
	r->done(r->backup, r->userdata);
}

static void round_finish_one(Participant *p)
{
	Round *r = p->round;

	p->call = sd_bus_slot_unref(p->call);
	p->round = NULL;
	/* An answer for a round that is over (cancelled, or replaced) counts
	 * for nothing: the round in flight waits only for its own. */
	if (!r || p->generation != r->generation || r->outstanding == 0)
		return;
	if (--r->outstanding == 0)
		round_end(r);
}

/* What an event's answer (or its absence) means for a participant. */
static void outcome(Participant *p, WriterEvent e, bool ok, vss_hr failure, const char *message)
{
	if (ok && e == EVENT_IDENTIFY && p->state != VSS_WS_FAILED_AT_IDENTIFY) {
		/* Answering Identify is no new outcome: the last error stays for
		 * `vssadmin list writers` until the next backup's events. */
		return;
	}
	if (ok) {
		participant_record(p, writer_state_after(e, p->state), S_OK, NULL);
		/* S_FALSE: it succeeded, holding nothing (a hook writer without
		 * scripts): no application is consistent on its account. */
		if (e == EVENT_FREEZE)
			p->froze_nothing = failure == S_FALSE;
		if (e == EVENT_FREEZE)
			p->frozen_at = now_usec(CLOCK_MONOTONIC);
		if (e == EVENT_THAW || e == EVENT_ABORT)
			p->frozen_at = 0;
		return;
	}
	log_warning("writer %s failed %s: %s (0x%08x)%s%s", p->md.name, writer_event_to_string(e),
		    vss_hr_name(failure), (unsigned)failure, message && *message ? ": " : "", message ?: "");
	participant_record(p, e == EVENT_ABORT ? p->state : writer_state_failed(e, p->state), failure, message);
	if (e != EVENT_ABORT) {
		/* A Thaw failure comes after the cut, which was made while the
		 * writer was frozen: its data in the set is as it left it, unless
		 * it says the snapshot is not (a lock it lost while frozen). */
		if (!p->failed)
			p->failed_after_cut = e == EVENT_THAW && failure != VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT;
		p->failed = true;
	}
	/* A writer that failed while preparing, frozen or thawing may hold
	 * something half done: it is told to abort, as in VSS. */
	if (e >= EVENT_PREPARE_BACKUP && e <= EVENT_POST_SNAPSHOT && p->writer)
		writers_notify(p->backup, EVENT_ABORT, NULL, p);
}

static int read_identify(sd_bus_message *reply, Participant *p)
{
	Writer *w = p->writer;
	vss_writer_metadata *md = &p->md;

	vss_writer_metadata_clear(md);
	md->instance_id = w->instance_id;
	md->class_id = w->class_id;
	md->name = strdup(w->name);
	md->instance_name = strdup_or_null(w->instance_name);
	md->usage = w->usage;
	md->source = w->source;
	md->level = w->level;
	if (!md->name)
		return -ENOMEM;
	return bus_read_components(reply, md);
}

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	Participant *p = userdata;
	const sd_bus_error *e = sd_bus_message_get_error(reply);
	WriterEvent ev = p->event;
	const char *message = NULL;
	int ok = 0, r;
	vss_hr failure;

	(void)error;
	if (e) {
		/* No answer in time, or the writer is gone. */
		bool gone = !sd_bus_is_open(sd_bus_message_get_bus(reply));
		bool timeout = !gone && (sd_bus_error_has_name(e, SD_BUS_ERROR_TIMEOUT) ||
					 sd_bus_error_has_name(e, SD_BUS_ERROR_NO_REPLY));

		failure = timeout && ev == EVENT_FREEZE ? VSS_E_WRITERERROR_TIMEOUT : VSS_E_WRITER_NOT_RESPONDING;
		outcome(p, ev, false, failure, gone ? "the writer has gone away" : e->message);
	} else {
		/* Field by field: sd_bus_message_read() parses its format at
		 * every call, once per writer and event. */
		r = sd_bus_message_read_basic(reply, 'b', &ok);
		if (r > 0)
			r = sd_bus_message_read_basic(reply, 'i', &failure);
		if (r > 0)
			r = sd_bus_message_read_basic(reply, 's', &message);
		if (r == 0)
			r = -EBADMSG;
		if (r >= 0 && ok && ev == EVENT_IDENTIFY) {
			r = read_identify(reply, p);
			p->identified = r >= 0;
		}
		if (r < 0)
			outcome(p, ev, false, VSS_E_WRITER_NOT_RESPONDING, "malformed answer");
		else
			outcome(p, ev, ok, failure, message);
	}
	round_finish_one(p);
	return 0;
}

/*
 * One message of an event serves every writer whose call has the same
 * timeout (the timeout is sealed in it): building the set's context and
 * sealing it for each writer was a tenth of vssd's CPU in a set with 32
 * writers (perf), and the same for all of them. sd-bus sends a
 * sealed message on any bus. Its cookie comes from one counter for all the
 * writers' buses, never from the bus it was made on: sent to a bus whose
 * own counter is further on, a cookie from another bus's counter could be
 * one of that bus's earlier calls, and a late answer to that call would be
 * taken for the answer to this one.
 */
typedef struct EventMessage {
	sd_bus_message *m;
	usec_t timeout;
} EventMessage;

static void event_message_done(EventMessage *em)
{
	em->m = sd_bus_message_unref(em->m);
}

static int event_message_get(EventMessage *em, Participant *p, WriterEvent e, bool reply, sd_bus_message **ret)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	Writer *w = p->writer;
	Manager *mgr = w->manager;
	usec_t timeout = e == EVENT_FREEZE ? w->freeze_timeout_ms * USEC_PER_MSEC : EVENT_TIMEOUT_USEC;
	sd_bus *bus = w->conn->bus;
	int r;

	if (timeout == 0) {
		r = sd_bus_get_method_call_timeout(bus, &timeout);
		if (r < 0)
			return r;
	}
	if (em->m && em->timeout == timeout) {
		*ret = em->m;
		return 0;
	}
	r = sd_bus_message_new_method_call(bus, &m, VSS_BUS_NAME, VSS_BUS_WRITER_PATH, VSS_BUS_WRITER_IFACE,
					   e == EVENT_IDENTIFY ? "Identify" : "Event");
	if (r >= 0 && e != EVENT_IDENTIFY) {
		r = sd_bus_message_append(m, "s", writer_event_to_string(e));
		append_context(m, p->backup, e);
	}
	if (r >= 0 && !reply)
		r = sd_bus_message_set_expect_reply(m, 0);
	if (r < 0)
		return r;
	/* 32 bits, never 0; a wrap-around after 4 billion calls meets no
	 * call still waiting. */
	if (++mgr->writer_cookie == 0)
		mgr->writer_cookie = 1;
	r = sd_bus_message_seal(m, mgr->writer_cookie, timeout);
	if (r < 0)
		return r;
	sd_bus_message_unref(em->m);
	em->m = TAKE_PTR(m);
	em->timeout = timeout;
	*ret = em->m;
	return 0;
}

static int send_call(EventMessage *em, Participant *p, WriterEvent e, bool in_round)
{
	Writer *w = p->writer;
	sd_bus *bus = w->conn->bus;
	sd_bus_message *m;
	int r;

	r = event_message_get(em, p, e, in_round, &m);
	if (r < 0)
		return r;
	/* The call's timeout (and any output left queued) is for vssd to
	 * wait for on that connection. */
	connection_touched(w->conn);
	if (!in_round)
		/* Nobody waits: a floating call whose answer only updates the
		 * writer, which outlives it or takes it along. */
		return sd_bus_call_async(bus, NULL, m, NULL, NULL, em->timeout);
	p->event = e;
	return sd_bus_call_async(bus, &p->call, m, on_reply, p, em->timeout);
}

void round_start(BackupObject *b, Round *round, WriterEvent event, bool (*select)(const Participant *p, void *),
                 void *select_data, round_done_fn done, void *userdata)
{
	_cleanup_(event_message_done) EventMessage em = {};
	uint64_t generation;

	/* The state machine lets one round run at a time; should another
	 * start anyway, the old one's answers must not count for the new. */
	if (round->outstanding > 0) {
		log_warning("writer round for %s started while another was in flight; cancelling that one",
			    writer_event_to_string(event));
		round_cancel(round, NULL);
	}
	generation = round->generation + 1;
	*round = (Round){ .backup = b, .generation = generation, .outstanding = 1, .done = done, .userdata = userdata };
	b->facts.round_in_flight = true;
	for (size_t i = 0; i < b->n_participants; i++) {
		Participant *p = &b->participants[i];

		if (select && !select(p, select_data))
			continue;
		if (!p->writer) {
			outcome(p, event, false, VSS_E_WRITER_NOT_RESPONDING, "the writer has gone away");
			continue;
		}
		p->round = round;
		p->generation = generation;
		round->outstanding++;
		if (send_call(&em, p, event, true) < 0) {
			outcome(p, event, false, VSS_E_WRITER_NOT_RESPONDING, "cannot send the event");
			round_finish_one(p);
		}
	}
	/* The extra count keeps the round open while it is being sent. */
	if (--round->outstanding == 0)
		round_end(round);
}

void round_cancel(Round *round, const char *why)
{
	BackupObject *b = round->backup;

	if (!b || round->outstanding == 0)
		return;
	for (size_t i = 0; i < b->n_participants; i++) {
		Participant *p = &b->participants[i];

		if (p->round != round)
			continue;
		/* Dropping the slot drops the reply callback: a late answer
		 * finds nobody. */
		p->call = sd_bus_slot_unref(p->call);
		p->round = NULL;
		if (why)
			outcome(p, p->event, false,
				p->event == EVENT_FREEZE ? VSS_E_WRITERERROR_TIMEOUT : VSS_E_WRITER_NOT_RESPONDING, why);
	}
	round->outstanding = 0;
	round->generation++;
	b->facts.round_in_flight = false;
}

void writers_notify(BackupObject *b, WriterEvent event, bool (*select)(const Participant *p, void *),
                    void *select_data)
{
	_cleanup_(event_message_done) EventMessage em = {};

	for (size_t i = 0; i < b->n_participants; i++) {
		Participant *p = &b->participants[i];

		/* select NULL with select_data: just that participant. */
		if (select ? !select(p, select_data) : select_data && select_data != p)
			continue;
		if (!p->writer)
			continue;
		if (send_call(&em, p, event, false) < 0)
			log_warning("cannot send %s to writer %s", writer_event_to_string(event), p->md.name);
		/* The answer is not awaited: record the intent. */
		participant_record(p, writer_state_after(event, p->state), p->failure, p->message);
		if (event == EVENT_ABORT)
			p->frozen_at = 0;
	}
}

static bool class_in(const vss_id *id, const vss_id *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (vss_id_equal(id, &list[i]))
			return true;
	return false;
}

int participants_make(BackupObject *b)
{
	Writer *w;
	size_t n = 0;

	participants_free(b);
	for (w = b->manager->writers; w; w = w->writers_next)
		n++;
	b->participants = calloc(n ?: 1, sizeof(Participant));
	if (!b->participants)
		return -ENOMEM;
	for (w = b->manager->writers; w; w = w->writers_next) {
		Participant *p;

		if (class_in(&w->class_id, b->disabled_classes, b->n_disabled_classes))
			continue;
		if (b->n_enabled_classes > 0 && !class_in(&w->class_id, b->enabled_classes, b->n_enabled_classes))
			continue;
		p = &b->participants[b->n_participants++];
		p->backup = b;
		p->writer = w;
		p->md.instance_id = w->instance_id;
		p->md.class_id = w->class_id;
		p->md.name = strdup(w->name);
		p->md.level = w->level;
		p->freeze_timeout_ms = w->freeze_timeout_ms;
		p->state = w->state;
		p->failure = w->failure;
		p->message = strdup_or_null(w->message);
		LIST_PREPEND(by_writer, w->participants, p);
		if (!p->md.name)
			return -ENOMEM;
	}
	return 0;
}

void participants_free(BackupObject *b)
{
	for (size_t i = 0; i < b->n_participants; i++) {
		Participant *p = &b->participants[i];

		if (p->writer)
			LIST_REMOVE(by_writer, p->writer->participants, p);
		sd_bus_slot_unref(p->call);
		vss_writer_metadata_clear(&p->md);
		free(p->message);
	}
	free(b->participants);
	b->participants = NULL;
	b->n_participants = 0;
}

static bool below_any(const char *path, char *const *volumes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (path_is_below(path, volumes[i]))
			return true;
	return false;
}

void participants_select(BackupObject *b, char *const *volumes, size_t n)
{
	for (size_t i = 0; i < b->n_participants; i++) {
		Participant *p = &b->participants[i];
		size_t files = 0, inside = 0;
		const char *outside = NULL;

		p->taking_part = false;
		if (!p->identified)
			continue;
		for (size_t c = 0; c < p->md.n_components; c++)
			for (size_t f = 0; f < p->md.components[c].n_files; f++) {
				const char *path = p->md.components[c].files[f].path;

				files++;
				if (below_any(path, volumes, n))
					inside++;
				else
					outside = path;
			}
		/* A writer that names no files (a hook writer) takes part in
		 * every set; one whose files are all elsewhere in none, and in
		 * this backup it has nothing to fail at. */
		p->taking_part = files == 0 || inside > 0;
		/* A failure at PrepareForBackup stays with a writer that takes part. */
		if (!p->taking_part) {
			p->failed = false;
			if (p->state >= VSS_WS_FAILED_AT_IDENTIFY)
				p->state = VSS_WS_STABLE;
			p->failure = S_OK;
			free(p->message);
			p->message = NULL;
		}
		if (p->taking_part && outside) {
			char msg[512];

			snprintf(msg, sizeof(msg), "%s is on a volume that is not in the set", outside);
			participant_record(p, VSS_WS_FAILED_AT_PREPARE_SNAPSHOT, VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT, msg);
			p->failed = true;
			log_warning("writer %s: %s", p->md.name, msg);
		}
	}
}

bool participants_all_succeeded(BackupObject *b)
{
	bool any = false;

	for (size_t i = 0; i < b->n_participants; i++) {
		/* One that could not say where its files are may have them here. */
		if (!b->participants[i].identified)
			return false;
		if (!b->participants[i].taking_part)
			continue;
		if (b->participants[i].failed && !b->participants[i].failed_after_cut)
			return false;
		any = any || !b->participants[i].froze_nothing;
	}
	return any;
}

int participants_status(BackupObject *b, sd_bus_message *reply)
{
	int r = sd_bus_message_open_container(reply, 'a', "(sssiis)");

	for (size_t i = 0; r >= 0 && i < b->n_participants; i++) {
		const Participant *p = &b->participants[i];
		vss_writer_status s = {
			.instance_id = p->md.instance_id,
			.class_id = p->md.class_id,
			.name = p->md.name,
			.state = p->state,
			.failure = p->failure,
			.message = p->message,
		};

		r = bus_append_writer_status(reply, &s);
	}
	return r >= 0 ? sd_bus_message_close_container(reply) : r;
}

static void writer_destroy(Writer *w)
{
	free(w->name);
	free(w->instance_name);
	free(w->message);
	free(w);
}

int writer_register(Connection *c, sd_bus_message *msg, sd_bus_error *error)
{
	Manager *m = c->manager;
	const char *class, *name, *instance_name;
	int32_t usage, source, level;
	uint32_t timeout;
	char buf[VSS_ID_STRING_MAX], path[64];
	Writer *w;
	int r;

	r = sd_bus_message_read(msg, "sssiiiu", &class, &name, &instance_name, &usage, &source, &level, &timeout);
	if (r < 0)
		return r;
	if (!c->privileged)
		return bus_error_set_hr(error, E_ACCESSDENIED,
					"uid %u is neither root nor a member of the backup-operators group \"%s\"",
					(unsigned)c->cred.uid, m->config.backup_group);
	if (c->writer)
		return bus_error_set_hr(error, VSS_E_WRITER_ALREADY_SUBSCRIBED, "this connection has a writer already");
	if (level < VSS_APP_SYSTEM || level > VSS_APP_FRONT_END || name[0] == '\0' || timeout == 0)
		return bus_error_set_hr(error, E_INVALIDARG, "a writer needs a name, a level and a freeze timeout");
	/* Requestors get them back in the metadata, and may index by them. */
	if (usage < VSS_UT_UNDEFINED || usage > VSS_UT_OTHER || source < VSS_ST_UNDEFINED || source > VSS_ST_OTHER)
		return bus_error_set_hr(error, E_INVALIDARG, "usage type %d or source type %d is not valid", usage, source);
	w = calloc(1, sizeof(*w));
	if (!w)
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	if (VSS_FAILED(vss_id_parse(class, &w->class_id))) {
		free(w);
		return bus_error_set_hr(error, E_INVALIDARG, "\"%s\" is not an id", class);
	}
	w->manager = m;
	w->conn = c;
	vss_id_generate(&w->instance_id);
	w->name = strdup(name);
	w->instance_name = *instance_name ? strdup(instance_name) : NULL;
	w->usage = (vss_usage_type)usage;
	w->source = (vss_source_type)source;
	w->level = (vss_application_level)level;
	/* A writer may not make a set wait longer than vssd.conf allows. */
	w->freeze_timeout_ms = (uint32_t)MIN((uint64_t)timeout, m->config.max_writer_freeze_timeout / USEC_PER_MSEC);
	w->state = VSS_WS_STABLE;
	if (!w->name || (*instance_name && !w->instance_name)) {
		writer_destroy(w);
		return bus_error_set_hr(error, E_OUTOFMEMORY, NULL);
	}
	LIST_PREPEND(writers, m->writers, w);
	c->writer = w;
	log_info("writer %s registered (class %s, pid %d, level %d, freeze timeout %u ms%s)", w->name,
		 vss_id_format(&w->class_id, buf), (int)c->cred.pid, level, w->freeze_timeout_ms,
		 w->freeze_timeout_ms < timeout ? ", cut to MaxWriterFreezeTimeoutSec" : "");
	snprintf(path, sizeof(path), "/org/vss/writer/%s", ID_TO_STRING(&w->instance_id) + 1);
	path[strlen(path) - 1] = '\0';
	for (char *s = path; *s; s++)
		if (*s == '-')
			*s = '_';
	return sd_bus_reply_method_return(msg, "os", path, vss_id_format(&w->instance_id, buf));
}

Writer *writer_free(Writer *w)
{
	if (!w)
		return NULL;
	/* Whoever waits for this writer's answer gets none. */
	while (w->participants) {
		Participant *p = w->participants;

		LIST_REMOVE(by_writer, w->participants, p);
		p->writer = NULL;
		if (p->call) {
			outcome(p, p->event, false, VSS_E_WRITER_NOT_RESPONDING, "the writer has gone away");
			round_finish_one(p);
		} else if (p->frozen_at) {
			participant_record(p, VSS_WS_FAILED_AT_FREEZE, VSS_E_WRITER_NOT_RESPONDING, "the writer went away while frozen");
			p->failed = true;
		}
	}
	LIST_REMOVE(writers, w->manager->writers, w);
	w->conn->writer = NULL;
	log_info("writer %s left", w->name);
	writer_destroy(w);
	return NULL;
}
