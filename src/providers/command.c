/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The command provider: snapshots made by programs an administrator declares
 * in vssd.conf (a storage array's command line, a cloud API's client, a
 * script), one provider per [Provider] section with Type = command. The
 * protocol a command follows is docs/COMMAND-PROVIDER.md.
 *
 * A volume it claims (by pattern on the mount point or the mount's source) is
 * held by vss: locate names the volume's own filesystem as the one to freeze,
 * so the commit command runs while every held member of the set is frozen,
 * at one instant with them. The command runs from "/" with stdin from
 * /dev/null and its output in pipes (basic/spawn-util.h), so that nothing of
 * vss's writes to a frozen filesystem on its behalf.
 *
 * vss keeps, as the snapshot's provider data, what the commands get in
 * their environment about it (its ids, volume, mount point, device) and the
 * DATA= the commit printed: after a crash, delete has what it needs to find
 * the snapshot by its id even when the commit's answer was never recorded.
 */

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/fd-util.h"
#include "basic/id.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/spawn-util.h"
#include "basic/util.h"
#include "providers/command.h"
#include "providers/mounts.h"

typedef enum CommandStep {
	CMD_IS_SUPPORTED,
	CMD_PREPARE,
	CMD_COMMIT,
	CMD_ABORT,
	CMD_DELETE,
	CMD_LIST,
	_CMD_MAX,
} CommandStep;

static const struct {
	const char *name;       /* VSS_STEP, and the argument added to Command= */
	const char *key;        /* <key>Command=, <key>TimeoutSec= */
	usec_t timeout;
} steps[_CMD_MAX] = {
	/* is-supported and delete run on vssd's event loop: short. */
	[CMD_IS_SUPPORTED] = { "is-supported", "IsSupported", 5 * USEC_PER_SEC },
	[CMD_PREPARE] = { "prepare", "Prepare", 30 * USEC_PER_SEC },
	/* Inside the hold: under HoldTimeoutSec= (10 s by default). */
	[CMD_COMMIT] = { "commit", "Commit", 5 * USEC_PER_SEC },
	[CMD_ABORT] = { "abort", "Abort", 30 * USEC_PER_SEC },
	[CMD_DELETE] = { "delete", "Delete", 10 * USEC_PER_SEC },
	/* At start, on the event loop, before vssd serves. */
	[CMD_LIST] = { "list", "List", 10 * USEC_PER_SEC },
};

/* The exit codes a command may use to name a condition (0 is success, 1 a
 * failure, or "not supported" from is-supported). */
static const struct {
	int code;
	vss_hr hr;
} exit_codes[] = {
	{ 10, VSS_E_PROVIDER_VETO },
	{ 11, VSS_E_INSUFFICIENT_STORAGE },
	{ 12, VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED },
	{ 13, VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER },
};

/* The programs run get this PATH and nothing of vssd's environment. */
#define COMMAND_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define REASON_MAX 256

typedef struct CommandProvider {
	provider_ops ops;       /* first: a member's ops lead back here */
	unsigned slot;
	char *name;
	char *version;
	char **volumes;         /* fnmatch() patterns on the canonical mount point */
	char **devices;         /* on the mount's source */
	char **command;         /* Command=: run with the step's name added */
	char **argv[_CMD_MAX];  /* <Step>Command= */
	bool given[_CMD_MAX];   /* <Step>Command= was given (empty: nothing runs) */
	usec_t timeout[_CMD_MAX];
	bool group;             /* CommitGroup=: one commit for all members */
} CommandProvider;

/* What a member keeps between its steps. */
typedef struct CommandMember {
	char reason[REASON_MAX];
} CommandMember;

static CommandProvider *from_ops(const provider_ops *ops)
{
	return (CommandProvider *)ops;
}

/* Ops that get no member (whether a volume is supported, delete) find their
 * provider through the slot their table was given. */
static CommandProvider *slots[COMMAND_PROVIDERS_MAX];

static int cmd_is_volume_supported(CommandProvider *p, const VolumeInfo *v);
static int cmd_delete_snapshot(CommandProvider *p, const char *snapshot_path, const char *provider_data);
static int cmd_list_all_snapshots(CommandProvider *p, provider_found_fn found, void *userdata);

#define SLOT(n)                                                                                   \
	static int is_volume_supported_##n(const VolumeInfo *v)                                   \
	{                                                                                         \
		return cmd_is_volume_supported(slots[n], v);                                      \
	}                                                                                         \
	static int delete_snapshot_##n(const char *snapshot_path, const char *provider_data)       \
	{                                                                                         \
		return cmd_delete_snapshot(slots[n], snapshot_path, provider_data);               \
	}                                                                                         \
	static int list_all_snapshots_##n(provider_found_fn found, void *userdata)                \
	{                                                                                         \
		return cmd_list_all_snapshots(slots[n], found, userdata);                         \
	}
SLOT(0) SLOT(1) SLOT(2) SLOT(3) SLOT(4) SLOT(5) SLOT(6) SLOT(7)
#undef SLOT

static int (*const slot_is_volume_supported[COMMAND_PROVIDERS_MAX])(const VolumeInfo *) = {
	is_volume_supported_0, is_volume_supported_1, is_volume_supported_2, is_volume_supported_3,
	is_volume_supported_4, is_volume_supported_5, is_volume_supported_6, is_volume_supported_7,
};
static int (*const slot_delete_snapshot[COMMAND_PROVIDERS_MAX])(const char *, const char *) = {
	delete_snapshot_0, delete_snapshot_1, delete_snapshot_2, delete_snapshot_3,
	delete_snapshot_4, delete_snapshot_5, delete_snapshot_6, delete_snapshot_7,
};
static int (*const slot_list_all_snapshots[COMMAND_PROVIDERS_MAX])(provider_found_fn, void *) = {
	list_all_snapshots_0, list_all_snapshots_1, list_all_snapshots_2, list_all_snapshots_3,
	list_all_snapshots_4, list_all_snapshots_5, list_all_snapshots_6, list_all_snapshots_7,
};

/* A name that goes into a command's environment and the catalog: valid
 * UTF-8 with no control character, so that it is one line of KEY=VALUE. */
static bool value_ok(const char *s)
{
	for (const char *c = s; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return false;
	return utf8_is_valid(s);
}

static int strv_pushf(char ***l, const char *fmt, ...) _printf_(2, 3);
static int strv_pushf(char ***l, const char *fmt, ...)
{
	_cleanup_free_ char *s = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	return strv_push_dup(l, s);
}

/* The environment every command gets. */
static int env_base(const CommandProvider *p, CommandStep step, size_t n, char ***env)
{
	int r = strv_push_dup(env, COMMAND_PATH);

	if (r >= 0)
		r = strv_pushf(env, "VSS_STEP=%s", steps[step].name);
	if (r >= 0)
		r = strv_pushf(env, "VSS_PROVIDER_NAME=%s", p->name);
	if (r >= 0)
		r = strv_pushf(env, "VSS_PROVIDER_ID=%s", ID_TO_STRING(&p->ops.id));
	if (r >= 0)
		r = strv_pushf(env, "VSS_MEMBERS=%zu", n);
	return r;
}

/* A member's record (its provider data: "VSS_KEY=value" lines) into the
 * environment as VSS_KEY_<index>, and as VSS_KEY as well when it is alone
 * or the key is the set's. */
static int env_record(const char *record, size_t index, bool alone, bool set_keys, char ***env)
{
	int r = 0;

	for (const char *l = record ?: ""; *l && r >= 0;) {
		size_t len = strcspn(l, "\n");
		const char *eq = memchr(l, '=', len);

		if (eq && strncmp(l, "VSS_", 4) == 0) {
			int klen = (int)(eq - l);

			r = strv_pushf(env, "%.*s_%zu=%.*s", klen, l, index, (int)(len - (size_t)klen - 1), eq + 1);
			if (r >= 0 && (alone || (set_keys && (strncmp(l, "VSS_SET_ID=", 11) == 0 ||
							      strncmp(l, "VSS_CONTEXT=", 12) == 0))))
				r = strv_pushf(env, "%.*s", (int)len, l);
		}
		l += len;
		if (*l)
			l++;
	}
	return r;
}

/* The members' environment: their records, and the device the commit
 * printed once there is one. */
static int env_members(ProviderMember **ms, size_t n, char ***env)
{
	int r = 0;

	for (size_t i = 0; i < n && r >= 0; i++) {
		/* The set's keys (the same in every record) come once. */
		r = env_record(ms[i]->provider_data, i + 1, n == 1, i == 0, env);
		if (r >= 0 && ms[i]->snapshot_path && ms[i]->snapshot_path[0] == '/') {
			r = strv_pushf(env, "VSS_SNAPSHOT_DEVICE_%zu=%s", i + 1, ms[i]->snapshot_path);
			if (r >= 0 && n == 1)
				r = strv_pushf(env, "VSS_SNAPSHOT_DEVICE=%s", ms[i]->snapshot_path);
		}
	}
	return r;
}

static bool has_command(const CommandProvider *p, CommandStep step)
{
	/* Listing only when asked for: a program of Command= that does not
	 * know the step would answer "nothing", and reconcile would take
	 * every snapshot for gone. */
	if (step == CMD_LIST)
		return p->argv[step] != NULL;
	return p->given[step] ? p->argv[step] != NULL : p->command != NULL;
}

/* The first line of what a command wrote to stderr, for messages. */
static void first_line(const char *err, char *buf, size_t size)
{
	size_t len;

	while (*err == '\n' || *err == ' ')
		err++;
	len = strcspn(err, "\n");
	snprintf(buf, size, "%.*s", (int)MIN(len, size - 1), err);
	if (!value_ok(buf))
		utf8_make_valid(buf);
	for (char *c = buf; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
}

/*
 * Run a step's command. Returns 0 when it exited 0 (the output in *ret_out
 * when asked for), 1 when it exited 1 and one_is_no (is-supported's "no"),
 * or the step's failure: the code its exit status names, the step's timeout
 * code at the deadline, VSS_E_UNEXPECTED_PROVIDER_ERROR otherwise. What it
 * said on stderr goes to the log and, its first line, to reason.
 */
static int run(const CommandProvider *p, CommandStep step, char **env, bool one_is_no, char **ret_out, char *reason,
               size_t reason_size)
{
	_cleanup_(strv_freep) char **argv = NULL;
	char *const *use = p->argv[step];
	SpawnResult res = { 0 };
	char line[REASON_MAX] = "";
	int r, code;

	if (!p->given[step]) {
		for (size_t i = 0; p->command && p->command[i]; i++)
			if (strv_push_dup(&argv, p->command[i]) < 0)
				return -ENOMEM;
		if (strv_push_dup(&argv, steps[step].name) < 0)
			return -ENOMEM;
		use = argv;
	}
	r = spawn_run(use, &(SpawnOptions){ .timeout = p->timeout[step], .envp = env }, &res);
	if (r < 0) {
		log_error_errno(r, "%s provider: cannot run its %s command %s: %m", p->name, steps[step].name, use[0]);
		if (reason)
			snprintf(reason, reason_size, "cannot run %s: %s", use[0], strerror(-r));
		return r;
	}
	first_line(res.err, line, sizeof(line));
	if (reason)
		snprintf(reason, reason_size, "%s", line);
	if (res.timed_out) {
		log_error("%s provider: its %s command %s did not end within %llu ms; killed", p->name, steps[step].name,
			  use[0], (unsigned long long)(p->timeout[step] / USEC_PER_MSEC));
		if (reason)
			snprintf(reason, reason_size, "its %s command did not end within %llu ms", steps[step].name,
				 (unsigned long long)(p->timeout[step] / USEC_PER_MSEC));
		spawn_result_clear(&res);
		/* The contract's timeout codes: a commit that overruns could not
		 * hold writes in time; before and after the hold, the provider
		 * could not do it now (transient, as a veto is). */
		return step == CMD_COMMIT ? VSS_E_HOLD_WRITES_TIMEOUT
		       : step == CMD_PREPARE ? VSS_E_PROVIDER_VETO
					      : VSS_E_UNEXPECTED_PROVIDER_ERROR;
	}
	if (!WIFEXITED(res.status)) {
		log_error("%s provider: its %s command %s was killed by signal %d%s%s", p->name, steps[step].name, use[0],
			  WTERMSIG(res.status), line[0] ? ": " : "", line);
		spawn_result_clear(&res);
		return VSS_E_UNEXPECTED_PROVIDER_ERROR;
	}
	code = WEXITSTATUS(res.status);
	if (code == 0 || (code == 1 && one_is_no)) {
		log_debug("%s provider: %s command %s exited %d%s%s", p->name, steps[step].name, use[0], code,
			  line[0] ? ": " : "", line);
		if (ret_out) {
			*ret_out = TAKE_PTR(res.out);
			if (res.truncated)
				code = -E2BIG;
		}
		spawn_result_clear(&res);
		return code;
	}
	log_error("%s provider: its %s command %s exited %d%s%s", p->name, steps[step].name, use[0], code,
		  line[0] ? ": " : "", line);
	spawn_result_clear(&res);
	for (size_t i = 0; i < ELEMENTSOF(exit_codes); i++)
		if (exit_codes[i].code == code)
			return exit_codes[i].hr;
	return VSS_E_UNEXPECTED_PROVIDER_ERROR;
}

static bool matches(char **patterns, const char *s)
{
	for (size_t i = 0; s && patterns && patterns[i]; i++)
		if (fnmatch(patterns[i], s, FNM_PATHNAME) == 0)
			return true;
	return false;
}

/* Whether fd is on the root filesystem: freezing it would freeze vssd. */
static bool on_root_fs(int fd)
{
	struct stat a, b;

	return fstat(fd, &a) < 0 || stat("/", &b) < 0 || a.st_dev == b.st_dev;
}

static int cmd_is_volume_supported(CommandProvider *p, const VolumeInfo *v)
{
	_cleanup_(strv_freep) char **env = NULL;
	int r;

	/* A volume is a mounted filesystem, named by its mount point. */
	if (!v->is_directory || !v->is_mount_point || !v->source)
		return 0;
	if (!matches(p->volumes, v->path) && !matches(p->devices, v->source))
		return 0;
	if (!value_ok(v->path) || !value_ok(v->source) || !value_ok(v->fs_type ?: "") || on_root_fs(v->fd))
		return 0;
	if (!has_command(p, CMD_IS_SUPPORTED))
		return 1;
	r = env_base(p, CMD_IS_SUPPORTED, 1, &env);
	for (unsigned i = 0; i < 2 && r >= 0; i++) {
		const char *suffix = i == 0 ? "" : "_1";

		r = strv_pushf(&env, "VSS_VOLUME%s=%s", suffix, v->path);
		if (r >= 0)
			r = strv_pushf(&env, "VSS_MOUNT_POINT%s=%s", suffix, v->mount_point);
		if (r >= 0)
			r = strv_pushf(&env, "VSS_DEVICE%s=%s", suffix, v->source);
		if (r >= 0)
			r = strv_pushf(&env, "VSS_FSTYPE%s=%s", suffix, v->fs_type ?: "");
	}
	if (r < 0)
		return 0;
	r = run(p, CMD_IS_SUPPORTED, env, true, NULL, NULL, 0);
	if (r < 0 && r != VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER)
		log_warning("%s provider: %s is taken as not supported: its is-supported command failed", p->name,
			    v->path);
	return r == 0;
}

static int command_locate(ProviderMember *m)
{
	CommandProvider *p = from_ops(m->ops);
	_cleanup_free_ char *record = NULL;
	char sid[VSS_ID_STRING_MAX], set[VSS_ID_STRING_MAX];
	MountEntry e = { 0 };
	uint64_t id;
	bool root;
	int r;

	/* The mount the name leads to now must be the one the volume's fd is
	 * the root of: that is what is frozen. */
	r = fd_mount_id(m->volume_fd, &id, &root);
	if (r < 0)
		return r;
	if (!root || id != m->volume_mount_id)
		return -ESTALE;
	r = mount_lookup(m->volume, &e);
	if (r < 0)
		return r;
	if (e.id != id || !e.source || !value_ok(e.source) || !value_ok(m->volume)) {
		r = e.id != id ? -ESTALE : VSS_E_VOLUME_NOT_SUPPORTED;
		mount_entry_clear(&e);
		return r;
	}
	vss_id_format(&m->snapshot_id, sid);
	vss_id_format(&m->set_id, set);
	r = asprintf(&record,
		     "VSS_SNAPSHOT_ID=%s\nVSS_SET_ID=%s\nVSS_CONTEXT=%" PRId32
		     "\nVSS_VOLUME=%s\nVSS_MOUNT_POINT=%s\nVSS_DEVICE=%s\nVSS_FSTYPE=%s\n",
		     sid, set, m->context, m->volume, e.target, e.source, e.fstype ?: "");
	if (r < 0) {
		record = NULL;
		mount_entry_clear(&e);
		return -ENOMEM;
	}
	/* Until the commit prints the snapshot's device: a name, never a
	 * path vss could take for a store of its own. */
	if (asprintf(&m->snapshot_path, "%s:%s", p->name, sid) < 0) {
		m->snapshot_path = NULL;
		mount_entry_clear(&e);
		return -ENOMEM;
	}
	m->hold_fd = fcntl(m->volume_fd, F_DUPFD_CLOEXEC, 3);
	if (m->hold_fd < 0) {
		mount_entry_clear(&e);
		return -errno;
	}
	/* The device is what vssd compares members by: one filesystem
	 * mounted twice is one member. */
	m->backing_fd = open(e.source, O_PATH | O_CLOEXEC);
	m->backing_file = m->backing_fd >= 0 ? strdup(e.source) : NULL;
	m->hold_path = TAKE_PTR(e.target);
	mount_entry_clear(&e);
	if (!m->hold_path || (m->backing_fd >= 0 && !m->backing_file))
		return -ENOMEM;
	m->provider_data = TAKE_PTR(record);
	m->attributes = VSS_VOLSNAP_ATTR_HARDWARE_ASSISTED;
	return 0;
}

/* Run a step for members of one provider; the reason for messages goes to
 * the first member. */
static int run_members(ProviderMember **ms, size_t n, CommandStep step, char **ret_out)
{
	CommandProvider *p = from_ops(ms[0]->ops);
	CommandMember *cm = ms[0]->priv;
	_cleanup_(strv_freep) char **env = NULL;
	int r;

	if (!has_command(p, step))
		return 0;
	r = env_base(p, step, n, &env);
	if (r >= 0)
		r = env_members(ms, n, &env);
	if (r < 0)
		return r;
	r = run(p, step, env, false, ret_out, cm ? cm->reason : NULL, cm ? sizeof(cm->reason) : 0);
	if (r < 0 && cm && cm->reason[0])
		ms[0]->reason = cm->reason;
	return r;
}

static int command_begin_prepare(ProviderMember *m)
{
	int r;

	if (!m->priv) {
		m->priv = calloc(1, sizeof(CommandMember));
		if (!m->priv)
			return -ENOMEM;
	}
	r = run_members(&m, 1, CMD_PREPARE, NULL);
	if (r < 0)
		return r;
	m->state = VSS_SS_PREPARED;
	return 0;
}

/* What is dirty goes out before the hold, so that the freeze has little
 * left to flush. */
static int command_pre_commit(ProviderMember *m)
{
	if (syncfs(m->hold_fd) < 0)
		return -errno;
	m->state = VSS_SS_PRECOMMITTED;
	return 0;
}

/* Parse "KEY=VALUE" lines for n members: DEVICE and DATA (n == 1), or
 * DEVICE_<i> and DATA_<i>. Other well-formed keys are left for later
 * versions; anything else is a broken command. */
static int parse_output(const char *out, size_t n, char **devices, char **data, const char **ret_reason)
{
	for (const char *l = out; *l;) {
		size_t len = strcspn(l, "\n"), klen = 0;
		_cleanup_free_ char *line = strndup(l, len);
		char *eq, **slot = NULL;

		if (!line)
			return -ENOMEM;
		l += len;
		if (*l)
			l++;
		if (!line[0])
			continue;
		eq = strchr(line, '=');
		while (klen < len && ((line[klen] >= 'A' && line[klen] <= 'Z') || line[klen] == '_' ||
				      (klen > 0 && line[klen] >= '0' && line[klen] <= '9')))
			klen++;
		if (!eq || klen == 0 || line + klen != eq) {
			*ret_reason = "it printed a line that is not KEY=VALUE";
			return VSS_E_UNEXPECTED_PROVIDER_ERROR;
		}
		*eq = '\0';
		for (size_t i = 0; i < n && !slot; i++) {
			char dev[32], dat[32];

			snprintf(dev, sizeof(dev), "DEVICE_%zu", i + 1);
			snprintf(dat, sizeof(dat), "DATA_%zu", i + 1);
			if (streq(line, dev) || (n == 1 && streq(line, "DEVICE")))
				slot = &devices[i];
			else if (streq(line, dat) || (n == 1 && streq(line, "DATA")))
				slot = &data[i];
		}
		if (!slot)
			continue;
		if (*slot) {
			*ret_reason = "it printed a key twice";
			return VSS_E_UNEXPECTED_PROVIDER_ERROR;
		}
		if (!value_ok(eq + 1)) {
			*ret_reason = "it printed a value that is not UTF-8 text";
			return VSS_E_UNEXPECTED_PROVIDER_ERROR;
		}
		*slot = strdup(eq + 1);
		if (!*slot)
			return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		if (devices[i] && (!devices[i][0] || path_in_store(devices[i]))) {
			*ret_reason = "it printed a DEVICE that is empty or in a vss snapshot store";
			return VSS_E_UNEXPECTED_PROVIDER_ERROR;
		}
	return 0;
}

/* Make what the commit printed the members' snapshot path and data. */
static int commit_members(ProviderMember **ms, size_t n)
{
	CommandProvider *p = from_ops(ms[0]->ops);
	_cleanup_free_ char *out = NULL;
	char *devices[n ?: 1], *data[n ?: 1];
	const char *reason = NULL;
	int r;

	r = run_members(ms, n, CMD_COMMIT, &out);
	if (r == -E2BIG)
		reason = "its output was too long";
	else if (r < 0)
		return r;
	memset(devices, 0, sizeof(devices));
	memset(data, 0, sizeof(data));
	if (!reason)
		r = parse_output(out ?: "", n, devices, data, &reason);
	for (size_t i = 0; r >= 0 && !reason && i < n; i++) {
		char *record = NULL;

		if (data[i] && asprintf(&record, "%sVSS_DATA=%s\n", ms[i]->provider_data, data[i]) < 0)
			r = -ENOMEM;
		else if (record) {
			free(ms[i]->provider_data);
			ms[i]->provider_data = record;
		}
		if (r >= 0 && devices[i]) {
			free(ms[i]->snapshot_path);
			ms[i]->snapshot_path = TAKE_PTR(devices[i]);
		}
		if (r >= 0)
			ms[i]->state = VSS_SS_COMMITTED;
	}
	for (size_t i = 0; i < n; i++) {
		free(devices[i]);
		free(data[i]);
	}
	if (reason) {
		/* Logged once released: the log waits for the hold. */
		log_error("%s provider: its commit command broke the protocol: %s", p->name, reason);
		ms[0]->reason = reason;
		return VSS_E_UNEXPECTED_PROVIDER_ERROR;
	}
	return r;
}

static int command_commit(ProviderMember *m)
{
	return commit_members(&m, 1);
}

static int command_commit_group(ProviderMember **ms, size_t n)
{
	return commit_members(ms, n);
}

static void member_free(ProviderMember *m)
{
	free(m->priv);
	m->priv = NULL;
	m->reason = NULL;
}

static int command_post_final_commit(ProviderMember *m)
{
	member_free(m);
	return 0;
}

/* Undo whatever the steps made, idempotently: the abort command, then
 * delete when there is none or it failed. */
static int command_abort(ProviderMember *m)
{
	CommandProvider *p = from_ops(m->ops);
	int r;

	member_free(m);
	r = has_command(p, CMD_ABORT) ? run_members(&m, 1, CMD_ABORT, NULL) : -ENOEXEC;
	/* Both are idempotent: an abort that failed (or overran) leaves the
	 * delete to remove what is left, so that the set is all or nothing. */
	if (r < 0)
		r = run_members(&m, 1, CMD_DELETE, NULL);
	m->state = VSS_SS_ABORTED;
	return r;
}

static int cmd_delete_snapshot(CommandProvider *p, const char *snapshot_path, const char *provider_data)
{
	_cleanup_(strv_freep) char **env = NULL;
	_cleanup_free_ char *record = NULL;
	int r;

	/* A snapshot reconcile found tagged but not in the catalog comes
	 * with no record: its name says its id. */
	if (!provider_data) {
		size_t n = strlen(p->name);

		if (strncmp(snapshot_path, p->name, n) != 0 || snapshot_path[n] != ':' ||
		    VSS_FAILED(vss_id_parse(snapshot_path + n + 1, &(vss_id){ 0 })))
			return VSS_E_PROVIDER_VETO;
		if (asprintf(&record, "VSS_SNAPSHOT_ID=%s\n", snapshot_path + n + 1) < 0)
			return -ENOMEM;
		provider_data = record;
	}
	r = env_base(p, CMD_DELETE, 1, &env);
	if (r >= 0)
		r = env_record(provider_data, 1, true, true, &env);
	if (r >= 0 && snapshot_path[0] == '/')
		r = strv_pushf(&env, "VSS_SNAPSHOT_DEVICE=%s", snapshot_path);
	if (r >= 0 && snapshot_path[0] == '/')
		r = strv_pushf(&env, "VSS_SNAPSHOT_DEVICE_1=%s", snapshot_path);
	if (r < 0)
		return r;
	return run(p, CMD_DELETE, env, false, NULL, NULL, 0);
}

/* One record of the list's output. */
typedef struct Listed {
	char *snapshot_id, *set_id, *device;
} Listed;

static void listed_clear(Listed *l)
{
	free(l->snapshot_id);
	free(l->set_id);
	free(l->device);
	*l = (Listed){ 0 };
}

static bool listed_empty(const Listed *l)
{
	return !l->snapshot_id && !l->set_id && !l->device;
}

/* A record ends: kept when it has anything (empty lines may repeat). */
static int listed_push(Listed *cur, Listed **all, size_t *n)
{
	Listed *slot;

	if (listed_empty(cur))
		return 0;
	slot = array_grow((void **)all, n, sizeof(**all));
	if (!slot)
		return -ENOMEM;
	*slot = *cur;
	*cur = (Listed){ 0 };
	return 0;
}

static int listed_parse(const char *out, Listed **all, size_t *n)
{
	Listed cur = { 0 };
	int r = 0;

	for (const char *l = out;; l++) {
		size_t len = strcspn(l, "\n");
		_cleanup_free_ char *line = strndup(l, len);
		char *eq, **slot = NULL;

		if (!line) {
			r = -ENOMEM;
			break;
		}
		eq = strchr(line, '=');
		if (eq) {
			*eq = '\0';
			slot = streq(line, "SNAPSHOT_ID") ? &cur.snapshot_id
			       : streq(line, "SET_ID")    ? &cur.set_id
			       : streq(line, "DEVICE")    ? &cur.device
							  : NULL;
		}
		if (len == 0)
			r = listed_push(&cur, all, n);
		else if (!eq || (slot && *slot) || !value_ok(eq + 1))
			r = VSS_E_UNEXPECTED_PROVIDER_ERROR;
		else if (slot && !(*slot = strdup(eq + 1)))
			r = -ENOMEM;
		l += len;
		if (r < 0 || !*l)
			break;
	}
	if (r >= 0)
		r = listed_push(&cur, all, n);
	listed_clear(&cur);
	for (size_t i = 0; r >= 0 && i < *n; i++)
		if (!(*all)[i].snapshot_id || !(*all)[i].set_id ||
		    VSS_FAILED(vss_id_parse((*all)[i].snapshot_id, &(vss_id){ 0 })) ||
		    VSS_FAILED(vss_id_parse((*all)[i].set_id, &(vss_id){ 0 })))
			r = VSS_E_UNEXPECTED_PROVIDER_ERROR;
	return r;
}

/* Every snapshot of vss's the program knows: records of KEY=VALUE lines
 * (SNAPSHOT_ID, SET_ID, DEVICE) separated by empty lines. The output is
 * checked whole before anything is reported: with a fault anywhere, nothing
 * is, and reconcile drops no row and deletes nothing. */
static int cmd_list_all_snapshots(CommandProvider *p, provider_found_fn found, void *userdata)
{
	_cleanup_(strv_freep) char **env = NULL;
	_cleanup_free_ char *out = NULL;
	Listed *all = NULL;
	size_t n = 0;
	int r;

	r = env_base(p, CMD_LIST, 0, &env);
	if (r >= 0)
		r = run(p, CMD_LIST, env, false, &out, NULL, 0);
	if (r >= 0)
		r = listed_parse(out ?: "", &all, &n);
	if (r == VSS_E_UNEXPECTED_PROVIDER_ERROR)
		log_error("%s provider: its list command printed other than records of SNAPSHOT_ID=, SET_ID= and "
			  "DEVICE= lines, each with both ids, separated by empty lines", p->name);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		_cleanup_free_ char *path = NULL;
		ProviderSnapshot ps = { 0 };

		(void)vss_id_parse(all[i].snapshot_id, &ps.snapshot_id);
		(void)vss_id_parse(all[i].set_id, &ps.set_id);
		/* The name delete finds it by when reconcile deletes it with
		 * no record of the catalog's. */
		if (asprintf(&path, "%s:%s", p->name, ID_TO_STRING(&ps.snapshot_id)) < 0) {
			path = NULL;
			r = -ENOMEM;
			break;
		}
		ps.name = ps.path = path;
		r = found(&ps, userdata);
	}
	for (size_t i = 0; i < n; i++)
		listed_clear(&all[i]);
	free(all);
	return r;
}

/* A snapshot the commit named by a block device or an image file is
 * exposed by mounting it read-only; a name that is neither cannot be. */
static int command_expose(const char *snapshot_path, const char *provider_data, int dir_fd)
{
	_cleanup_close_ int fd = -1, dev_fd = -1;
	_cleanup_free_ char *fstype = NULL, *dev = NULL;
	struct stat st;
	int r;

	(void)provider_data;
	if (snapshot_path[0] != '/')
		return VSS_E_PROVIDER_VETO;
	/* Read-only: the snapshot is the command's to change, not vss's. */
	fd = open(snapshot_path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? VSS_E_OBJECT_NOT_FOUND : -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
		return VSS_E_PROVIDER_VETO;
	fstype = fs_probe_type(fd);
	if (!fstype)
		return VSS_E_PROVIDER_VETO;
	/* Cut while frozen: whatever the journal holds is in place already,
	 * and the device is read-only, so it is not replayed. */
	if (S_ISBLK(st.st_mode))
		return mount_readonly_at(fstype, snapshot_path, true, dir_fd);
	r = loop_attach(fd, snapshot_path, &dev, &dev_fd);
	if (r < 0)
		return r;
	return mount_readonly_at(fstype, dev, true, dir_fd);
}

static int command_is_exposed_at(const char *snapshot_path, const char *provider_data, int dir_fd)
{
	_cleanup_free_ char *dev = NULL;
	struct stat snap, st;

	(void)provider_data;
	if (snapshot_path[0] != '/' || stat(snapshot_path, &snap) < 0 || fstat(dir_fd, &st) < 0)
		return 0;
	if (S_ISBLK(snap.st_mode))
		return snap.st_rdev == st.st_dev;
	return S_ISREG(snap.st_mode) && loop_of_device(st.st_dev, &dev) == 0 && loop_backed_by(dev, &snap, NULL) == 1;
}

/* Split a command line into words: blanks separate them, "..." and '...'
 * keep blanks in one, a backslash in "..." takes the next character as it
 * is. No shell, no variables. */
static int split_words(const char *s, char ***ret)
{
	_cleanup_(strv_freep) char **words = NULL;

	for (;;) {
		_cleanup_free_ char *w = NULL;
		size_t len = 0;
		char q = 0;

		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		w = malloc(strlen(s) + 1);
		if (!w)
			return -ENOMEM;
		for (; *s && (q || (*s != ' ' && *s != '\t')); s++) {
			if (!q && (*s == '"' || *s == '\''))
				q = *s;
			else if (q && *s == q)
				q = 0;
			else if (q == '"' && *s == '\\' && s[1])
				w[len++] = *++s;
			else
				w[len++] = *s;
		}
		if (q)
			return -EINVAL;
		w[len] = '\0';
		if (strv_push_dup(&words, w) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(words);
	return 0;
}

/* A program run as root must be root's and changeable by root alone. */
static int check_program(char **argv, const char **ret_reason)
{
	struct stat st;

	if (!argv || !argv[0] || argv[0][0] != '/') {
		*ret_reason = "the program must be named by an absolute path";
		return -EINVAL;
	}
	if (stat(argv[0], &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0111)) {
		*ret_reason = "the program does not exist or is not executable";
		return -EINVAL;
	}
	if (st.st_uid != 0 || (st.st_mode & 0022)) {
		*ret_reason = "the program must be owned by root and writable by root only";
		return -EINVAL;
	}
	return 0;
}

static int parse_timeout_key(const char *key, const char *value, bool *ret_matched, CommandStep *ret_step,
                             usec_t *ret)
{
	for (int s = -1; s < _CMD_MAX; s++) {
		const char *prefix = s < 0 ? "" : steps[s].key;
		size_t n = strlen(prefix);
		uint64_t x;
		bool msec;

		if (strncmp(key, prefix, n) != 0 || (!streq(key + n, "TimeoutSec") && !streq(key + n, "TimeoutMSec")))
			continue;
		*ret_matched = true;
		*ret_step = s < 0 ? _CMD_MAX : (CommandStep)s;
		msec = streq(key + n, "TimeoutMSec");
		if (parse_u64(value, &x) < 0 || x < 1 || x > COMMAND_TIMEOUT_MAX_SEC * (msec ? 1000 : 1))
			return -EINVAL;
		*ret = x * (msec ? USEC_PER_MSEC : USEC_PER_SEC);
		return 0;
	}
	*ret_matched = false;
	return 0;
}

static int parse_bool(const char *v, bool *ret)
{
	if (streq(v, "yes") || streq(v, "true") || streq(v, "on") || streq(v, "1"))
		*ret = true;
	else if (streq(v, "no") || streq(v, "false") || streq(v, "off") || streq(v, "0"))
		*ret = false;
	else
		return -EINVAL;
	return 0;
}

static int push_words(char ***l, const char *value)
{
	_cleanup_(strv_freep) char **words = NULL;
	int r = split_words(value, &words);

	for (size_t i = 0; r >= 0 && words && words[i]; i++)
		r = strv_push_dup(l, words[i]);
	return r;
}

int command_provider_new(const char *name, provider_ops **ret, const char **ret_reason)
{
	CommandProvider *p;
	unsigned slot;

	if (!name[0] || !value_ok(name) || strchr(name, ':') || strchr(name, '/')) {
		*ret_reason = "a provider's name must be text with no ':' or '/'";
		return -EINVAL;
	}
	for (slot = 0; slot < COMMAND_PROVIDERS_MAX && slots[slot]; slot++)
		;
	if (slot == COMMAND_PROVIDERS_MAX) {
		*ret_reason = "too many command providers (at most " STRINGIFY(COMMAND_PROVIDERS_MAX) ")";
		return -E2BIG;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->name = strdup(name);
	if (!p->name) {
		free(p);
		return -ENOMEM;
	}
	for (size_t s = 0; s < _CMD_MAX; s++)
		p->timeout[s] = steps[s].timeout;
	p->slot = slot;
	slots[slot] = p;
	p->ops = (provider_ops){
		.version = PROVIDER_OPS_VERSION,
		.name = p->name,
		.version_string = "1.0",
		.type = VSS_PROV_HARDWARE,
		.flags = PROVIDER_HOLDS_WRITES,
		.is_volume_supported = slot_is_volume_supported[slot],
		.locate = command_locate,
		.begin_prepare = command_begin_prepare,
		.pre_commit = command_pre_commit,
		.commit = command_commit,
		.post_final_commit = command_post_final_commit,
		.abort = command_abort,
		.delete_snapshot = slot_delete_snapshot[slot],
		.expose = command_expose,
		.is_exposed_at = command_is_exposed_at,
	};
	*ret = &p->ops;
	return 0;
}

int command_provider_set(provider_ops *ops, const char *key, const char *value, const char **ret_reason)
{
	CommandProvider *p = from_ops(ops);
	CommandStep step;
	bool matched;
	usec_t t;
	int r;

	*ret_reason = NULL;
	if (streq(key, "Id")) {
		vss_id id;

		if (VSS_FAILED(vss_id_parse(value, &id)) || vss_id_is_null(&id)) {
			*ret_reason = "not a UUID";
			return -EINVAL;
		}
		p->ops.id = p->ops.version_id = p->ops.class_id = id;
		return 0;
	}
	if (streq(key, "Version")) {
		char *v;

		if (!value[0] || !value_ok(value))
			return -EINVAL;
		v = strdup(value);
		if (!v)
			return -ENOMEM;
		free(p->version);
		p->ops.version_string = p->version = v;
		return 0;
	}
	if (streq(key, "Volumes") || streq(key, "Devices")) {
		char ***l = streq(key, "Volumes") ? &p->volumes : &p->devices;

		/* Empty: forget the patterns given so far, as systemd lists. */
		if (!value[0]) {
			strv_free(*l);
			*l = NULL;
			return 0;
		}
		r = push_words(l, value);
		if (r == -EINVAL)
			*ret_reason = "an unterminated quote";
		return r;
	}
	if (streq(key, "CommitGroup"))
		return parse_bool(value, &p->group);
	r = parse_timeout_key(key, value, &matched, &step, &t);
	if (matched) {
		if (r < 0) {
			*ret_reason = "not a number from 1 to 3600 s";
			return r;
		}
		for (size_t s = 0; s < _CMD_MAX; s++)
			if (step == _CMD_MAX || step == s)
				p->timeout[s] = t;
		return 0;
	}
	for (int s = -1; s < _CMD_MAX; s++) {
		char want[32];
		char ***l;

		snprintf(want, sizeof(want), "%sCommand", s < 0 ? "" : steps[s].key);
		if (!streq(key, want))
			continue;
		l = s < 0 ? &p->command : &p->argv[s];
		strv_free(*l);
		*l = NULL;
		if (s >= 0)
			p->given[s] = true;
		if (!value[0])
			return 0;
		r = split_words(value, l);
		if (r == -EINVAL)
			*ret_reason = "an unterminated quote";
		if (r >= 0)
			r = check_program(*l, ret_reason);
		return r;
	}
	return -ENOKEY;
}

int command_provider_finish(provider_ops *ops, const char **ret_reason)
{
	CommandProvider *p = from_ops(ops);

	if (vss_id_is_null(&p->ops.id))
		*ret_reason = "it needs Id= (a UUID of its own)";
	else if (!p->volumes && !p->devices)
		*ret_reason = "it needs Volumes= or Devices=: the volumes it claims";
	else if (!has_command(p, CMD_COMMIT) || !has_command(p, CMD_DELETE))
		*ret_reason = "it needs a commit and a delete command (Command= or CommitCommand= and DeleteCommand=)";
	else {
		/* One commit command for all of its members in a set: what a
		 * storage array's consistency group needs. */
		if (p->group)
			p->ops.commit_group = command_commit_group;
		/* With a list command, reconcile asks it what exists. */
		if (has_command(p, CMD_LIST))
			p->ops.list_all_snapshots = slot_list_all_snapshots[p->slot];
		return 0;
	}
	return -EINVAL;
}

usec_t command_provider_commit_timeout(const provider_ops *ops)
{
	return from_ops(ops)->timeout[CMD_COMMIT];
}

void command_provider_free(provider_ops *ops)
{
	CommandProvider *p;

	if (!ops)
		return;
	p = from_ops(ops);
	if (slots[p->slot] == p)
		slots[p->slot] = NULL;
	free(p->name);
	free(p->version);
	strv_free(p->volumes);
	strv_free(p->devices);
	strv_free(p->command);
	for (size_t s = 0; s < _CMD_MAX; s++)
		strv_free(p->argv[s]);
	free(p);
}
