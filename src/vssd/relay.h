/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A relay between an untrusted peer's socket and the sd_bus that serves it.
 *
 * sd-bus reads a message into a buffer of the size the message's header
 * declares (up to 128 MiB) as its bytes arrive, and has no knob to lower
 * that: a peer that sends half of a large message makes vssd hold half of
 * it. So vssd gives the sd_bus of every peer but root one end of a
 * socketpair and passes the peer's bytes on itself, reading the D-Bus
 * framing as it goes: authentication lines (RELAY_AUTH_MAX bytes in all),
 * then messages of at most max_message bytes each, whose header is checked
 * before any of their body is read. A peer that breaks either rule is cut
 * off. What vssd holds for such a peer is the relay's two buffers and one
 * message in sd-bus: a few tens of KiB for a peer without backup privilege,
 * up to MaxBackupGroupMessageSize for a member of the backup group.
 *
 * The relay reads nothing from the peer while the peer does not read its
 * answers, so a peer that only sends cannot make sd-bus queue replies
 * without bound either.
 */

#include <stddef.h>
#include <systemd/sd-event.h>

#define RELAY_AUTH_MAX (16 * 1024)

typedef struct Relay Relay;

/* Start relaying peer_fd (taken over, closed by relay_free()) to a new
 * socket, *ret_bus_fd, for sd_bus_set_fd(). broken is called once when the
 * peer breaks the framing or the stream ends or fails; the relay stops, and
 * sd-bus sees its socket close. */
int relay_new(sd_event *event, int peer_fd, size_t max_message, void (*broken)(void *userdata, const char *why),
              void *userdata, int *ret_bus_fd, Relay **ret);
Relay *relay_free(Relay *r);
