/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test-provider.h"

typedef struct Rule {
	TpAction action;
	int arg;
	bool set;
} Rule;

#define N_KEYS (TP_MAX_MEMBERS + 1)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

static struct {
	Rule rules[_STEP_MAX][N_KEYS];  /* [step][0]: every member */
	unsigned counts[_STEP_MAX][N_KEYS];
	bool released[_STEP_MAX][N_KEYS];
	unsigned rendezvous[_STEP_MAX];
	unsigned busy[N_KEYS];          /* steps in flight, per member */
	bool aborted[N_KEYS];
	unsigned committing;
	bool engine_waits;

	char **entries;
	size_t n_entries;

	unsigned violations;
	char first_violation[256];
} tp;

static void violation_locked(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation_locked(const char *fmt, ...)
{
	va_list ap;

	if (tp.violations++ > 0)
		return;
	va_start(ap, fmt);
	vsnprintf(tp.first_violation, sizeof(tp.first_violation), fmt, ap);
	va_end(ap);
	fprintf(stderr, "test provider: %s\n", tp.first_violation);
}

static void log_locked(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static void log_locked(const char *fmt, va_list ap)
{
	char **entries = realloc(tp.entries, (tp.n_entries + 1) * sizeof(char *));
	char *e;

	if (!entries || vasprintf(&e, fmt, ap) < 0)
		abort();
	tp.entries = entries;
	tp.entries[tp.n_entries++] = e;
}

static void log_lockedf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_lockedf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_locked(fmt, ap);
	va_end(ap);
}

void tp_log(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&lock);
	va_start(ap, fmt);
	log_locked(fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&lock);
}

void tp_reset(void)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < tp.n_entries; i++)
		free(tp.entries[i]);
	free(tp.entries);
	tp = (typeof(tp)){ 0 };
	pthread_mutex_unlock(&lock);
}

void tp_set(ProviderStep step, unsigned member, TpAction action, int arg)
{
	if (step >= _STEP_MAX || member > TP_MAX_MEMBERS)
		abort();
	pthread_mutex_lock(&lock);
	tp.rules[step][member] = (Rule){ .action = action, .arg = arg, .set = true };
	pthread_mutex_unlock(&lock);
}

/* Wait on the shared condition until pred holds or the hang guard fires. */
#define WAIT_LOCKED(pred, what, ...)                                              \
	do {                                                                      \
		struct timespec _ts;                                              \
		clock_gettime(CLOCK_REALTIME, &_ts);                              \
		_ts.tv_sec += TP_HANG_USEC / USEC_PER_SEC;                        \
		while (!(pred))                                                   \
			if (pthread_cond_timedwait(&cond, &lock, &_ts) == ETIMEDOUT) { \
				violation_locked("hung waiting for " what, __VA_ARGS__); \
				break;                                            \
			}                                                         \
	} while (0)

static int step(ProviderStep s, ProviderMember **ms, size_t n)
{
	const char *name = provider_step_name(s);
	unsigned key = ms[0]->index;
	bool waited = false;
	Rule rule;
	int r = 0;

	if (key == 0 || key > TP_MAX_MEMBERS)
		abort();
	pthread_mutex_lock(&lock);
	if (s == STEP_END_PREPARE || (s == STEP_COMMIT && ms[0]->ops->commit_group)) {
		char list[128] = "";

		for (size_t i = 0; i < n; i++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%u", i ? "," : "",
				 ms[i]->index);
		log_lockedf("%s%s %s %s", name, s == STEP_COMMIT ? "_group" : "", ms[0]->ops->name, list);
	} else {
		log_lockedf("%s %u", name, key);
	}
	tp.counts[s][key]++;
	for (size_t i = 0; i < n; i++) {
		unsigned k = ms[i]->index;

		if (tp.busy[k] > 0)
			violation_locked("%s of member %u while another of its steps runs", name, k);
		if (tp.aborted[k])
			violation_locked("%s of member %u after its abort", name, k);
		tp.busy[k]++;
	}
	if (s == STEP_COMMIT && tp.committing++ > 0)
		violation_locked("commit of member %u while another commit runs", key);
	pthread_cond_broadcast(&cond);

	rule = tp.rules[s][key].set ? tp.rules[s][key] : tp.rules[s][0];
	switch (rule.set ? rule.action : TP_RUN) {
	case TP_RUN:
		break;
	case TP_FAIL:
		r = rule.arg;
		break;
	case TP_STALL:
		pthread_mutex_unlock(&lock);
		sleep_usec((usec_t)rule.arg * USEC_PER_MSEC);
		pthread_mutex_lock(&lock);
		break;
	case TP_BLOCK:
		/* An abort of the member lets it go too, so that an engine that
		 * does not wait for it fails the test rather than hanging it. */
		WAIT_LOCKED(tp.released[s][key] || tp.aborted[key], "the release of %s %u", name, key);
		waited = true;
		break;
	case TP_BLOCK_UNTIL_WAIT:
		WAIT_LOCKED(tp.engine_waits || tp.aborted[key], "the engine to wait for %s %u", name, key);
		waited = true;
		break;
	case TP_RENDEZVOUS:
		tp.rendezvous[s]++;
		pthread_cond_broadcast(&cond);
		WAIT_LOCKED(tp.rendezvous[s] >= (unsigned)rule.arg, "%d calls of %s inside it at once", rule.arg,
			    name);
		break;
	}
	if (waited)
		log_lockedf("end %s %u", name, key);

	for (size_t i = 0; i < n; i++)
		tp.busy[ms[i]->index]--;
	if (s == STEP_COMMIT)
		tp.committing--;
	if (s == STEP_ABORT) {
		tp.aborted[key] = true;
		pthread_cond_broadcast(&cond);
	}
	pthread_mutex_unlock(&lock);
	return r;
}

static int tp_begin_prepare(ProviderMember *m)
{
	int r = step(STEP_BEGIN_PREPARE, &m, 1);

	/* State a leak checker finds if neither abort nor post_final_commit
	 * comes. */
	if (r >= 0 && !m->priv && !(m->priv = strdup("prepared")))
		abort();
	return r;
}

static int tp_end_prepare(ProviderMember **ms, size_t n)
{
	return step(STEP_END_PREPARE, ms, n);
}

static int tp_pre_commit(ProviderMember *m)
{
	return step(STEP_PRE_COMMIT, &m, 1);
}

static int tp_commit(ProviderMember *m)
{
	return step(STEP_COMMIT, &m, 1);
}

static int tp_post_commit(ProviderMember *m)
{
	return step(STEP_POST_COMMIT, &m, 1);
}

static int tp_pre_final_commit(ProviderMember *m)
{
	return step(STEP_PRE_FINAL_COMMIT, &m, 1);
}

static int tp_post_final_commit(ProviderMember *m)
{
	int r = step(STEP_POST_FINAL_COMMIT, &m, 1);

	if (r >= 0) {
		free(m->priv);
		m->priv = NULL;
	}
	return r;
}

static int tp_abort(ProviderMember *m)
{
	int r = step(STEP_ABORT, &m, 1);

	free(m->priv);
	m->priv = NULL;
	return r;
}

static int tp_delete_snapshot(const char *snapshot_path, const char *provider_data)
{
	(void)provider_data;
	tp_log("delete %s", snapshot_path);
	return 0;
}

#define TP_OPS(provider_name)                              \
	{                                                  \
		.version = PROVIDER_OPS_VERSION,           \
		.name = provider_name,                     \
		.begin_prepare = tp_begin_prepare,         \
		.end_prepare = tp_end_prepare,             \
		.pre_commit = tp_pre_commit,               \
		.commit = tp_commit,                       \
		.post_commit = tp_post_commit,             \
		.pre_final_commit = tp_pre_final_commit,   \
		.post_final_commit = tp_post_final_commit, \
		.abort = tp_abort,                         \
		.delete_snapshot = tp_delete_snapshot,     \
	}

const provider_ops tp_ops_a = TP_OPS("A");
const provider_ops tp_ops_b = TP_OPS("B");

static int tp_commit_group(ProviderMember **ms, size_t n)
{
	return step(STEP_COMMIT, ms, n);
}

const provider_ops tp_ops_group = {
	.version = PROVIDER_OPS_VERSION,
	.name = "G",
	/* Asks for concurrent commits, which a group provider does not get:
	 * its group is one call. */
	.flags = PROVIDER_COMMITS_CONCURRENTLY,
	.begin_prepare = tp_begin_prepare,
	.pre_commit = tp_pre_commit,
	.commit_group = tp_commit_group,
	.post_final_commit = tp_post_final_commit,
	.abort = tp_abort,
	.delete_snapshot = tp_delete_snapshot,
};

static int tp_bare_begin_prepare(ProviderMember *m)
{
	return step(STEP_BEGIN_PREPARE, &m, 1);
}

const provider_ops tp_ops_bare = {
	.version = PROVIDER_OPS_VERSION,
	.name = "bare",
	.begin_prepare = tp_bare_begin_prepare,
	.pre_commit = tp_pre_commit,
	.commit = tp_commit,
	.delete_snapshot = tp_delete_snapshot,
};

ProviderMember tp_member(const provider_ops *ops, unsigned index)
{
	ProviderMember m;

	/* No fds: a member of the test provider holds nothing, and is never
	 * frozen. */
	provider_member_init(&m);
	m.ops = ops;
	m.index = index;
	m.state = VSS_SS_PREPARING;
	if (asprintf(&m.volume, "/vol%u", index) < 0 || asprintf(&m.snapshot_path, "/vol%u@snap", index) < 0)
		abort();
	return m;
}

ProviderMember *tp_members(size_t n, const provider_ops *const *ops)
{
	ProviderMember *ms = calloc(n ?: 1, sizeof(ProviderMember));

	if (!ms)
		abort();
	for (size_t i = 0; i < n; i++)
		ms[i] = tp_member(ops[i], (unsigned)i + 1);
	return ms;
}

static bool is_flush(const char *e)
{
	return strncmp(e, "pre_commit ", strlen("pre_commit ")) == 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char *tp_log_string(void)
{
	char **copy, *s;
	size_t len = 1, at = 0;

	pthread_mutex_lock(&lock);
	copy = calloc(tp.n_entries ?: 1, sizeof(char *));
	if (!copy)
		abort();
	for (size_t i = 0; i < tp.n_entries; i++) {
		copy[i] = tp.entries[i];
		len += strlen(copy[i]) + 2;
	}
	for (size_t i = 0; i < tp.n_entries;) {
		size_t k = i;

		while (k < tp.n_entries && is_flush(copy[k]))
			k++;
		if (k > i)
			qsort(copy + i, k - i, sizeof(char *), cmp_str);
		i = k > i ? k : i + 1;
	}
	s = malloc(len);
	if (!s)
		abort();
	s[0] = 0;
	for (size_t i = 0; i < tp.n_entries; i++)
		at += (size_t)sprintf(s + at, "%s%s", i ? ", " : "", copy[i]);
	pthread_mutex_unlock(&lock);
	free(copy);
	return s;
}

int tp_log_find(const char *entry)
{
	int r = -1;

	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < tp.n_entries; i++)
		if (strcmp(tp.entries[i], entry) == 0) {
			r = (int)i;
			break;
		}
	pthread_mutex_unlock(&lock);
	return r;
}

unsigned tp_count(ProviderStep s, unsigned member)
{
	unsigned c;

	pthread_mutex_lock(&lock);
	c = tp.counts[s][member];
	pthread_mutex_unlock(&lock);
	return c;
}

unsigned tp_violations(void)
{
	unsigned v;

	pthread_mutex_lock(&lock);
	v = tp.violations;
	pthread_mutex_unlock(&lock);
	return v;
}

const char *tp_first_violation(void)
{
	return tp.violations ? tp.first_violation : "none";
}

void tp_wait_entered(ProviderStep s, unsigned member)
{
	pthread_mutex_lock(&lock);
	WAIT_LOCKED(tp.counts[s][member] > 0, "%s %u to be entered", provider_step_name(s), member);
	pthread_mutex_unlock(&lock);
}

void tp_release(ProviderStep s, unsigned member)
{
	pthread_mutex_lock(&lock);
	tp.released[s][member] = true;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

void tp_engine_waits(void)
{
	pthread_mutex_lock(&lock);
	tp.engine_waits = true;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

void tp_wait_engine_waits(void)
{
	pthread_mutex_lock(&lock);
	WAIT_LOCKED(tp.engine_waits, "the engine to wait for its workers%s", "");
	pthread_mutex_unlock(&lock);
}
