/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <vss/backup.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "basic/schedule.h"
#include "providers/command.h"
#include "vssd/config.h"

void config_init(Config *c)
{
	*c = (Config){
		.backup_group = strdup("backup"),
		.backup_gid = (gid_t)-1,
		.flush_timeout = 10 * USEC_PER_SEC,
		.hold_timeout = 10 * USEC_PER_SEC,
		.hold_settle = 30 * USEC_PER_MSEC,
		.max_volumes_per_set = VSS_MAX_VOLUMES_PER_SET,
		.max_snapshots_per_volume = 512,
		.max_image_nesting = 1,
		.dpkg_lock = strdup("/var/lib/dpkg/lock-frontend"),
		.schedules_dir = strdup(VSS_SCHEDULES_DIR),
		.transaction_freeze_timeout = 10 * USEC_PER_SEC,
		.transaction_thaw_timeout = 60 * USEC_PER_SEC,
		.host_reserve = { .bytes = 256 << 20, .percent = 2 },
		.host_reserve_interval = 1 * USEC_PER_SEC,
		.max_connections = 1024,
		.max_connections_per_user = 16,
		.max_objects_per_connection = 1024,
		.max_backup_group_message = 4 * 1024 * 1024,
		.snapshot_set_timeout = 600 * USEC_PER_SEC,
		.max_writer_freeze_timeout = 60 * USEC_PER_SEC,
	};
}

void config_clear(Config *c)
{
	free(c->backup_group);
	free(c->dpkg_lock);
	free(c->schedules_dir);
	c->backup_group = c->dpkg_lock = c->schedules_dir = NULL;
	for (size_t i = 0; i < c->n_host_reserves; i++)
		free(c->host_reserves[i].host);
	free(c->host_reserves);
	c->host_reserves = NULL;
	c->n_host_reserves = 0;
	strv_free(c->previous_versions);
	c->previous_versions = NULL;
	c->n_previous_versions = 0;
	for (size_t i = 0; i < c->n_providers; i++) {
		provider_unregister(c->providers[i]);
		command_provider_free(c->providers[i]);
	}
	free(c->providers);
	free(c->provider_lines);
	c->providers = NULL;
	c->provider_lines = NULL;
	c->n_providers = 0;
}

uint64_t config_host_reserve(const Config *c, const char *mount_point, uint64_t size)
{
	const HostReserve *r = &c->host_reserve;

	for (size_t i = 0; mount_point && i < c->n_host_reserves; i++)
		if (streq(c->host_reserves[i].host, mount_point))
			r = &c->host_reserves[i];
	return MAX(r->bytes, size / 100 * r->percent);
}

/* "[/mount/point] SIZE|N% [SIZE|N%]": at most one of each; the larger applies. */
static int parse_host_reserve(char *v, HostReserve *ret)
{
	HostReserve hr = { 0 };
	bool have_bytes = false, have_percent = false;
	char *save = NULL;

	for (char *t = strtok_r(v, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		size_t len = strlen(t);
		uint64_t x;

		if (t == v && t[0] == '/') {
			hr.host = t;
			continue;
		}
		if (len > 1 && t[len - 1] == '%') {
			t[len - 1] = '\0';
			if (have_percent || parse_u64(t, &x) < 0 || x > 50)
				return -EINVAL;
			hr.percent = (unsigned)x;
			have_percent = true;
		} else {
			if (have_bytes || parse_size(t, &x) < 0)
				return -EINVAL;
			hr.bytes = x;
			have_bytes = true;
		}
	}
	if (!have_bytes && !have_percent)
		return -EINVAL;
	*ret = hr;
	return 0;
}

static int set_host_reserve(Config *c, const char *v)
{
	_cleanup_free_ char *copy = strdup(v);
	HostReserve hr, *slot = &c->host_reserve;
	char *host;

	if (!copy)
		return -ENOMEM;
	if (parse_host_reserve(copy, &hr) < 0)
		return -EINVAL;
	if (hr.host) {
		slot = NULL;
		for (size_t i = 0; i < c->n_host_reserves; i++)
			if (streq(c->host_reserves[i].host, hr.host))
				slot = &c->host_reserves[i];
		if (!slot) {
			slot = array_grow((void **)&c->host_reserves, &c->n_host_reserves, sizeof(*slot));
			if (!slot)
				return -ENOMEM;
		}
		host = strdup(hr.host);
		if (!host)
			return -ENOMEM;
		free(slot->host);
		hr.host = host;
	}
	*slot = hr;
	return 0;
}

/* Why the last value was refused, for config_load()'s message. */
static char refusal[128];

/* As the catalog names volumes: an absolute path with no "." or ".."
 * component, no empty one and no trailing slash. */
static bool path_is_canonical_form(const char *p)
{
	if (p[0] != '/' || !p[1])
		return false;
	for (const char *c = p + 1;; ) {
		size_t len = strcspn(c, "/");

		if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		if (!c[len])
			return true;
		c += len + 1;
	}
}

static int add_previous_versions(Config *c, const char *v)
{
	if (!path_is_canonical_form(v)) {
		snprintf(refusal, sizeof(refusal), ": \"%s\" is not a volume's canonical path", v);
		return -EINVAL;
	}
	for (size_t i = 0; i < c->n_previous_versions; i++)
		if (streq(c->previous_versions[i], v))
			return 0;
	if (strv_push_dup(&c->previous_versions, v) < 0)
		return -ENOMEM;
	c->n_previous_versions++;
	return 0;
}

static int parse_bounded(const char *v, uint64_t min, uint64_t max, uint64_t *ret)
{
	uint64_t x;

	refusal[0] = '\0';
	if (parse_u64(v, &x) < 0 || x < min || x > max) {
		snprintf(refusal, sizeof(refusal), ": \"%s\" is not a number from %llu to %llu", v,
			 (unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	*ret = x;
	return 0;
}

/* A timeout key in seconds or, with the MSec suffix, milliseconds. */
static int parse_timeout(const char *k, const char *v, uint64_t min_sec, uint64_t max_sec, usec_t *ret)
{
	bool msec = strstr(k, "MSec") != NULL;
	uint64_t x;

	if (parse_bounded(v, msec ? 1 : min_sec, max_sec * (msec ? 1000 : 1), &x) < 0)
		return -EINVAL;
	*ret = x * (msec ? USEC_PER_MSEC : USEC_PER_SEC);
	return 0;
}

static int set_key(Config *c, const char *k, const char *v)
{
	uint64_t x;

	if (streq(k, "BackupGroup") || streq(k, "DpkgLock")) {
		char **field = streq(k, "BackupGroup") ? &c->backup_group : &c->dpkg_lock;
		char *g = strdup(v);

		if (!g)
			return -ENOMEM;
		free(*field);
		*field = g;
		return 0;
	}
	if (streq(k, "TransactionFreezeTimeoutSec") || streq(k, "TransactionThawTimeoutSec") ||
	    streq(k, "TransactionFreezeTimeoutMSec") || streq(k, "TransactionThawTimeoutMSec")) {
		bool msec = strstr(k, "MSec") != NULL;

		if (parse_bounded(v, 1, msec ? CONFIG_TIMEOUT_MAX_SEC * 1000 : CONFIG_TIMEOUT_MAX_SEC, &x) < 0)
			return -EINVAL;
		*(strstr(k, "Freeze") ? &c->transaction_freeze_timeout : &c->transaction_thaw_timeout) =
			x * (msec ? USEC_PER_MSEC : USEC_PER_SEC);
		return 0;
	}
	if (streq(k, "FlushTimeoutSec") || streq(k, "HoldTimeoutSec")) {
		if (parse_bounded(v, 1, 3600, &x) < 0)
			return -EINVAL;
		*(streq(k, "FlushTimeoutSec") ? &c->flush_timeout : &c->hold_timeout) = x * USEC_PER_SEC;
		return 0;
	}
	if (streq(k, "FlushTimeoutMSec") || streq(k, "HoldTimeoutMSec")) {
		if (parse_bounded(v, 1, 3600 * 1000, &x) < 0)
			return -EINVAL;
		*(streq(k, "FlushTimeoutMSec") ? &c->flush_timeout : &c->hold_timeout) = x * USEC_PER_MSEC;
		return 0;
	}
	if (streq(k, "HoldSettleMSec")) {
		if (parse_bounded(v, 0, 1000, &x) < 0)
			return -EINVAL;
		c->hold_settle = x * USEC_PER_MSEC;
		return 0;
	}
	if (streq(k, "MaxVolumesPerSet")) {
		if (parse_bounded(v, 1, VSS_MAX_VOLUMES_PER_SET, &x) < 0)
			return -EINVAL;
		c->max_volumes_per_set = (unsigned)x;
		return 0;
	}
	if (streq(k, "MaxImageNesting")) {
		if (parse_bounded(v, 1, 8, &x) < 0)
			return -EINVAL;
		c->max_image_nesting = (unsigned)x;
		return 0;
	}
	if (streq(k, "SchedulesDirectory")) {
		char *d;

		if (!path_is_canonical_form(v)) {
			snprintf(refusal, sizeof(refusal), ": \"%s\" is not an absolute path", v);
			return -EINVAL;
		}
		d = strdup(v);
		if (!d)
			return -ENOMEM;
		free(c->schedules_dir);
		c->schedules_dir = d;
		return 0;
	}
	if (streq(k, "HostReserve"))
		return set_host_reserve(c, v);
	if (streq(k, "PreviousVersions"))
		return add_previous_versions(c, v);
	if (streq(k, "HostReserveCheckMSec")) {
		if (parse_bounded(v, 100, 60 * 1000, &x) < 0)
			return -EINVAL;
		c->host_reserve_interval = x * USEC_PER_MSEC;
		return 0;
	}
	if (streq(k, "MaxConnections") || streq(k, "MaxConnectionsPerUser") || streq(k, "MaxObjectsPerConnection")) {
		if (parse_bounded(v, 1, CONFIG_CONNECTIONS_MAX, &x) < 0)
			return -EINVAL;
		*(streq(k, "MaxConnections")          ? &c->max_connections
		  : streq(k, "MaxConnectionsPerUser") ? &c->max_connections_per_user
						      : &c->max_objects_per_connection) = (unsigned)x;
		return 0;
	}
	if (streq(k, "MaxBackupGroupMessageSize")) {
		if (parse_size(v, &x) < 0 || x < CONFIG_MESSAGE_MIN || x > CONFIG_MESSAGE_MAX)
			return -EINVAL;
		c->max_backup_group_message = x;
		return 0;
	}
	if (streq(k, "SnapshotSetTimeoutSec") || streq(k, "SnapshotSetTimeoutMSec"))
		return parse_timeout(k, v, 1, CONFIG_SNAPSHOT_SET_TIMEOUT_MAX_SEC, &c->snapshot_set_timeout);
	if (streq(k, "MaxWriterFreezeTimeoutSec") || streq(k, "MaxWriterFreezeTimeoutMSec"))
		return parse_timeout(k, v, 1, CONFIG_TIMEOUT_MAX_SEC, &c->max_writer_freeze_timeout);
	if (streq(k, "MaxSnapshotsPerVolume")) {
		if (parse_bounded(v, 1, 100000, &x) < 0)
			return -EINVAL;
		c->max_snapshots_per_volume = (unsigned)x;
		return 0;
	}
	return -ENOKEY;
}

/* A key of a [Provider] section, kept until the section ends: which
 * provider it is for is known only then (Name= may come last). */
typedef struct SectionKey {
	char *key, *value;
	unsigned line;
} SectionKey;

typedef struct Section {
	unsigned line;          /* of its header; 0: no [Provider] open */
	SectionKey *keys;
	size_t n_keys;
} Section;

static void section_clear(Section *s)
{
	for (size_t i = 0; i < s->n_keys; i++) {
		free(s->keys[i].key);
		free(s->keys[i].value);
	}
	free(s->keys);
	*s = (Section){ 0 };
}

static int section_add(Section *s, const char *key, const char *value, unsigned line)
{
	SectionKey *k = array_grow((void **)&s->keys, &s->n_keys, sizeof(*s->keys));

	if (!k)
		return -ENOMEM;
	*k = (SectionKey){ .key = strdup(key), .value = strdup(value), .line = line };
	return k->key && k->value ? 0 : -ENOMEM;
}

static int config_add_provider(Config *c, provider_ops *ops, unsigned line)
{
	provider_ops **p = realloc(c->providers, sizeof(*p) * (c->n_providers + 1));
	unsigned *l;

	if (!p)
		return -ENOMEM;
	c->providers = p;
	l = realloc(c->provider_lines, sizeof(*l) * (c->n_providers + 1));
	if (!l)
		return -ENOMEM;
	c->provider_lines = l;
	c->providers[c->n_providers] = ops;
	c->provider_lines[c->n_providers++] = line;
	return 0;
}

/* A [Provider] section, once it has ended: a provider of vssd.conf's own
 * (Type =), made and registered, or keys for a provider vssd has. */
static int section_apply(Config *c, const char *path, Section *s)
{
	const SectionKey *name = NULL, *type = NULL;
	const provider_ops *builtin = NULL;
	provider_ops *ops = NULL;
	const char *reason = NULL;
	int r;

	for (size_t i = 0; i < s->n_keys; i++) {
		const SectionKey **slot = streq(s->keys[i].key, "Name")   ? &name
					  : streq(s->keys[i].key, "Type") ? &type
									  : NULL;

		if (!slot)
			continue;
		if (*slot)
			return log_error_errno(EINVAL, "%s:%u: %s= given twice in one [Provider] section", path,
					       s->keys[i].line, s->keys[i].key);
		*slot = &s->keys[i];
	}
	if (!name)
		return log_error_errno(EINVAL, "%s:%u: [Provider] without Name=", path, s->line);
	if (type) {
		if (!streq(type->value, "command"))
			return log_error_errno(EINVAL, "%s:%u: unknown provider type \"%s\"; vssd knows Type = command",
					       path, type->line, type->value);
		if (provider_find_by_name(name->value))
			return log_error_errno(EEXIST, "%s:%u: a provider named %s exists already", path, name->line,
					       name->value);
		r = command_provider_new(name->value, &ops, &reason);
		if (r < 0)
			return log_error_errno(-r, "%s:%u: cannot make provider %s: %s", path, name->line, name->value,
					       reason ?: strerror(-r));
		r = config_add_provider(c, ops, s->line);
		if (r < 0) {
			command_provider_free(ops);
			return log_error_errno(-r, "%s:%u: %m", path, s->line);
		}
	} else {
		builtin = provider_find_by_name(name->value);
		if (!builtin)
			return log_error_errno(ENOENT, "%s:%u: no provider is named %s (a new one needs Type = command)",
					       path, name->line, name->value);
	}
	for (size_t i = 0; i < s->n_keys; i++) {
		const SectionKey *k = &s->keys[i];

		if (k == name || k == type)
			continue;
		reason = NULL;
		if (ops)
			r = command_provider_set(ops, k->key, k->value, &reason);
		else if (!builtin || !builtin->configure)
			return log_error_errno(EINVAL, "%s:%u: provider %s takes no keys", path, k->line, name->value);
		else
			r = builtin->configure(k->key, k->value, &reason);
		if (r == -ENOKEY)
			return log_error_errno(EINVAL, "%s:%u: unknown key \"%s\" for provider %s", path, k->line, k->key,
					       name->value);
		if (r < 0)
			return log_error_errno(provider_result_is_hr(r) ? EINVAL : -r, "%s:%u: bad value for %s: %s", path,
					       k->line, k->key,
					       reason ?: provider_result_string(r, (char[128]){ 0 }, 128));
	}
	if (!ops)
		return 0;
	r = command_provider_finish(ops, &reason);
	if (r < 0)
		return log_error_errno(-r, "%s:%u: provider %s: %s", path, s->line, name->value, reason);
	r = provider_register(ops);
	if (r < 0)
		return log_error_errno(-r, "%s:%u: provider %s cannot be registered (see above)", path, s->line,
				       name->value);
	return 0;
}

/* After the whole file: what one provider's keys must agree with in
 * [vssd]'s, which may come after them. */
static int check_providers(const Config *c, const char *path)
{
	for (size_t i = 0; i < c->n_providers; i++) {
		usec_t t = command_provider_commit_timeout(c->providers[i]);

		if (t > c->hold_timeout)
			return log_error_errno(EINVAL,
					       "%s:%u: provider %s: its commit's deadline (%llu ms) is longer than "
					       "HoldTimeoutSec= (%llu ms): the commit runs while writes are held",
					       path, c->provider_lines[i], c->providers[i]->name,
					       (unsigned long long)(t / USEC_PER_MSEC),
					       (unsigned long long)(c->hold_timeout / USEC_PER_MSEC));
	}
	return 0;
}

int config_load(Config *c, const char *path, bool required)
{
	Section section = { 0 };
	_cleanup_free_ char *line = NULL;
	size_t size = 0;
	unsigned lineno = 0;
	struct group *gr;
	struct stat st;
	ssize_t n;
	FILE *f;
	int fd, r = 0;

	/* O_NONBLOCK: a FIFO is refused below rather than waited on. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT && !required)
			goto resolve;
		return log_error_errno(errno, "cannot open %s: %m", path);
	}
	/* A directory reads as no lines (every default, silently), a device
	 * such as /dev/zero as one endless line; /dev/null is the usual way
	 * of saying "no configuration". */
	if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)))) {
		close(fd);
		return log_error_errno(EINVAL, "%s: not a regular file", path);
	}
	f = fdopen(fd, "re");
	if (!f) {
		close(fd);
		return log_error_errno(errno, "cannot open %s: %m", path);
	}
	while ((n = getline(&line, &size, f)) >= 0) {
		char *s, *eq;

		lineno++;
		/* What follows a NUL byte would be ignored unseen. */
		if (strlen(line) != (size_t)n) {
			r = log_error_errno(EINVAL, "%s:%u: contains a NUL byte", path, lineno);
			break;
		}
		s = strip_whitespace(line);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			if (section.line > 0) {
				r = section_apply(c, path, &section);
				section_clear(&section);
				if (r < 0)
					break;
			}
			if (streq(s, "[Provider]"))
				section.line = lineno;
			else if (!streq(s, "[vssd]")) {
				r = log_error_errno(EINVAL, "%s:%u: unknown section %s; vssd reads [vssd] and [Provider]",
						    path, lineno, s);
				break;
			}
			continue;
		}
		eq = strchr(s, '=');
		if (!eq) {
			r = log_error_errno(EINVAL, "%s:%u: expected Key = Value", path, lineno);
			break;
		}
		*eq = '\0';
		if (section.line > 0) {
			r = section_add(&section, strip_whitespace(s), strip_whitespace(eq + 1), lineno);
			if (r < 0) {
				r = log_error_errno(-r, "%s:%u: %m", path, lineno);
				break;
			}
			continue;
		}
		r = set_key(c, strip_whitespace(s), strip_whitespace(eq + 1));
		if (r == -ENOKEY) {
			r = log_error_errno(EINVAL, "%s:%u: unknown key \"%s\"", path, lineno, strip_whitespace(s));
			break;
		}
		if (r < 0) {
			r = log_error_errno(-r, "%s:%u: bad value for %s%s", path, lineno, strip_whitespace(s), refusal);
			break;
		}
	}
	fclose(f);
	if (r >= 0 && section.line > 0)
		r = section_apply(c, path, &section);
	section_clear(&section);
	if (r >= 0)
		r = check_providers(c, path);
	if (r < 0)
		return r;
resolve:
	gr = getgrnam(c->backup_group);
	c->backup_gid = gr ? gr->gr_gid : (gid_t)-1;
	if (!gr)
		log_warning("backup group \"%s\" does not exist; only root may make snapshots", c->backup_group);
	return 0;
}
