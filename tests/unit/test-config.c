/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vss/backup.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "providers/command.h"
#include "vssd/config.h"
#include "tests.h"

static char tmpdir[] = "/tmp/vss-test-config-XXXXXX";
static char conf_path[sizeof(tmpdir) + 32];

static void cleanup(void)
{
	unlink(conf_path);
	rmdir(tmpdir);
}

static void write_conf(const char *text)
{
	FILE *f = fopen(conf_path, "we");

	ASSERT_NOT_NULL(f);
	ASSERT_EQ_INT(strlen(text), fwrite(text, 1, strlen(text), f));
	ASSERT_EQ_INT(0, fclose(f));
}

/* Load text over fresh defaults; the caller owns *c afterwards. */
static int load(Config *c, const char *text)
{
	config_init(c);
	write_conf(text);
	return config_load(c, conf_path, true);
}

static void check_defaults(const Config *c)
{
	ASSERT_STREQ("backup", c->backup_group);
	ASSERT_EQ_UINT(10 * USEC_PER_SEC, c->flush_timeout);
	ASSERT_EQ_UINT(10 * USEC_PER_SEC, c->hold_timeout);
	ASSERT_EQ_UINT(64, c->max_volumes_per_set);
	ASSERT_EQ_UINT(VSS_MAX_VOLUMES_PER_SET, c->max_volumes_per_set);
	ASSERT_EQ_UINT(512, c->max_snapshots_per_volume);
	ASSERT_EQ_UINT(30 * USEC_PER_MSEC, c->hold_settle);
	ASSERT_EQ_UINT(1, c->max_image_nesting);
	ASSERT_STREQ("/var/lib/dpkg/lock-frontend", c->dpkg_lock);
	ASSERT_EQ_UINT(10 * USEC_PER_SEC, c->transaction_freeze_timeout);
	ASSERT_EQ_UINT(60 * USEC_PER_SEC, c->transaction_thaw_timeout);
	ASSERT_EQ_UINT(256 << 20, c->host_reserve.bytes);
	ASSERT_EQ_UINT(2, c->host_reserve.percent);
	ASSERT_EQ_UINT(0, c->n_host_reserves);
	ASSERT_EQ_UINT(1 * USEC_PER_SEC, c->host_reserve_interval);
	ASSERT_EQ_UINT(1024, c->max_connections);
	ASSERT_EQ_UINT(16, c->max_connections_per_user);
	ASSERT_EQ_UINT(1024, c->max_objects_per_connection);
	ASSERT_EQ_UINT(4 << 20, c->max_backup_group_message);
	ASSERT_EQ_UINT(600 * USEC_PER_SEC, c->snapshot_set_timeout);
	ASSERT_EQ_UINT(60 * USEC_PER_SEC, c->max_writer_freeze_timeout);
}

static void test_defaults(void)
{
	Config c;

	config_init(&c);
	check_defaults(&c);
	/* Unresolved until a load looks the group up. */
	ASSERT_EQ_UINT((gid_t)-1, c.backup_gid);
	config_clear(&c);
	ASSERT_NULL(c.backup_group);
	/* Clearing twice is harmless: vssd clears on every exit path. */
	config_clear(&c);
}

static void test_missing_file(void)
{
	char missing[sizeof(tmpdir) + 32];
	Config c;

	snprintf(missing, sizeof(missing), "%s/no-such.conf", tmpdir);

	config_init(&c);
	ASSERT_OK(config_load(&c, missing, false));
	check_defaults(&c);
	config_clear(&c);

	config_init(&c);
	ASSERT_ERRNO(-ENOENT, config_load(&c, missing, true));
	config_clear(&c);
}

static void test_full_file(void)
{
	const struct group *gr = getgrgid(getgid());
	char text[512];
	Config c;

	/* A group that exists on any machine running the tests: our own. */
	ASSERT_NOT_NULL(gr);
	snprintf(text, sizeof(text),
		 "# vssd.conf\n"
		 "; another comment\n"
		 "\n"
		 "[vssd]\n"
		 "  BackupGroup = %s  \n"
		 "\tFlushTimeoutSec=3\n"
		 "HoldTimeoutMSec =   250\t\n"
		 "MaxVolumesPerSet = 8\n"
		 "MaxSnapshotsPerVolume = 100000\n"
		 "   # indented comment\n",
		 gr->gr_name);
	ASSERT_OK(load(&c, text));
	ASSERT_STREQ(gr->gr_name, c.backup_group);
	ASSERT_EQ_UINT(gr->gr_gid, c.backup_gid);
	ASSERT_EQ_UINT(3 * USEC_PER_SEC, c.flush_timeout);
	ASSERT_EQ_UINT(250 * USEC_PER_MSEC, c.hold_timeout);
	ASSERT_EQ_UINT(8, c.max_volumes_per_set);
	ASSERT_EQ_UINT(100000, c.max_snapshots_per_volume);
	config_clear(&c);

	/* The other spelling of each timeout. */
	ASSERT_OK(load(&c, "FlushTimeoutMSec = 1\nHoldTimeoutSec = 3600\n"));
	ASSERT_EQ_UINT(1 * USEC_PER_MSEC, c.flush_timeout);
	ASSERT_EQ_UINT(3600 * USEC_PER_SEC, c.hold_timeout);
	/* Keys not named keep their defaults. */
	ASSERT_STREQ("backup", c.backup_group);
	ASSERT_EQ_UINT(64, c.max_volumes_per_set);
	ASSERT_EQ_UINT(512, c.max_snapshots_per_volume);
	config_clear(&c);

	/* The transaction keys: a lock of our own, none, and both timeouts. */
	ASSERT_OK(load(&c, "DpkgLock = /run/lock/mine\nTransactionFreezeTimeoutMSec = 300\n"
			   "TransactionThawTimeoutSec = 2\n"));
	ASSERT_STREQ("/run/lock/mine", c.dpkg_lock);
	ASSERT_EQ_UINT(300 * USEC_PER_MSEC, c.transaction_freeze_timeout);
	ASSERT_EQ_UINT(2 * USEC_PER_SEC, c.transaction_thaw_timeout);
	config_clear(&c);
	/* The limits on peers and on the time a set may take. */
	ASSERT_OK(load(&c, "MaxConnections = 9\nMaxConnectionsPerUser = 2\nSnapshotSetTimeoutMSec = 1500\n"
			   "MaxWriterFreezeTimeoutSec = 5\nMaxBackupGroupMessageSize = 16MiB\n"));
	ASSERT_EQ_UINT(9, c.max_connections);
	ASSERT_EQ_UINT(2, c.max_connections_per_user);
	ASSERT_EQ_UINT(1500 * USEC_PER_MSEC, c.snapshot_set_timeout);
	ASSERT_EQ_UINT(5 * USEC_PER_SEC, c.max_writer_freeze_timeout);
	ASSERT_EQ_UINT(16 << 20, c.max_backup_group_message);
	config_clear(&c);
	ASSERT_OK(load(&c, "DpkgLock =\n"));
	ASSERT_STREQ("", c.dpkg_lock);
	config_clear(&c);

	/* An empty file is all defaults. */
	ASSERT_OK(load(&c, ""));
	check_defaults(&c);
	config_clear(&c);
}

static void test_group_resolution(void)
{
	Config c;

	ASSERT_OK(load(&c, "BackupGroup = vss-no-such-group-here\n"));
	ASSERT_STREQ("vss-no-such-group-here", c.backup_group);
	/* Not an error: only root may make snapshots then. */
	ASSERT_EQ_UINT((gid_t)-1, c.backup_gid);
	config_clear(&c);

	ASSERT_OK(load(&c, "BackupGroup = root\n"));
	ASSERT_EQ_UINT(0, c.backup_gid);
	config_clear(&c);
}

static void test_bounds(void)
{
	static const struct {
		const char *line;
		bool ok;
	} cases[] = {
		{ "FlushTimeoutSec = 1\n", true },
		{ "FlushTimeoutSec = 3600\n", true },
		{ "FlushTimeoutSec = 0\n", false },
		{ "FlushTimeoutSec = 3601\n", false },
		{ "HoldTimeoutSec = 0\n", false },
		{ "HoldTimeoutSec = 3601\n", false },
		{ "FlushTimeoutMSec = 3600000\n", true },
		{ "FlushTimeoutMSec = 0\n", false },
		{ "FlushTimeoutMSec = 3600001\n", false },
		{ "HoldTimeoutMSec = 3600001\n", false },
		{ "MaxVolumesPerSet = 1\n", true },
		{ "MaxVolumesPerSet = 64\n", true },
		/* No more than the library's compile-time limit. */
		{ "MaxVolumesPerSet = 65\n", false },
		{ "MaxVolumesPerSet = 0\n", false },
		{ "MaxSnapshotsPerVolume = 1\n", true },
		{ "MaxSnapshotsPerVolume = 0\n", false },
		{ "MaxSnapshotsPerVolume = 100001\n", false },
		/* Every timeout has a maximum, refused above it. */
		{ "TransactionThawTimeoutSec = 3600\n", true },
		{ "TransactionThawTimeoutSec = 3601\n", false },
		{ "TransactionThawTimeoutMSec = 3600001\n", false },
		{ "MaxWriterFreezeTimeoutSec = 3600\n", true },
		{ "MaxWriterFreezeTimeoutSec = 3601\n", false },
		{ "MaxWriterFreezeTimeoutMSec = 1\n", true },
		{ "MaxWriterFreezeTimeoutMSec = 0\n", false },
		{ "SnapshotSetTimeoutSec = 86400\n", true },
		{ "SnapshotSetTimeoutSec = 86401\n", false },
		{ "SnapshotSetTimeoutMSec = 86400001\n", false },
		{ "MaxConnections = 65536\n", true },
		{ "MaxConnections = 0\n", false },
		{ "MaxConnectionsPerUser = 65537\n", false },
		{ "MaxObjectsPerConnection = 1\n", true },
		{ "MaxObjectsPerConnection = 0\n", false },
		{ "MaxBackupGroupMessageSize = 64K\n", true },
		{ "MaxBackupGroupMessageSize = 128M\n", true },
		{ "MaxBackupGroupMessageSize = 65535\n", false },
		{ "MaxBackupGroupMessageSize = 129M\n", false },
		{ "MaxBackupGroupMessageSize = 4 MiB\n", false },
		/* Not numbers, or not plain ones. */
		{ "FlushTimeoutSec = \n", false },
		{ "FlushTimeoutSec = -5\n", false },
		{ "FlushTimeoutSec = +5\n", false },
		{ "FlushTimeoutSec = 5s\n", false },
		{ "FlushTimeoutSec = 0x10\n", false },
		{ "FlushTimeoutSec = 1.5\n", false },
		{ "MaxVolumesPerSet = 18446744073709551617\n", false },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		Config c;
		int r = load(&c, cases[i].line);

		if (cases[i].ok != (r >= 0))
			TEST_FAIL("\"%.*s\": expected %s, got %d", (int)strlen(cases[i].line) - 1, cases[i].line,
				  cases[i].ok ? "success" : "-EINVAL", r);
		test_checks++;
		if (!cases[i].ok)
			ASSERT_ERRNO(-EINVAL, r);
		config_clear(&c);
	}
}

static void test_bad_lines(void)
{
	static const char *const bad[] = {
		"UnknownKey = 1\n",
		/* Keys are case-sensitive, like systemd's. */
		"flushtimeoutsec = 5\n",
		"FlushTimeoutSec 5\n",
		"[other]\n",
		"BackupGroup = backup\n[vssd\n",
		"MaxVolumesPerSet = -1\n",
		"MaxVolumesPerSet =  +2\n",
	};

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		Config c;

		ASSERT_ERRNO(-EINVAL, load(&c, bad[i]));
		config_clear(&c);
	}
}

/* HostReserve: a size, a percentage or both (the larger applies), and the
 * same for one filesystem by its mount point. */
static void test_host_reserve(void)
{
	static const char *const bad[] = {
		"HostReserve =\n",
		"HostReserve = lots\n",
		"HostReserve = 5% 10%\n",
		"HostReserve = 1G 2G\n",
		"HostReserve = 51%\n",
		"HostReserve = -1M\n",
		"HostReserve = 12XB\n",
		"HostReserve = /srv/images\n",
		"HostReserve = 1G /srv/images\n",
		"HostReserveCheckMSec = 99\n",
		"HostReserveCheckMSec = 60001\n",
	};
	const uint64_t GiB = 1ULL << 30;
	Config c;

	/* The default: the larger of 256 MiB and 2%. */
	config_init(&c);
	ASSERT_EQ_UINT(256 << 20, config_host_reserve(&c, "/", 10 * GiB));
	ASSERT_EQ_UINT(100 * GiB / 100 * 2, config_host_reserve(&c, "/", 100 * GiB));
	config_clear(&c);

	ASSERT_OK(load(&c, "HostReserve = 1G\nHostReserveCheckMSec = 250\n"));
	ASSERT_EQ_UINT(GiB, config_host_reserve(&c, NULL, 1000 * GiB));
	ASSERT_EQ_UINT(250 * USEC_PER_MSEC, c.host_reserve_interval);
	config_clear(&c);

	ASSERT_OK(load(&c, "HostReserve = 5%\n"));
	ASSERT_EQ_UINT(5 * GiB, config_host_reserve(&c, NULL, 100 * GiB));
	config_clear(&c);

	/* Off, and per filesystem: the last line for a mount point wins,
	 * and one without an override gets the default. */
	ASSERT_OK(load(&c, "HostReserve = 0\n"
			   "HostReserve = /srv/images 10% 64MiB\n"
			   "HostReserve = /srv/vms\t1G\n"
			   "HostReserve = /srv/images 20%\n"));
	ASSERT_EQ_UINT(0, config_host_reserve(&c, "/", 100 * GiB));
	ASSERT_EQ_UINT(0, config_host_reserve(&c, NULL, 100 * GiB));
	ASSERT_EQ_UINT(20 * GiB, config_host_reserve(&c, "/srv/images", 100 * GiB));
	ASSERT_EQ_UINT(GiB, config_host_reserve(&c, "/srv/vms", 100 * GiB));
	ASSERT_EQ_UINT(2, c.n_host_reserves);
	config_clear(&c);
	ASSERT_EQ_UINT(0, c.n_host_reserves);

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		ASSERT_ERRNO(-EINVAL, load(&c, bad[i]));
		config_clear(&c);
	}
}

/* A line longer than any buffer is still one line. */
static void test_long_line(void)
{
	char text[5000];
	Config c;

	memset(text, 'x', sizeof(text));
	text[0] = '#';
	strcpy(text + sizeof(text) - 24, "\nMaxVolumesPerSet = 3\n");
	ASSERT_ERRNO(0, load(&c, text));
	ASSERT_EQ_INT(3, c.max_volumes_per_set);
	config_clear(&c);
}

#define SAN "[Provider]\nName = san\nType = command\nId = {5a4e0c2d-8f41-4c7e-9b1a-3d2f6e7a8b90}\n"

/* A [Provider] section with Type = command makes a provider, registered
 * while the configuration is loaded, asked before the built-in ones. */
static void test_command_provider_section(void)
{
	const provider_ops *const *all;
	const provider_ops *p;
	size_t n, before;
	Config c;

	provider_registry(&before);
	ASSERT_OK(load(&c, "[vssd]\nHoldTimeoutSec = 5\n" SAN "Volumes = /srv/* \"/data/my volume\"\n"
			   "Command = /bin/true --quiet\nCommitTimeoutMSec = 4000\nCommitGroup = yes\n"
			   "[vssd]\nMaxVolumesPerSet = 3\n"));
	ASSERT_EQ_UINT(3, c.max_volumes_per_set);
	p = provider_find_by_name("san");
	ASSERT_NOT_NULL(p);
	ASSERT_EQ_UINT(PROVIDER_OPS_VERSION, p->version);
	ASSERT_NOT_NULL(p->commit_group);
	/* Listing only with a ListCommand= of its own. */
	ASSERT_NULL(p->list_all_snapshots);
	ASSERT_TRUE(provider_find_by_id(&p->id) == p);
	all = provider_registry(&n);
	ASSERT_EQ_UINT(before + 1, n);
	ASSERT_TRUE(all[0] == p);
	ASSERT_EQ_UINT(4 * USEC_PER_SEC, command_provider_commit_timeout(p));
	config_clear(&c);
	ASSERT_NULL(provider_find_by_name("san"));
	provider_registry(&n);
	ASSERT_EQ_UINT(before, n);
}

static void test_bad_provider_sections(void)
{
	static const char *const bad[] = {
		"[Provider]\nType = command\n",                         /* no Name= */
		"[Provider]\nName = x\nType = zfs\n",                   /* unknown type */
		"[Provider]\nName = nosuch\nKey = 1\n",                 /* no such provider */
		"[Provider]\nName = btrfs\nKey = 1\n",                  /* takes no keys */
		"[Provider]\nName = image\nType = command\n",           /* a name taken */
		"[Provider]\nName = x\nName = y\nType = command\n",     /* Name= twice */
		"[Provider]\nName = a/b\nType = command\n",             /* a bad name */
		SAN "Command = /bin/true\n",                            /* claims nothing */
		SAN "Volumes = /srv\n",                                 /* no commands */
		SAN "Volumes = /srv\nCommitCommand = /bin/true\n",      /* no delete */
		SAN "Volumes = /srv\nCommand = true\n",                 /* not an absolute path */
		SAN "Volumes = /srv\nCommand = /nonexistent/program\n",
		SAN "Volumes = /srv\nCommand = \"/bin/true\n",          /* an open quote */
		SAN "Volumes = /srv\nCommand = /bin/true\nFrobnicate = 1\n",
		SAN "Volumes = /srv\nCommand = /bin/true\nPrepareTimeoutSec = 0\n",
		SAN "Volumes = /srv\nCommand = /bin/true\nCommitGroup = maybe\n",
		SAN "Volumes = /srv\nCommand = /bin/true\nId = {not-a-uuid}\n",
		/* The commit runs inside the hold: its deadline must fit. */
		SAN "Volumes = /srv\nCommand = /bin/true\nCommitTimeoutSec = 30\n",
		"[vssd]\nHoldTimeoutSec = 2\n" SAN "Volumes = /srv\nCommand = /bin/true\nCommitTimeoutSec = 3\n",
		/* Two with one id. */
		SAN "Volumes = /a\nCommand = /bin/true\n[Provider]\nName = two\nType = command\n"
		    "Id = {5a4e0c2d-8f41-4c7e-9b1a-3d2f6e7a8b90}\nVolumes = /b\nCommand = /bin/true\n",
	};
	size_t before, n;

	provider_registry(&before);
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		Config c;
		int r = load(&c, bad[i]);

		if (r >= 0)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		ASSERT_TRUE(r < 0);
		config_clear(&c);
		provider_registry(&n);
		ASSERT_EQ_UINT(before, n);
	}
}

/* The ops version is checked at registration: a table made for another
 * layout is refused. */
static void test_register_checks_version(void)
{
	provider_ops ops = *provider_find_by_name("image");

	ops.name = "other";
	ops.id.bytes[0] ^= 0xff;
	ops.version = PROVIDER_OPS_VERSION - 1;
	ASSERT_ERRNO(-EPROTO, provider_register(&ops));
	ops.version = PROVIDER_OPS_VERSION;
	ops.name = "image";
	ASSERT_ERRNO(-EEXIST, provider_register(&ops));
	ops.name = "other";
	ASSERT_OK(provider_register(&ops));
	ASSERT_TRUE(provider_find_by_name("other") == &ops);
	provider_unregister(&ops);
	ASSERT_NULL(provider_find_by_name("other"));
}

static int some_revert(ProviderRevert *r)
{
	(void)r;
	return 0;
}

/* Revert comes with its plan, or not at all. */
static void test_register_revert_both_or_neither(void)
{
	provider_ops ops = *provider_find_by_name("image");

	ops.name = "other";
	ops.id.bytes[0] ^= 0xff;
	ops.revert_plan = some_revert;
	ops.revert = NULL;
	ASSERT_ERRNO(-EINVAL, provider_register(&ops));
	ops.revert_plan = NULL;
	ops.revert = some_revert;
	ASSERT_ERRNO(-EINVAL, provider_register(&ops));
	ops.revert_plan = some_revert;
	ASSERT_OK(provider_register(&ops));
	provider_unregister(&ops);
	ops.revert_plan = ops.revert = NULL;
	ASSERT_OK(provider_register(&ops));
	provider_unregister(&ops);
	ASSERT_NULL(provider_find_by_name("other"));
}

int main(void)
{
	/* Bad lines are logged; that is expected output here. */
	log_set_max_level(LOG_CRIT);

	ASSERT_NOT_NULL(mkdtemp(tmpdir));
	snprintf(conf_path, sizeof(conf_path), "%s/vssd.conf", tmpdir);
	test_on_failure = cleanup;

	RUN_TEST(test_defaults);
	RUN_TEST(test_missing_file);
	RUN_TEST(test_full_file);
	RUN_TEST(test_group_resolution);
	RUN_TEST(test_bounds);
	RUN_TEST(test_bad_lines);
	RUN_TEST(test_long_line);
	RUN_TEST(test_host_reserve);
	RUN_TEST(test_command_provider_section);
	RUN_TEST(test_bad_provider_sections);
	RUN_TEST(test_register_checks_version);
	RUN_TEST(test_register_revert_both_or_neither);

	cleanup();
	ASSERT_TRUE(access(tmpdir, F_OK) < 0);
	TEST_SUMMARY();
	return 0;
}
