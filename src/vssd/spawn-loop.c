/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "vssd/spawn-loop.h"

struct LoopSpawn {
	Spawn spawn;
	sd_event_source *exit_source, *out_source, *err_source, *in_source, *timer;
	void (*done)(const SpawnResult *r, void *userdata);
	void *userdata;
	LoopSpawn **owner;      /* cleared when it frees itself */
};

LoopSpawn *loop_spawn_free(LoopSpawn *s)
{
	if (!s)
		return NULL;
	sd_event_source_disable_unref(s->exit_source);
	sd_event_source_disable_unref(s->out_source);
	sd_event_source_disable_unref(s->err_source);
	sd_event_source_disable_unref(s->in_source);
	sd_event_source_disable_unref(s->timer);
	if (s->owner)
		*s->owner = NULL;
	spawn_done(&s->spawn);
	free(s);
	return NULL;
}

static int on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	LoopSpawn *s = userdata;

	(void)revents;
	/* spawn_io() closed fd at its end: the source goes (sd-event ignores
	 * that epoll no longer has it). */
	if (spawn_io(&s->spawn, fd) > 0)
		sd_event_source_set_enabled(src, SD_EVENT_OFF);
	return 0;
}

static int on_exit_(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	LoopSpawn *s = userdata;

	(void)src, (void)fd, (void)revents;
	(void)spawn_reap(&s->spawn);
	if (s->done)
		s->done(&s->spawn.result, s->userdata);
	loop_spawn_free(s);
	return 0;
}

static int on_deadline(sd_event_source *src, uint64_t usec, void *userdata)
{
	LoopSpawn *s = userdata;

	(void)src, (void)usec;
	/* The exit source reports it once the kill took. */
	spawn_kill(&s->spawn, true);
	return 0;
}

int loop_spawn(sd_event *e, char *const argv[], const SpawnOptions *o,
               void (*done)(const SpawnResult *r, void *userdata), void *userdata, LoopSpawn **ret)
{
	LoopSpawn *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	r = spawn_start(argv, o, &s->spawn);
	if (r < 0) {
		free(s);
		return r;
	}
	/* The loop learns of the exit from the pidfd alone. */
	if (s->spawn.pidfd < 0) {
		loop_spawn_free(s);
		return -ENOSYS;
	}
	s->done = done;
	s->userdata = userdata;
	r = sd_event_add_io(e, &s->exit_source, s->spawn.pidfd, EPOLLIN, on_exit_, s);
	if (r >= 0)
		r = sd_event_add_io(e, &s->out_source, s->spawn.out_fd, EPOLLIN, on_io, s);
	if (r >= 0)
		r = sd_event_add_io(e, &s->err_source, s->spawn.err_fd, EPOLLIN, on_io, s);
	if (r >= 0 && s->spawn.in_fd >= 0)
		r = sd_event_add_io(e, &s->in_source, s->spawn.in_fd, EPOLLOUT, on_io, s);
	if (r >= 0 && s->spawn.deadline != USEC_INFINITY)
		r = sd_event_add_time(e, &s->timer, CLOCK_MONOTONIC, s->spawn.deadline, 0, on_deadline, s);
	if (r < 0) {
		loop_spawn_free(s);
		return r;
	}
	if (ret) {
		s->owner = ret;
		*ret = s;
	}
	return 0;
}
