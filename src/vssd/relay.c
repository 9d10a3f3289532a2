/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "basic/macro.h"
#include "vssd/relay.h"

#define RELAY_BUF (16 * 1024)
/* The fixed part of a D-Bus message header: endianness, type, flags,
 * version, body length, serial, length of the header fields array. */
#define HEADER_SIZE 16

typedef struct Buffer {
	uint8_t data[RELAY_BUF];
	size_t off, len;
} Buffer;

typedef enum FrameState {
	FRAME_NUL,      /* the byte a client sends before authenticating */
	FRAME_AUTH,     /* lines, up to and with "BEGIN\r\n" */
	FRAME_HEADER,
	FRAME_BODY,     /* the rest of a message whose size was checked */
} FrameState;

struct Relay {
	int peer_fd, inner_fd;
	sd_event_source *peer_source, *inner_source;
	Buffer up, down;        /* peer to sd-bus, sd-bus to peer */
	size_t max_message;
	FrameState state;
	size_t auth_bytes;
	char line[8];           /* enough to recognise BEGIN */
	size_t line_len;
	uint8_t header[HEADER_SIZE];
	size_t header_len;
	uint64_t body_left;
	bool stopped;
	char why[128];
	void (*broken)(void *userdata, const char *why);
	void *userdata;
};

static uint64_t message_size(const uint8_t *h, bool *ok)
{
	uint32_t body, fields;

	memcpy(&body, h + 4, sizeof(body));
	memcpy(&fields, h + 12, sizeof(fields));
	*ok = h[0] == 'l' || h[0] == 'B';
	if (h[0] == 'B') {
		body = be32toh(body);
		fields = be32toh(fields);
	} else {
		body = le32toh(body);
		fields = le32toh(fields);
	}
	/* The fields array is padded to 8 before the body. */
	return HEADER_SIZE + (((uint64_t)fields + 7) & ~(uint64_t)7) + body;
}

/* Check n bytes of the peer's stream; NULL if they keep to the rules. */
static const char *frame(Relay *r, const uint8_t *p, size_t n)
{
	while (n > 0) {
		size_t k;

		switch (r->state) {
		case FRAME_NUL:
			r->auth_bytes++;
			p++, n--;
			r->state = FRAME_AUTH;
			break;
		case FRAME_AUTH:
			if (++r->auth_bytes > RELAY_AUTH_MAX)
				return "authentication longer than vssd allows";
			if (*p == '\n') {
				bool begin = r->line_len == 6 && memcmp(r->line, "BEGIN\r", 6) == 0;

				r->line_len = 0;
				if (begin)
					r->state = FRAME_HEADER;
			} else {
				if (r->line_len < sizeof(r->line))
					r->line[r->line_len] = (char)*p;
				r->line_len++;
			}
			p++, n--;
			break;
		case FRAME_HEADER: {
			uint64_t size;
			bool ok;

			k = MIN(n, HEADER_SIZE - r->header_len);
			memcpy(r->header + r->header_len, p, k);
			r->header_len += k;
			p += k, n -= k;
			if (r->header_len < HEADER_SIZE)
				break;
			r->header_len = 0;
			size = message_size(r->header, &ok);
			if (!ok)
				return "not a D-Bus message";
			if (size > r->max_message) {
				snprintf(r->why, sizeof(r->why), "a message of %llu bytes, more than the %zu allowed",
					 (unsigned long long)size, r->max_message);
				return r->why;
			}
			r->body_left = size - HEADER_SIZE;
			if (r->body_left > 0)
				r->state = FRAME_BODY;
			break;
		}
		case FRAME_BODY:
			k = (size_t)MIN((uint64_t)n, r->body_left);
			r->body_left -= k;
			p += k, n -= k;
			if (r->body_left == 0)
				r->state = FRAME_HEADER;
			break;
		}
	}
	return NULL;
}

static int stop(Relay *r, const char *why)
{
	if (r->stopped)
		return 0;
	r->stopped = true;
	(void)sd_event_source_set_enabled(r->peer_source, SD_EVENT_OFF);
	(void)sd_event_source_set_enabled(r->inner_source, SD_EVENT_OFF);
	/* sd-bus sees its socket close and ends the connection. */
	if (r->inner_fd >= 0)
		close(r->inner_fd);
	r->inner_fd = -1;
	r->broken(r->userdata, why);
	return 0;
}

/* Write what b holds to fd: 0 when done or when fd is full, or -errno. */
static int flush(Buffer *b, int fd)
{
	while (b->len > 0) {
		ssize_t n = send(fd, b->data + b->off, b->len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		b->off += (size_t)n;
		b->len -= (size_t)n;
	}
	b->off = 0;
	return 0;
}

/* Read into an empty buffer: > 0 bytes, 0 at the end of the stream, -EAGAIN
 * when there is nothing yet, or another -errno. */
static ssize_t fill(Buffer *b, int fd)
{
	ssize_t n = recv(fd, b->data, sizeof(b->data), MSG_DONTWAIT);

	if (n < 0)
		return errno == EINTR ? -EAGAIN : -errno;
	b->off = 0;
	b->len = (size_t)n;
	return n;
}

static void set_events(sd_event_source *s, uint32_t events)
{
	if (events == 0) {
		(void)sd_event_source_set_enabled(s, SD_EVENT_OFF);
		return;
	}
	(void)sd_event_source_set_io_events(s, events);
	(void)sd_event_source_set_enabled(s, SD_EVENT_ON);
}

/* Nothing more is read from the peer until its answers are out and its
 * last bytes are with sd-bus. */
static void update(Relay *r)
{
	if (r->stopped)
		return;
	set_events(r->peer_source, (r->up.len == 0 && r->down.len == 0 ? EPOLLIN : 0) | (r->down.len ? EPOLLOUT : 0));
	set_events(r->inner_source, (r->down.len == 0 ? EPOLLIN : 0) | (r->up.len ? EPOLLOUT : 0));
}

/* One side is ready: pass on what waits to be written to it, then read from
 * it what the other side can take. */
static int on_ready(Relay *r, bool peer, uint32_t revents)
{
	int fd = peer ? r->peer_fd : r->inner_fd, other = peer ? r->inner_fd : r->peer_fd;
	Buffer *pending = peer ? &r->down : &r->up, *in = peer ? &r->up : &r->down;
	const char *why;
	ssize_t n;

	if (pending->len > 0 && flush(pending, fd) < 0)
		return stop(r, NULL);
	if (in->len == 0 && (!peer || r->down.len == 0) && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		n = fill(in, fd);
		if (n == -EAGAIN) {
			update(r);
			return 0;
		}
		if (n <= 0)
			return stop(r, NULL);
		why = peer ? frame(r, in->data, in->len) : NULL;
		if (why)
			return stop(r, why);
		if (flush(in, other) < 0)
			return stop(r, NULL);
	} else if (revents & (EPOLLHUP | EPOLLERR)) {
		return stop(r, NULL);
	}
	update(r);
	return 0;
}

static int on_peer(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	(void)s, (void)fd;
	return on_ready(userdata, true, revents);
}

static int on_inner(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	(void)s, (void)fd;
	return on_ready(userdata, false, revents);
}

int relay_new(sd_event *event, int peer_fd, size_t max_message, void (*broken)(void *userdata, const char *why),
              void *userdata, int *ret_bus_fd, Relay **ret)
{
	Relay *r = calloc(1, sizeof(*r));
	int pair[2], k;

	if (!r) {
		close(peer_fd);
		return -ENOMEM;
	}
	*r = (Relay){ .peer_fd = peer_fd, .inner_fd = -1, .max_message = max_message, .broken = broken,
		      .userdata = userdata };
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) < 0) {
		k = -errno;
		relay_free(r);
		return k;
	}
	r->inner_fd = pair[0];
	k = sd_event_add_io(event, &r->peer_source, peer_fd, EPOLLIN, on_peer, r);
	if (k >= 0)
		k = sd_event_add_io(event, &r->inner_source, r->inner_fd, EPOLLIN, on_inner, r);
	if (k < 0) {
		close(pair[1]);
		relay_free(r);
		return k;
	}
	*ret_bus_fd = pair[1];
	*ret = r;
	return 0;
}

Relay *relay_free(Relay *r)
{
	if (!r)
		return NULL;
	sd_event_source_disable_unref(r->peer_source);
	sd_event_source_disable_unref(r->inner_source);
	if (r->inner_fd >= 0)
		close(r->inner_fd);
	if (r->peer_fd >= 0)
		close(r->peer_fd);
	free(r);
	return NULL;
}
