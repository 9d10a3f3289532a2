/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The creation of a snapshot set: everything DoSnapshotSet starts, in one
 * module (docs/ENGINE.md).
 *
 *   room.c          room made in shadow storage first, the providers
 *                   measuring on a thread while the loop serves others
 *   creation.c      the set's life on vssd's loop: the intent recorded in
 *                   the catalog, the job started, its outcome recorded (or
 *                   undone), the requestor answered
 *   phases.c        the points where the job waits while vssd talks to
 *                   writers and holds the transaction managers
 *   engine.c        the job, on its own thread: the provider steps of every
 *                   member in the contract's order, under its limits
 *   crew.c          the job's workers, one per member
 *   freeze.c        holding writes: FIFREEZE, and the guard that thaws
 *   transactions.c  dpkg's lock and journald, held with the writers
 *
 * At most one set is being created at a time (the creation slot); it is
 * Manager.creation.
 */

#include <pthread.h>
#include <stdbool.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "vssd/catalog.h"
#include "vssd/creation/engine.h"
#include "vssd/manager.h"

typedef struct Transactions Transactions;

typedef struct LevelSelect {
	vss_application_level level;
	bool frozen;
} LevelSelect;

/* The set being cut. Holds the creation slot until the job ends. */
struct Creation {
	Job *job;
	sd_event_source *source;
	/* The job waits at a phase while vssd talks to writers (JobLimits.pause). */
	int pause_fd;
	sd_event_source *pause_source;
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	JobPhase phase;
	bool phase_pending, phase_done;
	vss_hr phase_result;
	bool phase_active;       /* vssd is working on a phase */
	int freeze_level;        /* during PHASE_FREEZE / PHASE_THAW */
	LevelSelect level_select;
	Transactions *transactions;
	BackupObject *owner;    /* NULL once the requestor released it */
	AsyncOp *async;         /* NULL once released */
	bool abandoned;         /* requestor aborted or went away: do not keep */
	bool stopping;          /* vssd is stopping: every phase fails, nothing is kept */
	bool loop_gone;         /* under pause_lock: nothing serves phases any more */
	CatalogSet set;
	CatalogSnapshot *snaps;
	size_t n_snaps;
};

/* room.c */
/* Called on the loop once room is made (error NULL) or could not be: call is
 * the DoSnapshotSet to answer. */
typedef void (*RoomDone)(BackupObject *b, sd_bus_message *call, const sd_bus_error *error);
/* Before b's set is cut, each member volume at its maximum shadow storage
 * loses its oldest snapshots, as in VSS. 0: nothing to measure, the set may
 * be cut now; 1: room is being made, done will be called (unless
 * room_abandon() comes first), and the creation slot is held (m->room) until
 * the measure in flight ends; negative: error says why. */
int room_make(BackupObject *b, sd_bus_message *call, RoomDone done, sd_bus_error *error);
/* b's DoSnapshotSet, making room, is answered now: with an operation ended
 * with hr when hr is a success (VSS_S_ASYNC_CANCELLED), else with hr and why
 * as its error. The measure in flight is let end, then dropped. */
void room_abandon(BackupObject *b, vss_hr hr, const char *why);
/* The loop has ended: wait for the measure in flight, free the rest. */
void room_stop(Manager *m);

/* creation.c */
/* Cut b's set (DoSnapshotSet, once the state machine allows it and room is
 * made): the set recorded, its members handed to a new job, which is started;
 * m->creation is the new creation, *ret too. On failure the error says why;
 * *ret_members_gone is true when the members went with a job that could not
 * start, so that the set cannot be tried again. */
int creation_start(BackupObject *b, Creation **ret, bool *ret_members_gone, sd_bus_error *error);
/* The engine finished the set of this object's creation. */
void creation_finish(Manager *m);
/* vssd is stopping: the set being cut is given up. Its phase in progress
 * fails now and so will every later one (writers hear Abort), a cancel is
 * asked for, and whatever the job makes is deleted when it ends. */
void creation_stop(Manager *m);
/* b's requestor gave its set up (AbortBackup): cancel it if it has not been
 * committed, and delete it when it ends. */
void creation_abandon(BackupObject *b);

/* phases.c */
/* On the job's thread (JobLimits.pause): hand the phase to the main loop
 * and wait for it to end. */
vss_hr creation_pause(Job *j, JobPhase phase, void *userdata);
int creation_on_pause(sd_event_source *s, int fd, uint32_t revents, void *userdata);
/* The requestor went away: a phase in progress ends now. */
void creation_release_phase(Creation *cr);
/* End the phase vssd is working on now, with hr for the job: its writer
 * round is cancelled and the transactions are let go. */
void creation_end_phase(Creation *cr, vss_hr hr);
/* The loop has ended: the job's phases, waiting or to come, return at once. */
void creation_phases_off(Creation *cr);


/* transactions.c: hold the system's transaction managers (dpkg, journald)
 * for a set. freeze calls done (S_OK or VSS_E_TRANSACTION_FREEZE_TIMEOUT),
 * maybe later; once they were held TransactionThawTimeoutSec, they are
 * released and expired is called; thaw releases and says
 * VSS_E_TRANSACTION_THAW_TIMEOUT if they were held too long. */
int transactions_freeze(Manager *m, void (*done)(Transactions *t, vss_hr hr, void *userdata),
                        void (*expired)(Transactions *t, void *userdata), void *userdata, Transactions **ret);
vss_hr transactions_thaw(Transactions *t);
Transactions *transactions_free(Transactions *t);
