/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * spawn_run(): what the program gets (stdin, working directory, no inherited
 * fds, default signals), what comes back (exit, signal, output, input), and
 * the deadline, which kills the whole process group.
 */

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "basic/spawn-util.h"
#include "tests.h"

static SpawnResult sh(const char *script, const SpawnOptions *o)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)script, NULL };
	SpawnResult r;

	ASSERT_OK(spawn_run(argv, o, &r));
	return r;
}

static void test_exit_and_output(void)
{
	SpawnResult r = sh("echo out; echo err >&2; exit 3", NULL);

	ASSERT_TRUE(WIFEXITED(r.status));
	ASSERT_EQ_INT(3, WEXITSTATUS(r.status));
	ASSERT_FALSE(spawn_succeeded(&r));
	ASSERT_STREQ("out\n", r.out);
	ASSERT_STREQ("err\n", r.err);
	spawn_result_clear(&r);

	r = sh("true", NULL);
	ASSERT_TRUE(spawn_succeeded(&r));
	ASSERT_STREQ("", r.out);
	spawn_result_clear(&r);
}

static void test_what_the_child_gets(void)
{
	/* An fd of ours without O_CLOEXEC must not reach the program. */
	int fd = open("/dev/null", O_RDONLY);
	SpawnResult r;

	ASSERT_TRUE(fd >= 0);
	ASSERT_TRUE(fd > 2);
	r = sh("pwd; ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; head -c 10 || echo eof; "
	       "grep -E '^(SigBlk|SigIgn)' /proc/self/status", NULL);
	ASSERT_TRUE(spawn_succeeded(&r));
	/* ls itself opens one more (its directory), numbered 3. Of the
	 * ignored signals only glibc's own real-time ones (32, 33) may
	 * remain: they cannot be set by anyone. */
	static const char expected[] = "/\n0 1 2 3 \nSigBlk:\t0000000000000000\nSigIgn:\t";
	ASSERT_TRUE(strncmp(r.out, expected, strlen(expected)) == 0);
	ASSERT_EQ_UINT(0, strtoull(r.out + strlen(expected), NULL, 16) & 0x7fffffffULL);
	spawn_result_clear(&r);
	close(fd);
}

static void test_input(void)
{
	SpawnResult r = sh("tr a-z A-Z", &(SpawnOptions){ .input = "vss\nset\n" });

	ASSERT_TRUE(spawn_succeeded(&r));
	ASSERT_STREQ("VSS\nSET\n", r.out);
	spawn_result_clear(&r);

	/* A program that does not read its input still ends. */
	r = sh("exit 0", &(SpawnOptions){ .input = "unread" });
	ASSERT_TRUE(spawn_succeeded(&r));
	spawn_result_clear(&r);
}

static void test_signal(void)
{
	SpawnResult r = sh("kill -TERM $$", NULL);

	ASSERT_TRUE(WIFSIGNALED(r.status));
	ASSERT_EQ_INT(SIGTERM, WTERMSIG(r.status));
	ASSERT_FALSE(r.timed_out);
	spawn_result_clear(&r);
}

static bool process_runs(pid_t pid)
{
	char path[64], buf[512], *p = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f))
		p = strrchr(buf, ')');
	fclose(f);
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static void test_deadline_kills_the_group(void)
{
	char path[] = "/tmp/vss-test-spawn-XXXXXX", script[256];
	int fd = mkstemp(path);
	SpawnResult r;
	pid_t pid = 0;
	FILE *f;

	ASSERT_TRUE(fd >= 0);
	close(fd);
	/* A grandchild that would outlive its parent, and its pid. */
	snprintf(script, sizeof(script), "sleep 60 & echo $! > %s; wait", path);
	r = sh(script, &(SpawnOptions){ .timeout = 200 * USEC_PER_MSEC });
	ASSERT_TRUE(r.timed_out);
	ASSERT_FALSE(spawn_succeeded(&r));
	ASSERT_TRUE(WIFSIGNALED(r.status));
	ASSERT_EQ_INT(SIGKILL, WTERMSIG(r.status));
	spawn_result_clear(&r);

	f = fopen(path, "re");
	ASSERT_NOT_NULL(f);
	ASSERT_EQ_INT(1, fscanf(f, "%d", &pid));
	fclose(f);
	unlink(path);
	/* Killed with its group: gone, or a zombie until init reaps it. */
	for (int i = 0; i < 100 && process_runs(pid); i++)
		usleep(10000);
	ASSERT_FALSE(process_runs(pid));
}

static void test_output_is_capped(void)
{
	SpawnResult r = sh("head -c 100000 /dev/zero | tr '\\0' x", &(SpawnOptions){ .max_output = 1000 });

	ASSERT_TRUE(spawn_succeeded(&r));
	ASSERT_TRUE(r.truncated);
	ASSERT_EQ_UINT(1000, strlen(r.out));
	spawn_result_clear(&r);
}

static void test_missing_program(void)
{
	char *argv[] = { (char *)"/nonexistent/vss-test", NULL };
	char *argv_path[] = { (char *)"vss-test-no-such-program", NULL };
	SpawnResult r;

	char **cases[] = { argv, argv_path };

	/* posix_spawn() reports a failed exec as its error; under valgrind,
	 * which makes its vfork a fork, the child exits 127 instead. */
	for (size_t i = 0; i < 2; i++) {
		int k = spawn_run(cases[i], NULL, &r);

		if (k == 0) {
			ASSERT_TRUE(WIFEXITED(r.status));
			ASSERT_EQ_INT(127, WEXITSTATUS(r.status));
			spawn_result_clear(&r);
			continue;
		}
		ASSERT_ERRNO(-ENOENT, k);
		ASSERT_NULL(r.out);
	}
}

int main(void)
{
	/* vssd runs with signals blocked and SIGPIPE ignored; the child must
	 * not inherit either. */
	sigset_t ss;

	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGCHLD);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);

	RUN_TEST(test_exit_and_output);
	RUN_TEST(test_what_the_child_gets);
	RUN_TEST(test_input);
	RUN_TEST(test_signal);
	RUN_TEST(test_deadline_kills_the_group);
	RUN_TEST(test_output_is_capped);
	RUN_TEST(test_missing_program);
	TEST_SUMMARY();
	return 0;
}
