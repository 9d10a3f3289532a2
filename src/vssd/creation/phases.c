/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The phases at which the DoSnapshotSet engine waits while vssd talks to
 * writers and holds the transaction managers (docs/WRITERS.md).
 *
 * Everything here runs on vssd's main thread but creation_pause(): the
 * engine's thread, at a phase, posts it (Creation.pause_fd) and waits until
 * phase_done().
 */

#include <stdlib.h>
#include <unistd.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "vssd/creation/creation.h"

static void phase_done(Creation *cr, vss_hr hr)
{
	pthread_mutex_lock(&cr->pause_lock);
	cr->phase_active = false;
	cr->phase_result = hr;
	cr->phase_done = true;
	pthread_cond_signal(&cr->pause_cond);
	pthread_mutex_unlock(&cr->pause_lock);
}

vss_hr creation_pause(Job *j, JobPhase phase, void *userdata)
{
	Creation *cr = userdata;
	uint64_t one = 1;
	vss_hr hr;

	(void)j;
	pthread_mutex_lock(&cr->pause_lock);
	if (cr->loop_gone) {
		pthread_mutex_unlock(&cr->pause_lock);
		return phase == PHASE_ABORT ? S_OK : VSS_E_UNEXPECTED;
	}
	cr->phase = phase;
	cr->phase_pending = true;
	cr->phase_done = false;
	pthread_mutex_unlock(&cr->pause_lock);
	if (write(cr->pause_fd, &one, sizeof(one)) < 0)
		return VSS_E_UNEXPECTED;
	pthread_mutex_lock(&cr->pause_lock);
	while (!cr->phase_done)
		pthread_cond_wait(&cr->pause_cond, &cr->pause_lock);
	hr = cr->phase_result;
	pthread_mutex_unlock(&cr->pause_lock);
	return hr;
}

static bool sel_level(const Participant *p, void *data)
{
	const LevelSelect *ls = data;

	return p->taking_part && !p->failed && p->md.level == ls->level && (!ls->frozen || p->frozen_at);
}

/* Freeze in VSS's order: front-end, back-end, system; thaw the other way. */
static const vss_application_level freeze_order[] = { VSS_APP_FRONT_END, VSS_APP_BACK_END, VSS_APP_SYSTEM };

static void freeze_next(BackupObject *b, void *userdata);
static void thaw_next(BackupObject *b, void *userdata);

static void freeze_next(BackupObject *b, void *userdata)
{
	Creation *cr = userdata;

	if (cr->freeze_level >= (int)ELEMENTSOF(freeze_order)) {
		phase_done(cr, S_OK);
		return;
	}
	cr->level_select = (LevelSelect){ .level = freeze_order[cr->freeze_level++] };
	round_start(b, &b->round, EVENT_FREEZE, sel_level, &cr->level_select, freeze_next, cr);
}

static void round_ends_phase(BackupObject *b, void *userdata)
{
	(void)b;
	phase_done(userdata, S_OK);
}

static void transactions_frozen(Transactions *t, vss_hr hr, void *userdata)
{
	Creation *cr = userdata;

	(void)t;
	if (hr != S_OK || !cr->owner) {
		phase_done(cr, hr);
		return;
	}
	cr->freeze_level = 0;
	freeze_next(cr->owner, cr);
}

/* Package transactions were held as long as allowed (and are released):
 * the round that keeps the set waiting ends, and the set fails. */
static void transactions_expired(Transactions *t, void *userdata)
{
	Creation *cr = userdata;

	(void)t;
	if (!cr->phase_active || !cr->owner)
		return;
	round_cancel(&cr->owner->round, "package transactions could be held no longer (TransactionThawTimeoutSec)");
	phase_done(cr, VSS_E_TRANSACTION_THAW_TIMEOUT);
}

static void thaw_next(BackupObject *b, void *userdata)
{
	Creation *cr = userdata;
	usec_t now = now_usec(CLOCK_MONOTONIC);

	if (cr->freeze_level <= 0) {
		phase_done(cr, cr->transactions ? transactions_thaw(cr->transactions) : S_OK);
		return;
	}
	cr->level_select = (LevelSelect){ .level = freeze_order[--cr->freeze_level], .frozen = true };
	/* A writer whose window passed has thawed itself through abort: it
	 * failed at freeze with a timeout, as in VSS. */
	for (size_t i = 0; i < b->n_participants; i++) {
		Participant *p = &b->participants[i];

		if (!sel_level(p, &cr->level_select) || now - p->frozen_at <= p->freeze_timeout_ms * USEC_PER_MSEC)
			continue;
		participant_record(p, VSS_WS_FAILED_AT_FREEZE, VSS_E_WRITERERROR_TIMEOUT,
				   "the set took longer than the writer's freeze timeout");
		p->failed = true;
		writers_notify(b, EVENT_ABORT, NULL, p);
	}
	round_start(b, &b->round, EVENT_THAW, sel_level, &cr->level_select, thaw_next, cr);
}

static void phase_start(Creation *cr, JobPhase phase)
{
	BackupObject *b = cr->owner;
	Manager *m;
	int r;

	/* Stopping, the set is given up: only its abort goes to the writers. */
	if (cr->stopping && phase != PHASE_ABORT) {
		phase_done(cr, VSS_E_UNEXPECTED);
		return;
	}
	/* A requestor that is gone has no writers to talk to. */
	if (!b) {
		phase_done(cr, S_OK);
		return;
	}
	m = b->manager;
	cr->phase_active = true;
	switch (phase) {
	case PHASE_PREPARE_SNAPSHOT:
		round_start(b, &b->round, EVENT_PREPARE_SNAPSHOT, sel_active, NULL, round_ends_phase, cr);
		break;
	case PHASE_FREEZE:
		if (context_has_writers(b->context) && !(b->context & VSS_VOLSNAP_ATTR_NOT_TRANSACTED)) {
			r = transactions_freeze(m, transactions_frozen, transactions_expired, cr, &cr->transactions);
			if (r < 0)
				phase_done(cr, VSS_E_UNEXPECTED);
		} else {
			transactions_frozen(NULL, S_OK, cr);
		}
		break;
	case PHASE_THAW:
		cr->freeze_level = ELEMENTSOF(freeze_order);
		thaw_next(b, cr);
		break;
	case PHASE_POST_SNAPSHOT:
		round_start(b, &b->round, EVENT_POST_SNAPSHOT, sel_active, NULL, round_ends_phase, cr);
		break;
	case PHASE_ABORT:
		writers_notify(b, EVENT_ABORT, sel_identified, NULL);
		cr->transactions = transactions_free(cr->transactions);
		phase_done(cr, S_OK);
		break;
	}
}

/* On the main loop: the job posted a phase. */
int creation_on_pause(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Creation *cr = userdata;
	uint64_t n;
	JobPhase phase;
	bool pending;

	(void)s, (void)revents;
	(void)read(fd, &n, sizeof(n));
	pthread_mutex_lock(&cr->pause_lock);
	pending = cr->phase_pending;
	cr->phase_pending = false;
	phase = cr->phase;
	pthread_mutex_unlock(&cr->pause_lock);
	if (pending)
		phase_start(cr, phase);
	return 0;
}

void creation_end_phase(Creation *cr, vss_hr hr)
{
	if (!cr->phase_active)
		return;
	/* Neither a writer's late answer nor the package lock coming free may
	 * end this phase a second time, or end a later one. */
	if (cr->owner)
		round_cancel(&cr->owner->round, NULL);
	cr->transactions = transactions_free(cr->transactions);
	phase_done(cr, hr);
}

void creation_release_phase(Creation *cr)
{
	creation_end_phase(cr, S_OK);
}

void creation_phases_off(Creation *cr)
{
	pthread_mutex_lock(&cr->pause_lock);
	cr->loop_gone = true;
	/* A phase posted that the loop never picked up. */
	if (cr->phase_pending) {
		cr->phase_pending = false;
		cr->phase_result = cr->phase == PHASE_ABORT ? S_OK : VSS_E_UNEXPECTED;
		cr->phase_done = true;
		pthread_cond_signal(&cr->pause_cond);
	}
	pthread_mutex_unlock(&cr->pause_lock);
}
