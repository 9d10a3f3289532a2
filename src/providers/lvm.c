/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The LVM provider. A volume is an ext2/3/4 or XFS filesystem mounted from a
 * logical volume (found from the mount's device: its device-mapper uuid
 * "LVM-<vg uuid><lv uuid>"), or the LV's block device itself. A thin LV gets
 * a thin snapshot; any other LV a classic copy-on-write snapshot sized by a
 * rule (lvm_cow_size(): a quarter of the origin). Snapshots are LVs named
 * "vss-<snapshot id>" in the origin's VG, so the snapshot path is
 * "/dev/VG/vss-<id>" and the "store" is /dev/VG; each carries the tags
 * "vss-snapshot:<id>" and "vss-set:<id>", by which vss knows its own LVs
 * after a crash.
 *
 * A mounted LV is held: the engine freezes its filesystem, and commit makes
 * every member's snapshot while all are frozen. lvcreate suspends the
 * origin's device with lockfs, which freezes the filesystem again: on kernels
 * before 6.6 that fails with EBUSY on a filesystem already frozen (FIFREEZE
 * and device-mapper's freeze share one level), so commit first suspends each
 * origin itself without lockfs (DM_SKIP_LOCKFS_FLAG), and lvcreate, finding
 * it suspended, leaves the suspend alone and resumes it when done. Commit
 * resumes whatever is still suspended when lvm returns.
 *
 * lvm runs with the system's configuration (and environment); inside the
 * hold with -An (no metadata archive or backup: /etc/lvm may lie on a held
 * filesystem), and the backup is brought up to date after the hold. Its
 * reports are read as JSON (json-c).
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/dm-ioctl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/fd-util.h"
#include "basic/id.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "basic/spawn-util.h"
#include "basic/util.h"
#include "providers/lvm.h"
#include "providers/mounts.h"
#include "providers/provider.h"

extern char **environ;

/* How long an lvm command may take; inside the hold, the hold limit's
 * default: the engine gives up then, and a command still running would keep
 * its origins suspended. */
#define LVM_TIMEOUT_USEC (60 * USEC_PER_SEC)
#define LVM_HOLD_TIMEOUT_USEC (10 * USEC_PER_SEC)
/* Output kept of one command. */
#define LVM_OUTPUT_MAX (4u << 20)
/* A thin pool this full gets no more snapshots: a pool that fills stops
 * its origins' writes. */
#define THIN_POOL_FULL_PERCENT 95.0

static const char *lvm_binary(void)
{
	static const char *const candidates[] = { "/usr/sbin/lvm", "/sbin/lvm" };

	for (size_t i = 0; i < ELEMENTSOF(candidates); i++)
		if (access(candidates[i], X_OK) == 0)
			return candidates[i];
	return candidates[0];
}

typedef struct LvmRun {
	int status;     /* exit status, or 128 + signal */
	bool timed_out;
	char *out;
	char *err;
} LvmRun;

static void lvm_run_clear(LvmRun *r)
{
	free(r->out);
	free(r->err);
	*r = (LvmRun){ 0 };
}

/*
 * Run "lvm ARGS..." with a deadline (spawn_run(): its own process group,
 * killed at the deadline; cwd "/"; stdin input or /dev/null; output
 * captured). Logs nothing: it runs inside the hold.
 */
static int lvm_run(char *const *args, const char *input, usec_t timeout, LvmRun *ret)
{
	char *argv[64];
	char *envp[512];
	size_t n = 0, ne = 0;
	SpawnResult sr = { 0 };
	int r;

	*ret = (LvmRun){ 0 };
	argv[n++] = (char *)lvm_binary();
	for (size_t i = 0; args[i] && n < ELEMENTSOF(argv) - 1; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	/* lvm complains of every fd it inherits otherwise. */
	envp[ne++] = (char *)"LVM_SUPPRESS_FD_WARNINGS=1";
	for (char **e = environ; e && *e && ne < ELEMENTSOF(envp) - 1; e++)
		if (strncmp(*e, "LVM_SUPPRESS_FD_WARNINGS=", 25) != 0)
			envp[ne++] = *e;
	envp[ne] = NULL;
	r = spawn_run(argv, &(SpawnOptions){ .timeout = timeout, .envp = envp, .input = input,
					      .max_output = LVM_OUTPUT_MAX },
		      &sr);
	if (r < 0)
		return r;
	ret->status = WIFEXITED(sr.status) ? WEXITSTATUS(sr.status) : 128 + WTERMSIG(sr.status);
	ret->timed_out = sr.timed_out;
	ret->out = TAKE_PTR(sr.out);
	ret->err = TAKE_PTR(sr.err);
	spawn_result_clear(&sr);
	return 0;
}

/* The last line lvm wrote to stderr, for messages (points into run). */
static const char *last_error(const LvmRun *run, char *buf, size_t size)
{
	const char *s = run->err ?: "";
	size_t len = strlen(s);

	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' '))
		len--;
	size_t start = len;
	while (start > 0 && s[start - 1] != '\n')
		start--;
	while (start < len && s[start] == ' ')
		start++;
	snprintf(buf, size, "%.*s", (int)(len - start), s + start);
	return buf;
}

static bool says_no_space(const LvmRun *run)
{
	return run->err && (strstr(run->err, "Insufficient free space") || strstr(run->err, "insufficient") ||
			    strstr(run->err, "Insufficient suitable"));
}

static bool says_not_found(const LvmRun *run)
{
	return run->err && strstr(run->err, "not found");
}

/* `lvs` with the fields LvmLv reads, of what args select. */
static int lvs(char *const *args, LvmLv **ret, size_t *ret_n, LvmRun *ret_run)
{
	char *argv[32] = { (char *)"lvs", (char *)"--reportformat", (char *)"json", (char *)"--units", (char *)"b",
			   (char *)"--nosuffix", (char *)"-o", (char *)LVM_FIELDS };
	size_t n = 8;
	LvmRun run;
	int r;

	for (size_t i = 0; args && args[i] && n < ELEMENTSOF(argv) - 1; i++)
		argv[n++] = args[i];
	r = lvm_run(argv, NULL, LVM_TIMEOUT_USEC, &run);
	if (r < 0)
		return r;
	if (run.status != 0 || run.timed_out) {
		r = says_not_found(&run) ? -ENOENT : -EIO;
		if (ret_run)
			*ret_run = run;
		else
			lvm_run_clear(&run);
		return r;
	}
	r = lvm_report_parse(run.out, ret, ret_n);
	lvm_run_clear(&run);
	return r;
}

/* The device a volume is: the one its filesystem is on, or the block
 * device given. */
static int volume_device(int fd, dev_t *ret, bool *ret_is_block)
{
	struct stat st;

	*ret = 0;
	*ret_is_block = false;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		*ret = st.st_rdev;
		*ret_is_block = true;
		return 0;
	}
	if (!S_ISDIR(st.st_mode))
		return -ENODEV;
	*ret = st.st_dev;
	*ret_is_block = false;
	return 0;
}

/* The device-mapper uuid of dev (sysfs), or -ENODEV. */
static int dm_uuid_of(dev_t dev, char *buf, size_t size)
{
	char path[64];
	ssize_t k;
	int fd;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/dm/uuid", major(dev), minor(dev));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENODEV;
	k = read(fd, buf, size - 1);
	close(fd);
	if (k <= 0)
		return -ENODEV;
	while (k > 0 && (buf[k - 1] == '\n' || buf[k - 1] == ' '))
		k--;
	buf[k] = '\0';
	return 0;
}

/* Whether dev is a top-level LV (not a layer of one). */
static bool is_lv_device(dev_t dev)
{
	char uuid[DM_UUID_LEN], vg[39], lv[39];

	return dm_uuid_of(dev, uuid, sizeof(uuid)) == 0 && lvm_dm_uuid_split(uuid, vg, lv) == 0;
}

static bool fs_supported(const char *t)
{
	return t && (streq(t, "ext4") || streq(t, "ext3") || streq(t, "ext2") || streq(t, "xfs"));
}

static int lvm_is_volume_supported(const VolumeInfo *v)
{
	dev_t dev;
	bool block;

	if (v->is_directory && (!v->is_mount_point || !fs_supported(v->fs_type)))
		return 0;
	if (!v->is_directory && v->is_regular)
		return 0;
	if (volume_device(v->fd, &dev, &block) < 0)
		return 0;
	return is_lv_device(dev);
}

/* Suspend (or resume) a device-mapper device by uuid, without lockfs:
 * its filesystem is frozen already. */
static int dm_suspend(const char *uuid, bool suspend)
{
	struct dm_ioctl io = {
		.version = { DM_VERSION_MAJOR, 0, 0 },
		.data_size = sizeof(struct dm_ioctl),
		.data_start = sizeof(struct dm_ioctl),
		.flags = suspend ? DM_SUSPEND_FLAG | DM_SKIP_LOCKFS_FLAG : 0,
	};
	_cleanup_close_ int fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	snprintf(io.uuid, sizeof(io.uuid), "%s", uuid);
	return ioctl(fd, DM_DEV_SUSPEND, &io) < 0 ? -errno : 0;
}

/* The mount of the filesystem on dev, if any: a directory fd of its root
 * and its mount point. 0 with *ret_fd -1 when nothing mounts it. */
static int find_mount_of(dev_t dev, int *ret_fd, char **ret_target)
{
	_cleanup_(strv_freep) char **targets = NULL;
	int r;

	*ret_fd = -1;
	*ret_target = NULL;
	r = mount_targets(&targets);
	if (r < 0)
		return r;
	for (size_t i = 0; targets[i]; i++) {
		_cleanup_close_ int fd = open_no_symlinks(AT_FDCWD, targets[i], O_RDONLY | O_DIRECTORY, 0);
		struct stat st;
		uint64_t id;
		bool root;

		if (fd < 0 || fstat(fd, &st) < 0 || st.st_dev != dev || fd_mount_id(fd, &id, &root) < 0 || !root)
			continue;
		*ret_target = strdup(targets[i]);
		if (!*ret_target)
			return -ENOMEM;
		*ret_fd = TAKE_FD(fd);
		return 0;
	}
	return 0;
}

/* What a member's steps need of its LV, from begin_prepare on. */
typedef struct LvmMember {
	char vg[128], lv[128];
	char dm_uuid[DM_UUID_LEN];      /* the origin's device */
	bool thin;
	uint64_t cow_size;              /* classic: the snapshot's size */
	char pool_uuid[DM_UUID_LEN];    /* thin: the pool's device (-tpool) */
	unsigned thin_id, origin_thin_id; /* thin: the snapshot's and the origin's */
	bool backup_vg;                 /* the last of the set in its VG: backs it up */
	bool made;                      /* the snapshot LV may exist: abort removes it */
	bool suspended;
	LvmRun run;                     /* of the lvm run inside the hold, logged after it */
	struct LvmShared *shared;
} LvmMember;

/* What the members of one set share: lvm's report after the hold, read
 * once for all of them (each lvm process costs a good part of a second
 * in the test machine). */
typedef struct LvmShared {
	unsigned refs;
	bool read;
	int result;
	LvmLv *lvs;
	size_t n;
} LvmShared;

static void shared_unref(LvmShared *sh)
{
	if (sh && --sh->refs == 0) {
		lvm_lvs_free(sh->lvs, sh->n);
		free(sh);
	}
}

static void member_free(ProviderMember *m)
{
	LvmMember *p = m->priv;

	if (!p)
		return;
	lvm_run_clear(&p->run);
	shared_unref(p->shared);
	free(p);
	m->priv = NULL;
}

static const char *snapshot_name(const ProviderMember *m)
{
	return strrchr(m->snapshot_path, '/') + 1;
}

/* The LV of a member from lvm's report of its VG, checked against the
 * device its fd is on. */
static int find_lv(const LvmLv *lvs, size_t n, const char *lv_uuid, dev_t dev, const LvmLv **ret)
{
	for (size_t i = 0; i < n; i++) {
		if (!streq(lvs[i].lv_uuid, lv_uuid))
			continue;
		if (lvs[i].kernel_major < 0 || makedev((unsigned)lvs[i].kernel_major, (unsigned)lvs[i].kernel_minor) != dev)
			return -ESTALE;
		*ret = &lvs[i];
		return 0;
	}
	return -ENOENT;
}

static const LvmLv *find_by_name(const LvmLv *lvs, size_t n, const char *vg, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (streq(lvs[i].vg_name, vg) && streq(lvs[i].lv_name, name))
			return &lvs[i];
	return NULL;
}

/* The report locate reads, kept a moment per VG: a set's volumes are
 * added one after another, each an lvm process otherwise (some 0.4 s in the
 * test machine), and end_prepare checks every member against a report of
 * its own. locate runs on vssd's event loop only. */
#define LOCATE_CACHE_USEC (5 * USEC_PER_SEC)
static struct {
	char vg_uuid[39];
	usec_t at;
	LvmLv *lvs;
	size_t n;
} locate_cache;

static int copy_lvs(const LvmLv *from, size_t n, LvmLv **ret)
{
	LvmLv *to = calloc(n ?: 1, sizeof(*to));
	int r = 0;

	if (!to)
		return -ENOMEM;
	for (size_t i = 0; i < n && r >= 0; i++) {
		to[i] = from[i];
		to[i].vg_name = strdup(from[i].vg_name);
		to[i].lv_name = strdup(from[i].lv_name);
		to[i].lv_uuid = strdup(from[i].lv_uuid);
		to[i].vg_uuid = strdup(from[i].vg_uuid);
		to[i].segtype = strdup(from[i].segtype);
		to[i].pool_lv = strdup(from[i].pool_lv);
		to[i].origin = strdup(from[i].origin);
		to[i].lv_attr = strdup(from[i].lv_attr);
		to[i].tags = calloc(1, sizeof(char *));
		for (size_t k = 0; to[i].tags && from[i].tags[k] && r >= 0; k++)
			r = strv_push_dup(&to[i].tags, from[i].tags[k]);
		if (!to[i].vg_name || !to[i].lv_name || !to[i].lv_uuid || !to[i].vg_uuid || !to[i].segtype ||
		    !to[i].pool_lv || !to[i].origin || !to[i].lv_attr || !to[i].tags)
			r = -ENOMEM;
	}
	if (r < 0) {
		lvm_lvs_free(to, n);
		return r;
	}
	*ret = to;
	return 0;
}

static int locate_report(const char *vg_uuid, char *const *args, bool fresh, LvmLv **ret, size_t *ret_n)
{
	usec_t now = now_usec(CLOCK_MONOTONIC);
	int r;

	if (fresh || !streq(locate_cache.vg_uuid, vg_uuid) || now - locate_cache.at > LOCATE_CACHE_USEC) {
		lvm_lvs_free(locate_cache.lvs, locate_cache.n);
		locate_cache.lvs = NULL;
		locate_cache.n = 0;
		locate_cache.vg_uuid[0] = '\0';
		r = lvs(args, &locate_cache.lvs, &locate_cache.n, NULL);
		if (r < 0)
			return r;
		snprintf(locate_cache.vg_uuid, sizeof(locate_cache.vg_uuid), "%s", vg_uuid);
		locate_cache.at = now;
	}
	r = copy_lvs(locate_cache.lvs, locate_cache.n, ret);
	if (r >= 0)
		*ret_n = locate_cache.n;
	return r;
}

static bool segtype_classic(const char *t)
{
	return streq(t, "linear") || streq(t, "striped") || streq(t, "mirror") || strncmp(t, "raid", 4) == 0;
}

static int lvm_locate(ProviderMember *m)
{
	_cleanup_free_ char *target = NULL;
	_cleanup_close_ int hold = -1;
	char dm_uuid[DM_UUID_LEN], vg_uuid[39], lv_uuid[39], sel[80], buf[VSS_ID_STRING_MAX];
	char *args[] = { (char *)"-S", sel, NULL };
	LvmLv *all = NULL;
	const LvmLv *lv;
	size_t n = 0;
	dev_t dev;
	bool block;
	vss_id sid, setid;
	int r;

	r = volume_device(m->volume_fd, &dev, &block);
	if (r < 0)
		return r;
	if (dm_uuid_of(dev, dm_uuid, sizeof(dm_uuid)) < 0 || lvm_dm_uuid_split(dm_uuid, vg_uuid, lv_uuid) < 0)
		return VSS_E_VOLUME_NOT_SUPPORTED;
	snprintf(sel, sizeof(sel), "vg_uuid=\"%s\"", vg_uuid);
	r = locate_report(vg_uuid, args, false, &all, &n);
	if (r >= 0 && find_lv(all, n, lv_uuid, dev, &lv) < 0) {
		/* Made or changed since the report was kept. */
		lvm_lvs_free(all, n);
		all = NULL;
		n = 0;
		r = locate_report(vg_uuid, args, true, &all, &n);
	}
	if (r < 0) {
		m->reason = "lvm cannot report its volume group";
		return r;
	}
	r = find_lv(all, n, lv_uuid, dev, &lv);
	if (r < 0) {
		lvm_lvs_free(all, n);
		m->reason = "lvm does not report the logical volume its device is";
		return r == -ENOENT ? VSS_E_VOLUME_NOT_SUPPORTED : r;
	}
	/* vss's own snapshots (exposed ones are mounted LVs) are not volumes. */
	if (lvm_tags_ids(lv->tags, &sid, &setid) || lv->lv_attr[0] == 's' || lv->lv_attr[0] == 'S') {
		m->reason = "it is a snapshot";
		r = VSS_E_VOLUME_NOT_SUPPORTED;
	} else if (!streq(lv->segtype, "thin") && !segtype_classic(lv->segtype)) {
		m->reason = "lvm cannot snapshot a logical volume of this type";
		r = VSS_E_VOLUME_NOT_SUPPORTED;
	} else if (!lvm_name_valid(lv->vg_name) || !lvm_name_valid(lv->lv_name) || strlen(lv->vg_name) > 100) {
		r = VSS_E_VOLUME_NOT_SUPPORTED;
	}
	if (r >= 0 && asprintf(&m->snapshot_path, "/dev/%s/vss-%.36s", lv->vg_name,
			       vss_id_format(&m->snapshot_id, buf) + 1) < 0) {
		m->snapshot_path = NULL;
		r = -ENOMEM;
	}
	if (r >= 0 && asprintf(&m->provider_data, "%s/%s", lv->vg_name, lv->lv_name) < 0) {
		m->provider_data = NULL;
		r = -ENOMEM;
	}
	lvm_lvs_free(all, n);
	if (r < 0)
		return r;

	/* What to hold: the filesystem on the LV, the volume itself or, for an
	 * LV given as a device, wherever it is mounted. An LV nothing mounts
	 * cannot be held; its snapshot is crash-consistent on its own. */
	if (!block) {
		hold = fcntl(m->volume_fd, F_DUPFD_CLOEXEC, 3);
		if (hold < 0)
			return -errno;
		target = strdup(m->mount_point);
		if (!target)
			return -ENOMEM;
	} else {
		r = find_mount_of(dev, &hold, &target);
		if (r < 0)
			return r;
	}
	if (hold >= 0) {
		struct stat a, b;

		/* Freezing the root filesystem would freeze vssd. */
		if (fstat(hold, &a) < 0 || stat("/", &b) < 0 || a.st_dev == b.st_dev) {
			m->reason = "it is the root filesystem";
			return VSS_E_VOLUME_NOT_SUPPORTED;
		}
		m->hold_fd = TAKE_FD(hold);
		m->hold_path = TAKE_PTR(target);
	}
	m->attributes = VSS_VOLSNAP_ATTR_DIFFERENTIAL;
	return 0;
}

static int split_snapshot_path(const char *path, char vg[128], char name[128])
{
	const char *p, *slash;

	if (!path || strncmp(path, "/dev/", 5) != 0)
		return VSS_E_PROVIDER_VETO;
	p = path + 5;
	slash = strchr(p, '/');
	if (!slash || (size_t)(slash - p) >= 128 || strlen(slash + 1) >= 128)
		return VSS_E_PROVIDER_VETO;
	snprintf(vg, 128, "%.*s", (int)(slash - p), p);
	snprintf(name, 128, "%s", slash + 1);
	return lvm_name_valid(vg) && lvm_name_valid(name) ? 0 : VSS_E_PROVIDER_VETO;
}

static int lvm_begin_prepare(ProviderMember *m)
{
	LvmMember *p;
	dev_t dev;
	bool block;
	int r;

	if (!m->priv) {
		p = calloc(1, sizeof(*p));
		if (!p)
			return -ENOMEM;
		m->priv = p;
	}
	p = m->priv;
	r = volume_device(m->volume_fd, &dev, &block);
	if (r < 0)
		return r;
	if (dm_uuid_of(dev, p->dm_uuid, sizeof(p->dm_uuid)) < 0)
		return -ENODEV;
	m->state = VSS_SS_PREPARED;
	return 0;
}

/* The device-mapper uuid of an LV of lvm's report, with a layer suffix. */
static int lv_dm_uuid(const LvmLv *lv, const char *layer, char *buf, size_t size)
{
	char vg[33], id[33];
	size_t k = 0, j = 0;

	for (const char *s = lv->vg_uuid; *s && k < 32; s++)
		if (*s != '-')
			vg[k++] = *s;
	for (const char *s = lv->lv_uuid; *s && j < 32; s++)
		if (*s != '-')
			id[j++] = *s;
	if (k != 32 || j != 32)
		return -EINVAL;
	vg[k] = id[j] = '\0';
	snprintf(buf, size, "LVM-%s%s%s%s", vg, id, layer ? "-" : "", layer ?: "");
	return 0;
}

static int append_line(char **script, size_t *len, const char *line)
{
	size_t l = strlen(line);
	char *ns = realloc(*script, *len + l + 1);

	if (!ns)
		return -ENOMEM;
	memcpy(ns + *len, line, l + 1);
	*script = ns;
	*len += l;
	return 0;
}

/* "lvcreate ... VG/LV" of a member, for the lvm shell. */
static int lvcreate_line(const ProviderMember *m, char **ret)
{
	const LvmMember *p = m->priv;
	char st[96], gt[96], opts[64];

	lvm_tag_format(LVM_TAG_SNAPSHOT, &m->snapshot_id, st, sizeof(st));
	lvm_tag_format(LVM_TAG_SET, &m->set_id, gt, sizeof(gt));
	if (p->thin)
		/* Made before the hold, inactive (its content is replaced
		 * inside it). */
		snprintf(opts, sizeof(opts), "-ky -an");
	else
		/* Inside the hold: no archive or backup of the metadata
		 * (/etc/lvm may be on a held filesystem). */
		snprintf(opts, sizeof(opts), "-An -L %" PRIu64 "k", p->cow_size / 1024);
	if (asprintf(ret, "lvcreate -s %s -n %s --addtag %s --addtag %s %s/%s\n", opts, snapshot_name(m), st, gt, p->vg,
		     p->lv) < 0)
		return -ENOMEM;
	return 0;
}

/* Run the lvm shell on a script of lvcreate lines; -EIO (with the run
 * kept) when a command failed. */
static int run_script(const char *script, usec_t timeout, LvmRun *ret)
{
	char *args[] = { NULL };
	int r = lvm_run(args, script, timeout, ret);

	if (r < 0)
		return r;
	if (ret->timed_out)
		return VSS_E_HOLD_WRITES_TIMEOUT;
	/* The shell goes on after a failed command, and its own status says
	 * nothing of them: what was made is checked in lvm's report after. */
	if (ret->status != 0)
		return says_no_space(ret) ? VSS_E_INSUFFICIENT_STORAGE : -EIO;
	return 0;
}

/*
 * One report for the whole set: each member's LV (checked against its
 * device again), whether each VG has the room its classic snapshots take
 * and each thin pool room for more. Then the thin members' snapshots are
 * made, one lvm process for all, while the volumes are live: inside the
 * hold, a thin snapshot's content is replaced by the pool's own messages
 * (lvm_commit_group()), which is what makes it the set's instant.
 */
static int lvm_end_prepare(ProviderMember **members, size_t n)
{
	_cleanup_free_ char *script = NULL;
	size_t len = 0;
	LvmLv *all = NULL;
	size_t nl = 0;
	bool any_thin = false;
	LvmRun run;
	LvmShared *sh;
	int r;

	if (n == 0)
		return 0;
	sh = calloc(1, sizeof(*sh));
	if (!sh)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		((LvmMember *)members[i]->priv)->shared = sh;
		sh->refs++;
	}
	r = lvs(NULL, &all, &nl, NULL);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		ProviderMember *m = members[i];
		LvmMember *p = m->priv;
		char vg_uuid[39], lv_uuid[39];
		const LvmLv *lv = NULL;
		dev_t dev;
		bool block;

		r = volume_device(m->volume_fd, &dev, &block);
		if (r >= 0)
			r = lvm_dm_uuid_split(p->dm_uuid, vg_uuid, lv_uuid) < 0 ? -ENODEV : 0;
		if (r >= 0)
			r = find_lv(all, nl, lv_uuid, dev, &lv);
		if (r < 0) {
			m->reason = "its logical volume changed since it was added";
			lvm_lvs_free(all, nl);
			return r == -ENOENT ? -ESTALE : r;
		}
		snprintf(p->vg, sizeof(p->vg), "%s", lv->vg_name);
		snprintf(p->lv, sizeof(p->lv), "%s", lv->lv_name);
		p->thin = streq(lv->segtype, "thin");
		if (p->thin) {
			const LvmLv *pool = find_by_name(all, nl, lv->vg_name, lv->pool_lv);

			if (!pool || lv_dm_uuid(pool, "tpool", p->pool_uuid, sizeof(p->pool_uuid)) < 0) {
				lvm_lvs_free(all, nl);
				return -ENODEV;
			}
			if (pool->data_percent >= THIN_POOL_FULL_PERCENT ||
			    pool->metadata_percent >= THIN_POOL_FULL_PERCENT) {
				m->reason = "its thin pool is nearly full (95% or more of its data or metadata)";
				lvm_lvs_free(all, nl);
				return VSS_E_INSUFFICIENT_STORAGE;
			}
			any_thin = true;
		} else {
			p->cow_size = lvm_cow_size(lv->lv_size, lv->vg_extent_size, LVM_COW_PERCENT_DEFAULT);
		}
	}
	/* The classic snapshots of one VG together must fit in its free
	 * space; the last member of each VG backs its metadata up after the
	 * hold. */
	for (size_t i = 0; i < n; i++) {
		LvmMember *p = members[i]->priv;
		uint64_t need = 0, free_bytes = 0;
		bool last = true;

		for (size_t k = 0; k < n; k++) {
			LvmMember *q = members[k]->priv;

			if (!streq(q->vg, p->vg))
				continue;
			need += q->cow_size;
			if (k > i)
				last = false;
		}
		p->backup_vg = last;
		for (size_t k = 0; k < nl; k++)
			if (streq(all[k].vg_name, p->vg))
				free_bytes = all[k].vg_free;
		if (need > free_bytes) {
			members[i]->reason = "its volume group has too little free space for the classic snapshots "
					     "(a quarter of each origin's size)";
			lvm_lvs_free(all, nl);
			return VSS_E_INSUFFICIENT_STORAGE;
		}
	}
	lvm_lvs_free(all, nl);
	if (!any_thin)
		return 0;

	for (size_t i = 0; i < n; i++) {
		LvmMember *p = members[i]->priv;
		_cleanup_free_ char *line = NULL;

		if (!p->thin)
			continue;
		r = lvcreate_line(members[i], &line);
		if (r >= 0)
			r = append_line(&script, &len, line);
		if (r < 0)
			return r;
		p->made = true;
	}
	r = run_script(script, LVM_TIMEOUT_USEC, &run);
	if (r < 0) {
		if (run.err)
			log_warning("lvm: the thin snapshots of the set: exit status %d; lvm said: %s", run.status, run.err);
		members[0]->reason = "lvm could not make the thin snapshots";
		lvm_run_clear(&run);
		return r == VSS_E_HOLD_WRITES_TIMEOUT ? -ETIMEDOUT : r;
	}
	/* Their thin ids, and the origins', for the pool's messages; each
	 * snapshot inactive, so that its thin device can be replaced. */
	r = lvs(NULL, &all, &nl, NULL);
	if (r < 0) {
		lvm_run_clear(&run);
		return r;
	}
	for (size_t i = 0; r >= 0 && i < n; i++) {
		LvmMember *p = members[i]->priv;
		const LvmLv *snap, *origin;
		vss_id sid, setid;

		if (!p->thin)
			continue;
		snap = find_by_name(all, nl, p->vg, snapshot_name(members[i]));
		origin = find_by_name(all, nl, p->vg, p->lv);
		if (!snap || !lvm_tags_ids(snap->tags, &sid, &setid) || !vss_id_equal(&sid, &members[i]->snapshot_id)) {
			members[i]->reason = "lvm does not report the thin snapshot made for it";
			r = -EIO;
		} else if (!origin || snap->thin_id < 0 || origin->thin_id < 0) {
			members[i]->reason = "lvm reports no thin device id of its snapshot or of itself";
			r = -EIO;
		} else if (snap->kernel_major >= 0) {
			members[i]->reason = "its thin snapshot was activated: its device cannot be replaced";
			r = -EBUSY;
		} else {
			p->thin_id = (unsigned)snap->thin_id;
			p->origin_thin_id = (unsigned)origin->thin_id;
		}
	}
	lvm_lvs_free(all, nl);
	/* lvm says why in what it wrote. */
	if (r < 0 && run.err && *run.err)
		log_warning("lvm: the thin snapshots of the set: lvm said: %s", run.err);
	else if (run.err && *run.err)
		log_debug("lvm: the thin snapshots of the set: lvm said: %s", run.err);
	lvm_run_clear(&run);
	return r;
}

static int lvm_pre_commit(ProviderMember *m)
{
	int r = 0;

	/* Dirty data written now is not written inside the hold. */
	if (m->hold_fd >= 0) {
		r = fault_point(POINT_SYNC);
		if (r == 0 && syncfs(m->hold_fd) < 0)
			r = -errno;
	}
	if (r < 0)
		return r;
	m->state = VSS_SS_PRECOMMITTED;
	return 0;
}

/* Send a message to a device-mapper target (a thin pool), by uuid. */
static int dm_message(const char *uuid, const char *message)
{
	/* struct dm_ioctl, then struct dm_target_msg and its text. */
	union {
		struct dm_ioctl io;
		char bytes[sizeof(struct dm_ioctl) + sizeof(struct dm_target_msg) + 128];
	} buf = { 0 };
	struct dm_target_msg *msg = (struct dm_target_msg *)(buf.bytes + sizeof(struct dm_ioctl));
	_cleanup_close_ int fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	buf.io.version[0] = DM_VERSION_MAJOR;
	buf.io.data_size = sizeof(buf);
	buf.io.data_start = sizeof(struct dm_ioctl);
	snprintf(buf.io.uuid, sizeof(buf.io.uuid), "%s", uuid);
	msg->sector = 0;
	snprintf(msg->message, 128, "%s", message);
	return ioctl(fd, DM_TARGET_MSG, &buf) < 0 ? -errno : 0;
}

/* A thin member's snapshot made again, now: its thin device, made before
 * the hold, deleted and snapshotted anew from the origin, suspended (its
 * filesystem frozen: the suspend skips lockfs) so that nothing is in
 * flight. The ids stay, and so does the pool's transaction: lvm's metadata
 * stays true. */
static int thin_recut(LvmMember *p)
{
	char msg[64];
	int r;

	r = dm_suspend(p->dm_uuid, true);
	if (r < 0)
		return r;
	p->suspended = true;
	snprintf(msg, sizeof(msg), "delete %u", p->thin_id);
	r = dm_message(p->pool_uuid, msg);
	if (r == 0) {
		snprintf(msg, sizeof(msg), "create_snap %u %u", p->thin_id, p->origin_thin_id);
		r = dm_message(p->pool_uuid, msg);
	}
	if (dm_suspend(p->dm_uuid, false) == 0)
		p->suspended = false;
	return r;
}

/*
 * Inside the hold: no logging, no writes but to the PVs. A thin member
 * costs two messages to its pool (thin_recut()); the classic ones are made
 * by one lvm process reading an lvcreate per member (each process costs a
 * start, its configuration and a device scan), each origin suspended first
 * without lockfs: lvcreate's own suspend would freeze the filesystem again,
 * which fails with EBUSY before Linux 6.6, and lvcreate leaves an origin
 * it finds suspended alone and resumes it when done.
 */
static int lvm_commit_group(ProviderMember **members, size_t n)
{
	_cleanup_free_ char *script = NULL;
	size_t len = 0;
	int r = 0;

	for (size_t i = 0; r == 0 && i < n; i++) {
		LvmMember *p = members[i]->priv;

		r = fault_point(POINT_SNAPSHOT);
		if (r == 0 && p->thin)
			r = thin_recut(p);
	}
	for (size_t i = 0; r == 0 && i < n; i++) {
		LvmMember *p = members[i]->priv;
		_cleanup_free_ char *line = NULL;

		if (p->thin)
			continue;
		r = lvcreate_line(members[i], &line);
		if (r == 0)
			r = append_line(&script, &len, line);
		p->made = true;
		if (r == 0 && members[i]->hold_fd >= 0) {
			r = dm_suspend(p->dm_uuid, true);
			if (r == 0)
				p->suspended = true;
		}
	}
	if (r == 0 && script)
		r = run_script(script, LVM_HOLD_TIMEOUT_USEC, &((LvmMember *)members[0]->priv)->run);
	/* lvcreate resumed what it snapshotted; the rest is resumed here. */
	for (size_t i = 0; i < n; i++) {
		LvmMember *p = members[i]->priv;

		if (p->suspended && dm_suspend(p->dm_uuid, false) == 0)
			p->suspended = false;
	}
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		members[i]->state = VSS_SS_COMMITTED;
	return 0;
}

static void log_run(const ProviderMember *m, const LvmRun *run, const char *what)
{
	if (run->err && *run->err)
		log_debug("lvm: %s of %s: exit status %d%s; lvm said: %s", what, m->volume, run->status,
			  run->timed_out ? " (killed at its deadline)" : "", run->err);
}

static int lvm_post_commit(ProviderMember *m)
{
	LvmMember *p = m->priv;
	LvmShared *sh = p->shared;
	char *args[] = { (char *)"vgcfgbackup", p->vg, NULL };
	const LvmLv *lv;
	vss_id sid, setid;
	LvmRun run;
	int r;

	log_run(m, &p->run, "the snapshots");
	/* Made as lvm says, with vss's tags: the set's last look, one report
	 * for every member. */
	if (!sh)
		return -EINVAL;
	if (!sh->read) {
		sh->read = true;
		sh->result = lvs(NULL, &sh->lvs, &sh->n, NULL);
	}
	if (sh->result < 0)
		return sh->result;
	lv = find_by_name(sh->lvs, sh->n, p->vg, snapshot_name(m));
	r = lv && lvm_tags_ids(lv->tags, &sid, &setid) && vss_id_equal(&sid, &m->snapshot_id) &&
			    !lvm_attr_invalid(lv->lv_attr)
		    ? 0
		    : -EIO;
	if (r < 0) {
		if (p->run.err && *p->run.err)
			log_warning("lvm: the snapshot of %s is missing; lvm said: %s", m->volume, p->run.err);
		m->reason = "lvm does not report the snapshot made";
		return r;
	}
	/* The metadata backup skipped inside the hold, once per VG. */
	if (!p->backup_vg)
		return 0;
	r = lvm_run(args, NULL, LVM_TIMEOUT_USEC, &run);
	if (r >= 0 && run.status != 0)
		log_warning("lvm: cannot back up the metadata of %s (vgcfgbackup): %s", p->vg,
			    last_error(&run, (char[256]){ 0 }, 256));
	if (r >= 0)
		lvm_run_clear(&run);
	return 0;
}

static int lvm_post_final_commit(ProviderMember *m)
{
	member_free(m);
	return 0;
}

/* Remove a snapshot LV of vss's: 0 when gone (also when it was already),
 * VSS_E_PROVIDER_VETO when the LV by that name is not vss's snapshot. */
static int remove_snapshot(const char *vg, const char *name)
{
	char lvname[260];
	char *args_vg[] = { (char *)vg, NULL };
	char *args_rm[] = { (char *)"lvremove", (char *)"-y", lvname, NULL };
	LvmLv *all = NULL;
	const LvmLv *lv;
	size_t n = 0;
	vss_id sid, setid, want;
	LvmRun run;
	int r;

	r = lvs(args_vg, &all, &n, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	lv = find_by_name(all, n, vg, name);
	if (!lv) {
		lvm_lvs_free(all, n);
		return 0;
	}
	/* Named after its snapshot id, and tagged with it. */
	r = strncmp(name, "vss-", 4) == 0 && !VSS_FAILED(vss_id_parse(name + 4, &want)) &&
			    lvm_tags_ids(lv->tags, &sid, &setid) && vss_id_equal(&sid, &want)
		    ? 0
		    : VSS_E_PROVIDER_VETO;
	lvm_lvs_free(all, n);
	if (r < 0)
		return r;
	r = fault_point(POINT_REMOVE);
	if (r < 0)
		return r;
	snprintf(lvname, sizeof(lvname), "%s/%s", vg, name);
	r = lvm_run(args_rm, NULL, LVM_TIMEOUT_USEC, &run);
	if (r < 0)
		return r;
	if (run.status != 0) {
		log_warning("lvm: cannot remove /dev/%s: %s", lvname, last_error(&run, (char[256]){ 0 }, 256));
		r = says_not_found(&run) ? 0 : -EIO;
	}
	lvm_run_clear(&run);
	return r;
}

static int lvm_abort(ProviderMember *m)
{
	LvmMember *p = m->priv;
	char vg[128], name[128];
	int r;

	if (p) {
		if (p->suspended && dm_suspend(p->dm_uuid, false) == 0)
			p->suspended = false;
		log_run(m, &p->run, "the snapshots");
	}
	/* Nothing can exist before commit ran. */
	r = p && p->made && split_snapshot_path(m->snapshot_path, vg, name) == 0 ? remove_snapshot(vg, name) : 0;
	member_free(m);
	return r;
}

static int lvm_delete_snapshot(const char *snapshot_path, const char *provider_data)
{
	char vg[128], name[128];
	int r;

	(void)provider_data;
	r = split_snapshot_path(snapshot_path, vg, name);
	return r < 0 ? r : remove_snapshot(vg, name);
}

static int lvm_list_snapshots(const char *store_path, provider_found_fn found, void *userdata)
{
	char vg[128];
	char *args[] = { vg, NULL };
	LvmLv *all = NULL;
	size_t n = 0;
	int r;

	/* The store is /dev/VG. */
	if (!store_path || strncmp(store_path, "/dev/", 5) != 0 || strlen(store_path + 5) >= sizeof(vg) ||
	    strchr(store_path + 5, '/'))
		return VSS_E_PROVIDER_VETO;
	snprintf(vg, sizeof(vg), "%s", store_path + 5);
	if (!lvm_name_valid(vg))
		return VSS_E_PROVIDER_VETO;
	r = lvs(args, &all, &n, NULL);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r >= 0; i++) {
		ProviderSnapshot ps = { .name = all[i].lv_name };

		if (!lvm_tags_ids(all[i].tags, &ps.snapshot_id, &ps.set_id))
			continue;
		/* Being merged into its origin by a revert (deferred, or
		 * still running): consumed, and not to be removed. */
		if (all[i].lv_attr[0] == 'S' && !lvm_attr_invalid(all[i].lv_attr))
			continue;
		/* A classic snapshot that overflowed is lost: not reported, so
		 * that its row goes (its origin lives on). */
		if (lvm_attr_invalid(all[i].lv_attr)) {
			log_warning("lvm: snapshot %s/%s overflowed its copy-on-write space and is invalid: lost",
				    vg, all[i].lv_name);
			continue;
		}
		r = found(&ps, userdata);
	}
	lvm_lvs_free(all, n);
	return r;
}

/* Every LV of vss's on the system, by its tags, for reconcile. */
static int lvm_list_all_snapshots(provider_found_fn found, void *userdata)
{
	LvmLv *all = NULL;
	size_t n = 0;
	int r;

	r = lvs(NULL, &all, &n, NULL);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r >= 0; i++) {
		_cleanup_free_ char *path = NULL;
		ProviderSnapshot ps = { .name = all[i].lv_name };

		if (!lvm_tags_ids(all[i].tags, &ps.snapshot_id, &ps.set_id))
			continue;
		/* Being merged into its origin by a revert (deferred, or
		 * still running): consumed, and not to be removed. */
		if (all[i].lv_attr[0] == 'S' && !lvm_attr_invalid(all[i].lv_attr))
			continue;
		/* A classic snapshot that overflowed is lost: not reported, so
		 * that its row goes (its origin lives on). */
		if (lvm_attr_invalid(all[i].lv_attr)) {
			log_warning("lvm: snapshot %s/%s overflowed its copy-on-write space and is invalid: lost",
				    all[i].vg_name, all[i].lv_name);
			continue;
		}
		if (asprintf(&path, "/dev/%s/%s", all[i].vg_name, all[i].lv_name) < 0) {
			r = -ENOMEM;
			break;
		}
		ps.path = path;
		r = found(&ps, userdata);
	}
	lvm_lvs_free(all, n);
	return r;
}

/* The snapshot LV by its recorded path, checked to be vss's; activated
 * (thin snapshots are made inactive) when asked. */
static int snapshot_device(const char *snapshot_path, bool activate, dev_t *ret)
{
	char vg[128], name[128], lvname[260];
	char *args[] = { lvname, NULL };
	char *act[] = { (char *)"lvchange", (char *)"-ay", (char *)"-K", lvname, NULL };
	LvmLv *all = NULL;
	size_t n = 0;
	vss_id sid, setid;
	int r;

	r = split_snapshot_path(snapshot_path, vg, name);
	if (r < 0)
		return r;
	snprintf(lvname, sizeof(lvname), "%s/%s", vg, name);
	for (int pass = 0;; pass++) {
		const LvmLv *lv;

		r = lvs(args, &all, &n, NULL);
		if (r < 0)
			return r;
		lv = find_by_name(all, n, vg, name);
		if (!lv || !lvm_tags_ids(lv->tags, &sid, &setid)) {
			lvm_lvs_free(all, n);
			return lv ? VSS_E_PROVIDER_VETO : -ENOENT;
		}
		if (lvm_attr_invalid(lv->lv_attr)) {
			lvm_lvs_free(all, n);
			return -ENOENT; /* lost */
		}
		if (lv->kernel_major >= 0) {
			*ret = makedev((unsigned)lv->kernel_major, (unsigned)lv->kernel_minor);
			lvm_lvs_free(all, n);
			return 0;
		}
		lvm_lvs_free(all, n);
		if (!activate || pass > 0)
			return -ENXIO;
		LvmRun run;

		r = lvm_run(act, NULL, LVM_TIMEOUT_USEC, &run);
		if (r < 0)
			return r;
		if (run.status != 0) {
			log_warning("lvm: cannot activate %s: %s", snapshot_path, last_error(&run, (char[256]){ 0 }, 256));
			lvm_run_clear(&run);
			return -EIO;
		}
		lvm_run_clear(&run);
	}
}

/*
 * Mounted read-only without journal replay (ext4 noload, XFS norecovery)
 * and, for XFS, nouuid (the snapshot has its origin's UUID). A snapshot made
 * while its filesystem was frozen is clean, so there is nothing to replay;
 * one of an LV nothing mounted shows what was on disk. Either way nothing is
 * written to the snapshot, so one exposure does not change what the next
 * one shows.
 */
static int lvm_expose(const char *snapshot_path, const char *provider_data, int dir_fd)
{
	_cleanup_close_ int dev_fd = -1;
	_cleanup_free_ char *fstype = NULL;
	char devpath[64];
	struct stat st;
	dev_t dev;
	int r;

	(void)provider_data;
	r = snapshot_device(snapshot_path, true, &dev);
	if (r < 0)
		return r;
	/* The kernel's node of that device, checked to be it. */
	snprintf(devpath, sizeof(devpath), "/dev/dm-%u", minor(dev));
	dev_fd = open(devpath, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (dev_fd < 0 || fstat(dev_fd, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != dev)
		return -ENXIO;
	fstype = fs_probe_type(dev_fd);
	if (!fstype || !fs_supported(fstype))
		return VSS_E_PROVIDER_VETO;
	return mount_readonly_at(fstype, devpath, true, dir_fd);
}

static int lvm_is_exposed_at(const char *snapshot_path, const char *provider_data, int dir_fd)
{
	struct stat st;
	dev_t dev;
	uint64_t id;
	bool root;

	(void)provider_data;
	return fstat(dir_fd, &st) == 0 && fd_mount_id(dir_fd, &id, &root) == 0 && root &&
	       snapshot_device(snapshot_path, false, &dev) == 0 && st.st_dev == dev;
}

/* Used: the snapshots' data (data_percent of their size: a classic
 * snapshot's copy-on-write area filled, a thin snapshot's mapped blocks,
 * shared with its origin or not); allocated: a classic snapshot's whole
 * area, a thin one's mapped blocks. */
static int lvm_space(char *const *snapshot_paths, size_t n, const char *provider_data, int64_t *ret_used,
                     int64_t *ret_allocated)
{
	char vg[128], name[128], first_vg[128] = "";
	char *args[] = { first_vg, NULL };
	LvmLv *all = NULL;
	size_t nl = 0;
	double used = 0, allocated = 0;
	int r;

	(void)provider_data;
	*ret_used = *ret_allocated = 0;
	if (n == 0)
		return 0;
	r = split_snapshot_path(snapshot_paths[0], first_vg, name);
	if (r < 0)
		return r;
	r = lvs(args, &all, &nl, NULL);
	if (r == -ENOENT) {
		*ret_used = *ret_allocated = -1;
		return 0;
	}
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		const LvmLv *lv;

		if (split_snapshot_path(snapshot_paths[i], vg, name) < 0 || !(lv = find_by_name(all, nl, vg, name)) ||
		    lvm_attr_invalid(lv->lv_attr))
			continue;
		if (lv->data_percent >= 0)
			used += lv->data_percent / 100.0 * (double)lv->lv_size;
		allocated += streq(lv->segtype, "thin") ? lv->data_percent / 100.0 * (double)lv->lv_size
							 : (double)lv->lv_size;
	}
	lvm_lvs_free(all, nl);
	*ret_used = (int64_t)used;
	*ret_allocated = (int64_t)allocated;
	return 0;
}

/*
 * Revert: `lvconvert --merge` of the snapshot into its origin, measured on
 * Debian 12 (kernel 6.1, lvm2 2.03.16) by tests/lvm/test_lvm_revert.py and
 * docs/PROVIDERS.md:
 *   classic: with the origin closed the merge starts at once and the origin
 *   reads as the snapshot from then on; lvconvert polls it (-i: every
 *   second) and removes the snapshot at its end. With the origin open it is
 *   deferred to the origin's next activation or `lvchange --refresh`; lvs
 *   shows the origin 'O' and the snapshot hidden, 'S', merging. Other
 *   snapshots of the origin stay valid: the merge's writes to the origin are
 *   copied into their copy-on-write areas first. An invalid snapshot is
 *   refused ("Unable to merge invalidated snapshot").
 *   thin: done at once with the origin closed: the origin LV keeps its name
 *   and uuid and gets the snapshot's thin device (thin_id), without the
 *   snapshot's tags or skip-activation flag; the snapshot LV goes. Other
 *   thin snapshots stay, but lvm forgets their origin (they are thin LVs of
 *   their own from then on). Deferred as classic when the origin or the
 *   snapshot is open.
 * So lvm's own state says where a revert is: the snapshot LV still there
 * and not merging (not started), merging (started or deferred), or gone
 * (classic) / the origin on the snapshot's thin id (thin): done.
 */

typedef enum MergeState {
	MERGE_NOT_STARTED,
	MERGE_RUNNING,
	MERGE_DONE,
} MergeState;

/* What a revert acts on, from its plan. */
typedef struct LvmRevert {
	char vg[128], lv[128], snapshot[128];
	char origin_uuid[39], snapshot_uuid[39];
	bool thin;
	int snapshot_thin_id;
} LvmRevert;

/* How long a revert waits for a device a lazy unmount left open to close. */
#define REVERT_CLOSE_WAIT_USEC (5 * USEC_PER_SEC)
/* A merge making no progress for this long has stalled. */
#define REVERT_MERGE_STALL_USEC (120 * USEC_PER_SEC)

/* lvs -a shows a hidden LV (a merging snapshot) as "[name]". */
static const LvmLv *find_any_by_name(const LvmLv *lvs, size_t n, const char *vg, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < n; i++) {
		const char *l = lvs[i].lv_name;

		if (!streq(lvs[i].vg_name, vg))
			continue;
		if (streq(l, name) || (l[0] == '[' && strncmp(l + 1, name, len) == 0 && streq(l + 1 + len, "]")))
			return &lvs[i];
	}
	return NULL;
}

static bool attr_merging(const LvmLv *lv)
{
	/* 'S': a merging snapshot; 'O': an origin with one. */
	return lv->lv_attr[0] == 'S' || lv->lv_attr[0] == 'O';
}

/* Every LV of a VG, hidden ones too. */
static int lvs_vg(const char *vg, LvmLv **ret, size_t *ret_n)
{
	char *args[] = { (char *)"-a", (char *)vg, NULL };

	return lvs(args, ret, ret_n, NULL);
}

/* How many openers a device-mapper device has (a mount is one); 0 when it is
 * not there. */
static int dm_open_count(const char *uuid)
{
	struct dm_ioctl io = {
		.version = { DM_VERSION_MAJOR, 0, 0 },
		.data_size = sizeof(struct dm_ioctl),
		.data_start = sizeof(struct dm_ioctl),
	};
	_cleanup_close_ int fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	snprintf(io.uuid, sizeof(io.uuid), "%s", uuid);
	if (ioctl(fd, DM_DEV_STATUS, &io) < 0)
		return errno == ENXIO ? 0 : -errno;
	return io.open_count;
}

static int lvm_simple(char *const *args, char *err, size_t err_size)
{
	LvmRun run;
	int r = lvm_run(args, NULL, LVM_TIMEOUT_USEC, &run);

	if (r < 0)
		return r;
	r = run.status == 0 && !run.timed_out ? 0 : -EIO;
	if (r < 0)
		last_error(&run, err, err_size);
	else if (run.err && *run.err)
		log_debug("lvm %s %s: %s", args[0], args[1] ?: "", run.err);
	lvm_run_clear(&run);
	return r;
}

static int plan_read(const char *plan, LvmRevert *p)
{
	static const struct {
		const char *key;
		size_t off, size;
	} keys[] = {
		{ "lvm.vg", offsetof(LvmRevert, vg), sizeof(((LvmRevert *)0)->vg) },
		{ "lvm.lv", offsetof(LvmRevert, lv), sizeof(((LvmRevert *)0)->lv) },
		{ "lvm.snapshot", offsetof(LvmRevert, snapshot), sizeof(((LvmRevert *)0)->snapshot) },
		{ "lvm.origin_uuid", offsetof(LvmRevert, origin_uuid), sizeof(((LvmRevert *)0)->origin_uuid) },
		{ "lvm.snapshot_uuid", offsetof(LvmRevert, snapshot_uuid), sizeof(((LvmRevert *)0)->snapshot_uuid) },
	};
	_cleanup_free_ char *kind = NULL, *id = NULL;
	uint64_t v;
	int r;

	*p = (LvmRevert){ .snapshot_thin_id = -1 };
	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		_cleanup_free_ char *value = NULL;

		r = plan_get(plan, keys[i].key, &value);
		if (r < 0)
			return r == -ENOENT ? -EINVAL : r;
		if (strlen(value) >= keys[i].size)
			return -EINVAL;
		memcpy((char *)p + keys[i].off, value, strlen(value) + 1);
	}
	r = plan_get(plan, "lvm.kind", &kind);
	if (r < 0)
		return r == -ENOENT ? -EINVAL : r;
	p->thin = streq(kind, "thin");
	if (p->thin) {
		r = plan_get(plan, "lvm.snapshot_thin_id", &id);
		if (r < 0 || parse_u64(id, &v) < 0 || v > INT32_MAX)
			return -EINVAL;
		p->snapshot_thin_id = (int)v;
	}
	return lvm_name_valid(p->vg) && lvm_name_valid(p->lv) && lvm_name_valid(p->snapshot) ? 0 : -EINVAL;
}

/* Where the merge is, from lvm's report; the origin's device-mapper uuid,
 * and the merging snapshot's data_percent (-1 when none). -ENOENT when the
 * snapshot is gone or invalid before its merge began. */
static int merge_state(const LvmRevert *p, MergeState *ret, char origin_dm[DM_UUID_LEN], double *ret_percent,
                       ProviderRevert *rv)
{
	LvmLv *all = NULL;
	const LvmLv *origin, *snap;
	size_t n = 0;
	int r;

	*ret_percent = -1;
	r = lvs_vg(p->vg, &all, &n);
	if (r < 0) {
		(void)revert_fail(rv, 0, "lvm cannot report volume group %s", p->vg);
		return r == -ENOENT ? -EIO : r;
	}
	origin = find_any_by_name(all, n, p->vg, p->lv);
	snap = find_any_by_name(all, n, p->vg, p->snapshot);
	if (snap && !streq(snap->lv_uuid, p->snapshot_uuid))
		snap = NULL;
	if (!origin || !streq(origin->lv_uuid, p->origin_uuid) || lv_dm_uuid(origin, NULL, origin_dm, DM_UUID_LEN) < 0) {
		(void)revert_fail(rv, 0, "the logical volume %s/%s is gone", p->vg, p->lv);
		r = -EIO;
	} else if (p->thin && origin->thin_id == p->snapshot_thin_id)
		*ret = MERGE_DONE;
	else if (snap && attr_merging(snap)) {
		*ret = MERGE_RUNNING;
		*ret_percent = snap->data_percent;
	} else if (snap && lvm_attr_invalid(snap->lv_attr)) {
		(void)revert_fail(rv, 0, "the snapshot overflowed its copy-on-write space: it is invalid, lvm cannot merge it");
		r = -ENOENT;
	} else if (snap)
		*ret = MERGE_NOT_STARTED;
	else if (!p->thin && !attr_merging(origin))
		/* A classic merge's end removes the snapshot. */
		*ret = MERGE_DONE;
	else {
		(void)revert_fail(rv, 0, "the snapshot %s/%s is gone", p->vg, p->snapshot);
		r = -ENOENT;
	}
	lvm_lvs_free(all, n);
	return r;
}

static void wait_closed(const char *dm_uuid, usec_t timeout)
{
	usec_t until = now_usec(CLOCK_MONOTONIC) + timeout;

	while (dm_open_count(dm_uuid) > 0 && now_usec(CLOCK_MONOTONIC) < until)
		(void)usleep(100 * 1000);
}

static int lvm_revert_plan(ProviderRevert *r)
{
	char vg[128], name[128], sel_origin[260], who[300] = "", origin_dm[DM_UUID_LEN], snap_dm[DM_UUID_LEN];
	_cleanup_close_ int root = -1;
	LvmLv *all = NULL;
	const LvmLv *snap, *origin;
	size_t n = 0, others = 0;
	vss_id sid, setid, want;
	struct stat st;
	uint64_t mnt_id;
	bool is_root;
	int k;

	k = split_snapshot_path(r->snapshot_path, vg, name);
	if (k < 0)
		return k;
	k = lvs_vg(vg, &all, &n);
	if (k < 0) {
		(void)revert_fail(r, 0, "lvm cannot report volume group %s", vg);
		return k;
	}
	snap = find_any_by_name(all, n, vg, name);
	if (!snap || strncmp(name, "vss-", 4) != 0 || VSS_FAILED(vss_id_parse(name + 4, &want)) ||
	    !lvm_tags_ids(snap->tags, &sid, &setid) || !vss_id_equal(&sid, &want)) {
		(void)revert_fail(r, 0, "%s is not there, or not vss's snapshot", r->snapshot_path);
		k = -ENOENT;
		goto out;
	}
	if (lvm_attr_invalid(snap->lv_attr)) {
		(void)revert_fail(r, 0,
			 "the snapshot overflowed its copy-on-write space: it is invalid (lost), lvm cannot merge it");
		k = -ENOENT;
		goto out;
	}
	if (attr_merging(snap)) {
		(void)revert_fail(r, 0, "lvm is merging this snapshot already");
		k = -EBUSY;
		goto out;
	}
	if (!*snap->origin) {
		(void)revert_fail(r, 0,
			 "lvm knows no origin of this thin snapshot any more (its volume was reverted to another "
			 "snapshot since): it cannot be merged");
		k = -EOPNOTSUPP;
		goto out;
	}
	snprintf(sel_origin, sizeof(sel_origin), "%s/%s", vg, snap->origin);
	if (r->provider_data && !streq(r->provider_data, sel_origin)) {
		(void)revert_fail(r, 0, "the snapshot is of %s, not of %s", sel_origin, r->provider_data);
		k = -EOPNOTSUPP;
		goto out;
	}
	origin = find_any_by_name(all, n, vg, snap->origin);
	if (!origin || origin->kernel_major < 0 || lv_dm_uuid(origin, NULL, origin_dm, sizeof(origin_dm)) < 0) {
		(void)revert_fail(r, 0, "%s is not active", sel_origin);
		k = -EOPNOTSUPP;
		goto out;
	}
	/* The volume: the root of a mount of the origin's filesystem. */
	root = open_no_symlinks(AT_FDCWD, r->volume, O_RDONLY | O_DIRECTORY, 0);
	if (root < 0 || fstat(root, &st) < 0 || fd_mount_id(root, &mnt_id, &is_root) < 0 || !is_root ||
	    st.st_dev != makedev((unsigned)origin->kernel_major, (unsigned)origin->kernel_minor)) {
		(void)revert_fail(r, 0, "%s is not mounted from %s", r->volume, sel_origin);
		k = -EOPNOTSUPP;
		goto out;
	}
	/* Not to count as a user of it. */
	root = safe_close(root);
	/* An exposed snapshot is open: lvm would defer the merge. */
	if (lv_dm_uuid(snap, NULL, snap_dm, sizeof(snap_dm)) >= 0 && dm_open_count(snap_dm) > 0) {
		(void)revert_fail(r, 0, "the snapshot is in use (exposed): unexpose it first");
		k = -EBUSY;
		goto out;
	}
	if (!r->force_unmount) {
		if (mount_users(mnt_id, r->volume, who, sizeof(who)) > 0) {
			(void)revert_fail(r, 0, "%s is in use: %s", r->volume, who);
			k = -EBUSY;
			goto out;
		}
		/* Its mount is one opener; any other holds the device itself. */
		if (dm_open_count(origin_dm) > 1) {
			(void)revert_fail(r, 0, "the device of %s is open elsewhere", sel_origin);
			k = -EBUSY;
			goto out;
		}
	}
	/* A classic merge rewrites the origin's chunks the snapshot holds;
	 * each other classic snapshot of the origin takes a copy of those it
	 * has not copied yet, and would be lost (invalid) if it ran out. */
	for (size_t i = 0; i < n; i++) {
		const LvmLv *o = &all[i];

		if (o == snap || !streq(o->origin, snap->origin) || lvm_attr_invalid(o->lv_attr))
			continue;
		others++;
		if (streq(snap->segtype, "thin") || streq(o->segtype, "thin") || o->data_percent < 0 ||
		    snap->data_percent < 0)
			continue;
		if ((100.0 - o->data_percent) * (double)o->lv_size < snap->data_percent * (double)snap->lv_size) {
			(void)revert_fail(r, 0,
				 "the merge could overflow snapshot %s/%s of the same volume: it has too little "
				 "copy-on-write space left", vg, o->lv_name);
			k = -ENOSPC;
			goto out;
		}
	}
	k = mount_plan_record(r->volume, r->plan, sizeof(r->plan));
	if (k >= 0)
		k = plan_set(r->plan, sizeof(r->plan), "lvm.vg", vg);
	if (k >= 0)
		k = plan_set(r->plan, sizeof(r->plan), "lvm.lv", snap->origin);
	if (k >= 0)
		k = plan_set(r->plan, sizeof(r->plan), "lvm.snapshot", name);
	if (k >= 0)
		k = plan_set(r->plan, sizeof(r->plan), "lvm.origin_uuid", origin->lv_uuid);
	if (k >= 0)
		k = plan_set(r->plan, sizeof(r->plan), "lvm.snapshot_uuid", snap->lv_uuid);
	if (k >= 0)
		k = plan_set(r->plan, sizeof(r->plan), "lvm.kind", streq(snap->segtype, "thin") ? "thin" : "classic");
	if (k >= 0 && streq(snap->segtype, "thin")) {
		char id[16];

		snprintf(id, sizeof(id), "%d", snap->thin_id);
		k = snap->thin_id < 0 ? -EIO : plan_set(r->plan, sizeof(r->plan), "lvm.snapshot_thin_id", id);
	}
	if (k >= 0 && others > 0)
		(void)revert_fail(r, 0,
			 streq(snap->segtype, "thin")
				 ? "%zu other snapshot(s) of %s stay; lvm keeps them as thin volumes of their own, "
				   "no longer snapshots of it"
				 : "%zu other snapshot(s) of %s stay, valid",
			 others, sel_origin);
out:
	lvm_lvs_free(all, n);
	return k;
}

/*
 * Steps: 1 unmount, 2 merge (thin: at once; classic: lvconvert waits for
 * the merge's end), 3 check the merge ended, finishing one that did not (a
 * crash killed lvconvert's poll, or lvm deferred it), 4 mount again. lvm's
 * state says which are done.
 */
static int lvm_revert(ProviderRevert *r)
{
	char origin_dm[DM_UUID_LEN], lvname[260], snapname[260], err[256] = "";
	char *merge_classic[] = { (char *)"lvconvert", (char *)"--merge", (char *)"-i", (char *)"1", snapname, NULL };
	char *merge_thin[] = { (char *)"lvconvert", (char *)"--merge", snapname, NULL };
	char *refresh[] = { (char *)"lvchange", (char *)"--refresh", lvname, NULL };
	MergeState state;
	LvmRevert p;
	double percent, last_percent = -1;
	usec_t progress_at;
	bool merged_here = false;
	int k;

	k = plan_read(r->plan, &p);
	if (k < 0) {
		(void)revert_fail(r, 0, "the revert's plan is not one of lvm's");
		return k;
	}
	snprintf(lvname, sizeof(lvname), "%s/%s", p.vg, p.lv);
	snprintf(snapname, sizeof(snapname), "%s/%s", p.vg, p.snapshot);
	k = merge_state(&p, &state, origin_dm, &percent, r);
	if (k < 0)
		return k;

	if (state == MERGE_NOT_STARTED) {
		k = revert_unmount_step(r, false);
		if (k == -EBUSY) {
			char who[300];
			_cleanup_free_ char *id = NULL;
			uint64_t mnt_id;

			if (plan_get(r->plan, "mount.id", &id) >= 0 && parse_u64(id, &mnt_id) >= 0 &&
			    mount_users(mnt_id, r->volume, who, sizeof(who)) > 0)
				(void)revert_fail(r, 0, "%s is in use: %s", r->volume, who);
		}
		if (k < 0)
			return k;
		k = fault_revert_step(2);
		if (k >= 0) {
			/* Detached lazily: its last file closing closes the LV. */
			if (r->force_unmount)
				wait_closed(origin_dm, REVERT_CLOSE_WAIT_USEC);
			else if (dm_open_count(origin_dm) > 0) {
				/* Opened since the plan, not through its mount: lvm
				 * would defer the merge. */
				(void)revert_fail(r, 0, "the device of %s is open elsewhere", lvname);
				k = -EBUSY;
			}
		}
		if (k >= 0)
			k = lvm_simple(p.thin ? merge_thin : merge_classic, err, sizeof(err));
		if (k >= 0)
			k = merge_state(&p, &state, origin_dm, &percent, r);
		if (k < 0 || state == MERGE_NOT_STARTED) {
			/* Nothing merged: the volume as it was. */
			if (mount_plan_mount(r->plan, NULL, NULL, NULL) < 0)
				log_warning("lvm: revert of %s: cannot mount it again", r->volume);
			if (!*r->message)
				(void)revert_fail(r, 0, "lvm could not merge %s: %s", snapname,
					 *err ? err : strerror(k < 0 ? -k : EIO));
			return k < 0 ? k : -EIO;
		}
		merged_here = true;
	}

	/* After a merge this call made, or one found under way. */
	if (merged_here || state == MERGE_RUNNING) {
		k = fault_revert_step(3);
		if (k < 0)
			return k;
		progress_at = now_usec(CLOCK_MONOTONIC);
		while (state == MERGE_RUNNING) {
			/* Deferred while the origin is open (a lazily detached
			 * filesystem with files open): lvm merges at its next
			 * activation. Waited for once already in step 2. */
			if (!(merged_here && r->force_unmount))
				wait_closed(origin_dm, REVERT_CLOSE_WAIT_USEC);
			merged_here = false;
			if (dm_open_count(origin_dm) > 0) {
				r->snapshot_consumed = true;
				(void)revert_fail(r, 0,
					 "files are still open on the detached filesystem of %s: lvm merges %s when "
					 "%s is next activated; it is not mounted again until then",
					 r->volume, snapname, lvname);
				return 0;
			}
			/* Starts a deferred merge, ends a finished one. */
			k = lvm_simple(refresh, err, sizeof(err));
			if (k < 0)
				log_debug("lvm: revert of %s: lvchange --refresh: %s", r->volume, err);
			k = merge_state(&p, &state, origin_dm, &percent, r);
			if (k < 0)
				return k;
			if (state != MERGE_RUNNING)
				break;
			if (percent != last_percent) {
				last_percent = percent;
				progress_at = now_usec(CLOCK_MONOTONIC);
			} else if (now_usec(CLOCK_MONOTONIC) - progress_at > REVERT_MERGE_STALL_USEC) {
				(void)revert_fail(r, 0, "the merge of %s makes no progress", snapname);
				return -ETIMEDOUT;
			}
			(void)usleep(USEC_PER_SEC);
		}
	}

	k = fault_revert_step(4);
	if (k < 0)
		return k;
	r->snapshot_consumed = true;
	k = mount_plan_mount(r->plan, NULL, NULL, NULL);
	if (k < 0) {
		(void)revert_fail(r, 0, "%s is reverted but cannot be mounted again: %s", lvname,
			 strerror(-k));
		return k;
	}
	return 0;
}

const provider_ops lvm_provider = {
	.version = PROVIDER_OPS_VERSION,
	.name = "lvm",
	.version_string = "1.0",
	/* {3c5b6a0e-8f2d-4b7e-9a41-6d2e5f7c8b90} */
	.id = { { 0x3c, 0x5b, 0x6a, 0x0e, 0x8f, 0x2d, 0x4b, 0x7e, 0x9a, 0x41, 0x6d, 0x2e, 0x5f, 0x7c, 0x8b, 0x90 } },
	/* {b2e4d7a1-5c3f-4e8b-8d6a-1f9c2b7e4a35} */
	.version_id = { { 0xb2, 0xe4, 0xd7, 0xa1, 0x5c, 0x3f, 0x4e, 0x8b, 0x8d, 0x6a, 0x1f, 0x9c, 0x2b, 0x7e, 0x4a, 0x35 } },
	.class_id = { { 0x3c, 0x5b, 0x6a, 0x0e, 0x8f, 0x2d, 0x4b, 0x7e, 0x9a, 0x41, 0x6d, 0x2e, 0x5f, 0x7c, 0x8b, 0x90 } },
	.type = VSS_PROV_SOFTWARE,
	.flags = PROVIDER_HOLDS_WRITES,
	.is_volume_supported = lvm_is_volume_supported,
	.locate = lvm_locate,
	.begin_prepare = lvm_begin_prepare,
	.end_prepare = lvm_end_prepare,
	.pre_commit = lvm_pre_commit,
	.commit_group = lvm_commit_group,
	.post_commit = lvm_post_commit,
	.post_final_commit = lvm_post_final_commit,
	.abort = lvm_abort,
	.delete_snapshot = lvm_delete_snapshot,
	.list_snapshots = lvm_list_snapshots,
	.list_all_snapshots = lvm_list_all_snapshots,
	.expose = lvm_expose,
	.is_exposed_at = lvm_is_exposed_at,
	.space = lvm_space,
	.revert_plan = lvm_revert_plan,
	.revert = lvm_revert,
};
