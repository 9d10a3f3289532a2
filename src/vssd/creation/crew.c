/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "vssd/creation/crew.h"

typedef enum { W_IDLE, W_BUSY, W_DONE } WorkerState;

typedef struct Worker {
	Crew *crew;
	pthread_t thread;
	WorkerState state;
	crew_fn fn;
	void *item, *userdata;
	int result;
} Worker;

struct Crew {
	pthread_mutex_t lock;
	pthread_cond_t work, finished;
	bool stop;
	size_t n, n_started;
	Worker *workers;
};

static void *worker_main(void *arg)
{
	Worker *w = arg;
	Crew *c = w->crew;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (w->state != W_BUSY && !c->stop)
			pthread_cond_wait(&c->work, &c->lock);
		if (w->state != W_BUSY)
			break;
		pthread_mutex_unlock(&c->lock);
		int r = w->fn(w->item, w->userdata);
		pthread_mutex_lock(&c->lock);
		w->result = r;
		w->state = W_DONE;
		pthread_cond_broadcast(&c->finished);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int crew_new(size_t n, Crew **ret)
{
	pthread_condattr_t attr;
	Crew *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->workers = calloc(n ?: 1, sizeof(Worker));
	if (!c->workers) {
		free(c);
		return -ENOMEM;
	}
	c->n = n;
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&c->work, &attr);
	pthread_cond_init(&c->finished, &attr);
	pthread_condattr_destroy(&attr);

	for (size_t i = 0; i < n; i++) {
		c->workers[i].crew = c;
		r = pthread_create(&c->workers[i].thread, NULL, worker_main, &c->workers[i]);
		if (r != 0) {
			crew_free(c);
			return -r;
		}
		c->n_started++;
	}
	*ret = c;
	return 0;
}

void crew_wait_idle(Crew *c)
{
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n_started; i++)
		while (c->workers[i].state == W_BUSY)
			pthread_cond_wait(&c->finished, &c->lock);
	pthread_mutex_unlock(&c->lock);
}

Crew *crew_free(Crew *c)
{
	if (!c)
		return NULL;
	crew_wait_idle(c);
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_broadcast(&c->work);
	pthread_mutex_unlock(&c->lock);
	for (size_t i = 0; i < c->n_started; i++)
		pthread_join(c->workers[i].thread, NULL);
	pthread_cond_destroy(&c->work);
	pthread_cond_destroy(&c->finished);
	pthread_mutex_destroy(&c->lock);
	free(c->workers);
	free(c);
	return NULL;
}

static bool any_busy(Crew *c, const bool *selected)
{
	for (size_t i = 0; i < c->n; i++)
		if ((!selected || selected[i]) && c->workers[i].state == W_BUSY)
			return true;
	return false;
}

size_t crew_run(Crew *c, crew_fn fn, void **items, void *userdata, const bool *selected,
                int *results, bool *done, usec_t deadline)
{
	struct timespec ts = {
		.tv_sec = (time_t)(deadline / USEC_PER_SEC),
		.tv_nsec = (long)(deadline % USEC_PER_SEC) * 1000,
	};
	size_t running = 0;

	pthread_mutex_lock(&c->lock);
	/* A step that outlived an earlier deadline must end before this
	 * member is given another. */
	for (size_t i = 0; i < c->n; i++)
		while ((!selected || selected[i]) && c->workers[i].state == W_BUSY)
			pthread_cond_wait(&c->finished, &c->lock);

	for (size_t i = 0; i < c->n; i++) {
		done[i] = false;
		if (selected && !selected[i])
			continue;
		/* Field by field: a worker that has not started yet reads its
		 * crew before it can take the lock, so that is never written
		 * again (a whole-struct store may zero it on the way). */
		c->workers[i].state = W_BUSY;
		c->workers[i].fn = fn;
		c->workers[i].item = items[i];
		c->workers[i].userdata = userdata;
		c->workers[i].result = 0;
	}
	pthread_cond_broadcast(&c->work);

	while (any_busy(c, selected)) {
		if (deadline == USEC_INFINITY)
			pthread_cond_wait(&c->finished, &c->lock);
		else if (pthread_cond_timedwait(&c->finished, &c->lock, &ts) == ETIMEDOUT)
			break;
	}

	for (size_t i = 0; i < c->n; i++) {
		if (selected && !selected[i])
			continue;
		if (c->workers[i].state == W_DONE) {
			results[i] = c->workers[i].result;
			done[i] = true;
			c->workers[i].state = W_IDLE;
		} else {
			running++;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return running;
}
