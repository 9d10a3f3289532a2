/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Writers, as vssd sees them (docs/WRITERS.md).
 *
 * A Writer is a registered writer instance: a peer that called
 * RegisterWriter and exports org.vss.Writer1 on its connection. Its state and
 * last failure are the ones `vssadmin list writers` shows.
 *
 * A Participant is a writer as one backup object knows it: what it answered
 * to Identify, whether it takes part in the set, the call in flight. Events
 * go out in rounds: one event to a group of participants at once; the round
 * ends when each answered, failed, timed out or went away.
 */

#include <stdbool.h>
#include <systemd/sd-bus.h>

#include <vss/writer.h>

#include "basic/list.h"
#include "basic/util.h"
#include "protocol/bus.h"

typedef struct Manager Manager;
typedef struct Connection Connection;
typedef struct BackupObject BackupObject;
typedef struct Participant Participant;
typedef struct Round Round;

typedef struct Writer {
	Manager *manager;
	Connection *conn;
	vss_id class_id;
	vss_id instance_id;
	char *name;
	char *instance_name;
	vss_usage_type usage;
	vss_source_type source;
	vss_application_level level;
	uint32_t freeze_timeout_ms;
	/* As of its last event, from any requestor. */
	vss_writer_state state;
	vss_hr failure;
	char *message;
	Participant *participants;
	LIST_FIELDS(struct Writer, writers);
} Writer;

struct Participant {
	BackupObject *backup;
	Writer *writer;              /* NULL once the writer left */
	vss_writer_metadata md;      /* identity from registration, the rest from Identify */
	bool identified;             /* answered Identify */
	bool taking_part;            /* in the set being made */
	bool failed;                 /* failed during this set: no more events but abort */
	bool failed_after_cut;       /* that failure was a Thaw's: the cut was made while it was
	                              * frozen, so the set keeps its consistency */
	bool froze_nothing;          /* its Freeze held nothing (vss_writer_set_nothing_frozen()) */
	usec_t frozen_at;            /* CLOCK_MONOTONIC; 0 when not frozen */
	uint32_t freeze_timeout_ms;
	/* Kept when the writer leaves, for status. */
	vss_writer_state state;
	vss_hr failure;
	char *message;
	/* The call in flight, in a round. */
	sd_bus_slot *call;
	Round *round;
	uint64_t generation;         /* of the round the call belongs to */
	WriterEvent event;
	LIST_FIELDS(Participant, by_writer);
};

typedef void (*round_done_fn)(BackupObject *b, void *userdata);

struct Round {
	BackupObject *backup;
	/* Counts the rounds of the object: an answer is counted only by the
	 * round it was asked for, never by a later one. */
	uint64_t generation;
	unsigned outstanding;        /* 0: no round in flight */
	round_done_fn done;
	void *userdata;
};

/* connection.c's RegisterWriter and disconnect. */
int writer_register(Connection *c, sd_bus_message *msg, sd_bus_error *error);
Writer *writer_free(Writer *w);

/* The state a successful event leads to, and the one a failed event gives. */
vss_writer_state writer_state_after(WriterEvent e, vss_writer_state before);
vss_writer_state writer_state_failed(WriterEvent e, vss_writer_state before);

/*
 * Send event to every participant for which select returns true, all at once;
 * done runs when the round is over (at once when nobody was selected). One
 * round per backup object at a time. Identify fills the participants'
 * metadata. A participant that fails is marked failed (and sent abort when
 * the event was a freeze or a thaw).
 */
void round_start(BackupObject *b, Round *round, WriterEvent event, bool (*select)(const Participant *p, void *),
                 void *select_data, round_done_fn done, void *userdata);
/* End the round in flight now, without calling its done: its calls are
 * dropped and answers still to come are ignored. With why, the participants
 * still to answer fail with it. */
void round_cancel(Round *round, const char *why);
/* Send event without waiting for answers (Abort, BackupShutdown). */
void writers_notify(BackupObject *b, WriterEvent event, bool (*select)(const Participant *p, void *),
                    void *select_data);

/* The participants of a backup object: made for every registered writer
 * that is not disabled, when metadata is gathered. */
int participants_make(BackupObject *b);
void participants_free(BackupObject *b);
/* Decide who takes part in a set of these volumes: writers whose files lie on
 * them (or who name no files); a writer with files on a volume outside the
 * set fails with VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT. */
void participants_select(BackupObject *b, char *const *volumes, size_t n);
/* Whether the set is application-consistent: every writer answered
 * Identify, none taking part failed before the cut (or said at Thaw that the
 * snapshot is inconsistent), and at least one froze something. */
bool participants_all_succeeded(BackupObject *b);
/* Record an outcome on a participant and on its writer. */
void participant_record(Participant *p, vss_writer_state state, vss_hr failure, const char *message);
/* A status for each participant (identified or not). */
int participants_status(BackupObject *b, sd_bus_message *reply);
