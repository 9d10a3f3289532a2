/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The DoSnapshotSet engine: drives every member of a set through the provider
 * protocol (docs/ENGINE.md) on its own thread, so that vssd keeps answering
 * while a set is cut. It touches neither the catalog nor D-Bus: vssd records
 * intent before it starts and the outcome after it ends.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "basic/util.h"
#include "providers/provider.h"

typedef enum Consistency {
	CONSISTENCY_NONE,
	/* Each member was cut at its own instant. */
	CONSISTENCY_CRASH_PER_VOLUME,
	/* Every member was held at one instant: the set is one point in time. */
	CONSISTENCY_CRASH_SET,
} Consistency;

const char *consistency_to_string(Consistency c);

typedef struct Job Job;

/* Where the job stops for vssd to talk to writers (docs/ENGINE.md). */
typedef enum JobPhase {
	PHASE_PREPARE_SNAPSHOT,  /* before the providers prepare */
	PHASE_FREEZE,            /* before the flush: writers and transactions freeze */
	PHASE_THAW,              /* after writes are released: they thaw */
	PHASE_POST_SNAPSHOT,     /* after the set is made */
	PHASE_ABORT,             /* the set failed after PHASE_PREPARE_SNAPSHOT */
} JobPhase;

/* How a job runs; the strings and the table belong to vssd and outlive it. */
typedef struct JobLimits {
	usec_t flush_timeout;
	usec_t hold_timeout;
	usec_t hold_settle;             /* pause between the flush and the freeze */
	int freeze_dir_fd;              /* holds the freeze marker (vssd/freeze.h) */
	FaultTable *faults;
	/* Called on the job's thread at each phase; returns when vssd is
	 * done. A failure (a transaction manager that cannot be frozen or
	 * was held too long, vssd stopping) fails the set. NULL: no writers,
	 * no pause. */
	vss_hr (*pause)(Job *j, JobPhase phase, void *userdata);
	void *pause_userdata;
	/* Phases (bits 1 << JobPhase) in which pause has nothing to do and is
	 * not called: each call is a hand-over to vssd's loop and back. */
	unsigned no_pause;
	/* Called on the job's thread once the members are prepared and again
	 * after the flush, just before writes are held: whether there is room
	 * for the set (the host reserve). A failure, with its reason in msg,
	 * fails the set. NULL: always room. */
	vss_hr (*admit)(const ProviderMember *members, size_t n, void *userdata, char *msg, size_t size);
	void *admit_userdata;
} JobLimits;

struct Job {
	/* Inputs; the members are owned by the job. */
	ProviderMember *members;
	size_t n_members;
	JobLimits limits;

	/* Cancellation: honoured until the commit starts. */
	pthread_mutex_t lock;
	bool cancel_requested;
	bool committing;

	/* Outputs, valid once the job has ended. */
	vss_hr result;
	char message[512];
	int64_t created_us;             /* CLOCK_REALTIME at the commit */
	usec_t prepare_us, flush_us, hold_window_us, total_us;
	Consistency consistency;

	/* Readable (eventfd) once the job has ended. */
	int done_fd;
	pthread_t thread;
	bool started;
};

/* A job for these members (taken over: *members is cleared). */
int job_new(ProviderMember **members, size_t n, const JobLimits *limits, Job **ret);
/* Joins the thread first if it runs. */
Job *job_free(Job *j);

/* Start the job's thread. */
int job_start(Job *j);
/* After done_fd fired: join the thread. */
void job_join(Job *j);
/* Run the whole job on the calling thread (what job_start's thread does). */
vss_hr job_run(Job *j);

/* Ask for cancellation. True when it will be honoured (the commit has not
 * started), false when the job is past that point. */
bool job_cancel(Job *j);
