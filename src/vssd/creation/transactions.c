/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The system's transaction managers, frozen with the writers as VSS freezes
 * KTM and DTC (unless the context has VSS_VOLSNAP_ATTR_NOT_TRANSACTED). On
 * Linux these are:
 *
 *  - the package manager: vssd takes dpkg's frontend lock, so that no package
 *    transaction is half done inside a set; while apt or dpkg holds it, vssd
 *    waits up to TransactionFreezeTimeoutSec, then fails the set with
 *    VSS_E_TRANSACTION_FREEZE_TIMEOUT; once it is held for
 *    TransactionThawTimeoutSec, vssd lets it go at once, whatever the set
 *    waits for, and the set fails with VSS_E_TRANSACTION_THAW_TIMEOUT;
 *  - journald, when it runs: it relinquishes /var during the set
 *    (journalctl --relinquish-var) and flushes to it again afterwards.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/log.h"
#include "providers/fault.h"
#include "vssd/creation/creation.h"
#include "vssd/manager.h"
#include "vssd/spawn-loop.h"

#define RETRY_USEC (50 * USEC_PER_MSEC)
#define JOURNALD_SOCKET "/run/systemd/journal/socket"

struct Transactions {
	Manager *manager;
	int lock_fd;
	usec_t deadline, locked_at;
	sd_event_source *retry, *expiry;
	bool journald;          /* relinquished /var: owes a flush */
	LoopSpawn *relinquishing;
	bool expired;           /* held too long, and released */
	void (*done)(Transactions *t, vss_hr hr, void *userdata);
	void (*expired_cb)(Transactions *t, void *userdata);
	void *userdata;
};

/* journalctl --relinquish-var waits for journald to close its files in /var
 * and answer. */
#define JOURNALCTL_TIMEOUT_USEC (5 * USEC_PER_SEC)

static int journalctl(Transactions *t, const char *arg, void (*done)(const SpawnResult *r, void *userdata),
                      LoopSpawn **ret)
{
	char *argv[] = { (char *)"journalctl", (char *)arg, NULL };

	return fault_point(POINT_FORK) ?: fault_point(POINT_EXEC)
			?: loop_spawn(t->manager->event, argv, &(SpawnOptions){ .timeout = JOURNALCTL_TIMEOUT_USEC },
				      done, t, ret);
}

static void flushed(const SpawnResult *r, void *userdata)
{
	(void)userdata;
	if (!spawn_succeeded(r))
		log_warning("journald did not take /var back; run journalctl --flush");
}

static int try_lock(Transactions *t)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	/* An open-file-description lock conflicts with dpkg's own fcntl lock,
	 * and goes with the descriptor. */
	if (fcntl(t->lock_fd, F_OFD_SETLK, &fl) == 0)
		return 1;
	return errno == EAGAIN || errno == EACCES ? 0 : -errno;
}

static void release(Transactions *t)
{
	if (t->lock_fd >= 0) {
		close(t->lock_fd);
		t->lock_fd = -1;
	}
	/* Relinquishing may have taken effect before it was cut short. */
	if (t->relinquishing) {
		t->relinquishing = loop_spawn_free(t->relinquishing);
		t->journald = true;
	}
	if (t->journald) {
		t->journald = false;
		/* Nobody waits for journald to come back: it flushes what it
		 * kept in /run meanwhile. The Transactions may be gone by
		 * then, so the program runs on its own. */
		if (journalctl(t, "--flush", flushed, NULL) < 0)
			log_warning("journald did not take /var back; run journalctl --flush");
	}
}

static int on_expiry(sd_event_source *s, uint64_t usec, void *userdata)
{
	Transactions *t = userdata;

	(void)s, (void)usec;
	log_error("package transactions held for %llu ms, as long as TransactionThawTimeoutSec allows: "
		  "releasing them; the set fails",
		  (unsigned long long)(t->manager->config.transaction_thaw_timeout / USEC_PER_MSEC));
	release(t);
	t->expired = true;
	t->expiry = sd_event_source_disable_unref(t->expiry);
	if (t->expired_cb)
		t->expired_cb(t, t->userdata);
	return 0;
}

static void relinquished(const SpawnResult *r, void *userdata)
{
	Transactions *t = userdata;

	t->relinquishing = NULL;
	if (spawn_succeeded(r))
		t->journald = true;
	else
		log_warning("journald did not relinquish /var; its writes may land in the set");
	t->done(t, S_OK, t->userdata);
}

static void frozen(Transactions *t, vss_hr hr)
{
	t->retry = sd_event_source_disable_unref(t->retry);
	if (hr == S_OK) {
		t->locked_at = now_usec(CLOCK_MONOTONIC);
		/* The hold ends at its limit even while a writer keeps the
		 * set waiting. */
		if (sd_event_add_time(t->manager->event, &t->expiry, CLOCK_MONOTONIC,
				      t->locked_at + t->manager->config.transaction_thaw_timeout, 0, on_expiry, t) < 0)
			log_warning("cannot time the hold of package transactions; it is checked at the thaw");
		/* The set waits for journald, the loop does not. */
		if (access(JOURNALD_SOCKET, F_OK) == 0) {
			if (journalctl(t, "--relinquish-var", relinquished, &t->relinquishing) >= 0)
				return;
			log_warning("journald did not relinquish /var; its writes may land in the set");
		}
	}
	t->done(t, hr, t->userdata);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	Transactions *t = userdata;
	int r = try_lock(t);

	(void)s;
	if (r > 0) {
		frozen(t, S_OK);
	} else if (r < 0) {
		log_error_errno(r, "cannot take the package manager's lock %s: %m", t->manager->config.dpkg_lock);
		frozen(t, VSS_E_TRANSACTION_FREEZE_TIMEOUT);
	} else if (usec >= t->deadline) {
		log_error("the package manager holds %s: no set while a package transaction runs",
			  t->manager->config.dpkg_lock);
		frozen(t, VSS_E_TRANSACTION_FREEZE_TIMEOUT);
	} else {
		sd_event_source_set_time(t->retry, usec + RETRY_USEC);
		sd_event_source_set_enabled(t->retry, SD_EVENT_ONESHOT);
	}
	return 0;
}

int transactions_freeze(Manager *m, void (*done)(Transactions *t, vss_hr hr, void *userdata),
                        void (*expired)(Transactions *t, void *userdata), void *userdata, Transactions **ret)
{
	Transactions *t = calloc(1, sizeof(*t));
	usec_t now = now_usec(CLOCK_MONOTONIC);
	int r;

	if (!t)
		return -ENOMEM;
	*t = (Transactions){ .manager = m, .lock_fd = -1, .done = done, .expired_cb = expired, .userdata = userdata,
			     .deadline = now + m->config.transaction_freeze_timeout };
	*ret = t;
	if (m->config.dpkg_lock[0]) {
		t->lock_fd = open(m->config.dpkg_lock, O_RDWR | O_CLOEXEC);
		if (t->lock_fd < 0 && errno != ENOENT)
			log_warning_errno(errno, "cannot open %s: %m; package transactions are not held",
					  m->config.dpkg_lock);
	}
	r = t->lock_fd >= 0 ? try_lock(t) : 1;
	if (r != 0) {
		if (r < 0)
			log_warning_errno(r, "cannot lock %s: %m", m->config.dpkg_lock);
		frozen(t, r > 0 ? S_OK : VSS_E_TRANSACTION_FREEZE_TIMEOUT);
		return 0;
	}
	log_info("the package manager holds %s; waiting for it", m->config.dpkg_lock);
	return sd_event_add_time(m->event, &t->retry, CLOCK_MONOTONIC, now + RETRY_USEC, 0, on_retry, t);
}

vss_hr transactions_thaw(Transactions *t)
{
	usec_t held = t->locked_at ? now_usec(CLOCK_MONOTONIC) - t->locked_at : 0;

	t->expiry = sd_event_source_disable_unref(t->expiry);
	release(t);
	if (t->expired)
		return VSS_E_TRANSACTION_THAW_TIMEOUT;
	if (held > t->manager->config.transaction_thaw_timeout) {
		log_error("package transactions were held %llu ms, longer than the %llu ms allowed",
			  (unsigned long long)(held / USEC_PER_MSEC),
			  (unsigned long long)(t->manager->config.transaction_thaw_timeout / USEC_PER_MSEC));
		return VSS_E_TRANSACTION_THAW_TIMEOUT;
	}
	return S_OK;
}

Transactions *transactions_free(Transactions *t)
{
	if (!t)
		return NULL;
	sd_event_source_disable_unref(t->retry);
	(void)transactions_thaw(t);
	sd_event_source_disable_unref(t->expiry);
	free(t);
	return NULL;
}
