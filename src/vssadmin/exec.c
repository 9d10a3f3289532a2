/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vssadmin exec: a backup tool reads a snapshot set at the paths it would
 * read live, so that its archive records /srv/data/... and it finds its
 * parent backup by path from one run to the next.
 *
 * The set is made (or an existing one taken) and vssd exposes each snapshot
 * at its default place. The command's process makes a mount namespace of
 * its own, clones each exposure into it, read-only, and mounts the clones
 * over the volumes' paths (or under --at); then it runs the command. Once it
 * has, vssadmin unexposes: the clones live in the namespace alone, which
 * dies with its last process. When the command ends, vssadmin tells the
 * writers whether it succeeded and releases the object, and with it an
 * auto-release set.
 *
 * If vssadmin dies, however it dies, vssd ends the object with its
 * connection (deleting an auto-release set), and the command, which dies
 * with vssadmin (PR_SET_PDEATHSIG), takes the namespace with it.
 */

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/fd-util.h"
#include "basic/id.h"
#include "basic/macro.h"
#include "basic/util.h"
#include "vssadmin/vssadmin.h"

typedef struct Member {
	vss_id id;
	char *volume;   /* the volume's canonical path */
	char *source;   /* where vssd exposed the snapshot */
	char *target;   /* where the command sees it */
	bool exposed;   /* by us, so unexposed by us */
} Member;

typedef struct Run {
	Member m[VSS_MAX_VOLUMES_PER_SET + 1];
	size_t n;
	char set_id[VSS_ID_STRING_MAX];
	char *consistency;
} Run;

static int by_volume(const void *a, const void *b)
{
	return strcmp(((const Member *)a)->volume, ((const Member *)b)->volume);
}

static void run_clear(Run *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->m[i].volume);
		free(r->m[i].source);
		free(r->m[i].target);
	}
	free(r->consistency);
	*r = (Run){ 0 };
}

static vss_hr add_member(Run *r, const vss_snapshot_prop *s)
{
	Member *m = &r->m[r->n];

	if (r->n >= ELEMENTSOF(r->m))
		return VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED;
	*m = (Member){ .id = s->snapshot_id };
	r->n++;
	m->volume = strdup(s->original_volume_name);
	/* A snapshot exposed already (for a share, say) is cloned from
	 * there and stays so. */
	m->source = strdup_or_null(s->exposed_name);
	if (!m->volume || (s->exposed_name && !m->source))
		return E_OUTOFMEMORY;
	if (r->n == 1) {
		vss_id_format(&s->snapshot_set_id, r->set_id);
		r->consistency = strdup(s->consistency ?: "unknown");
		if (!r->consistency)
			return E_OUTOFMEMORY;
	}
	return S_OK;
}

static vss_hr expose_all(vss_backup *b, Run *r, const char *at)
{
	qsort(r->m, r->n, sizeof(r->m[0]), by_volume);
	for (size_t i = 0; i < r->n; i++) {
		Member *m = &r->m[i];

		if (at ? asprintf(&m->target, "%s%s", streq(at, "/") ? "" : at, m->volume) < 0
		       : !(m->target = strdup(m->volume))) {
			m->target = NULL;
			return E_OUTOFMEMORY;
		}
		if (m->source)
			continue;
		vss_hr hr = vss_backup_expose_snapshot(b, &m->id, NULL, VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY, NULL,
						       &m->source);
		if (VSS_FAILED(hr))
			return hr;
		m->exposed = true;
	}
	return S_OK;
}

/* Inner mounts first; what cannot be unexposed is said and left to vssd
 * (an auto-release set's release unexposes it). */
static void unexpose_all(vss_backup *b, Run *r)
{
	for (size_t i = r->n; i-- > 0;) {
		vss_hr hr;

		if (!r->m[i].exposed)
			continue;
		hr = vss_backup_unexpose_snapshot(b, &r->m[i].id);
		if (VSS_FAILED(hr))
			fail(hr, "cannot unexpose the snapshot of %s: %s", r->m[i].volume, vss_last_error_message());
		else
			r->m[i].exposed = false;
	}
}

static int setenv_indexed(const char *name, size_t i, const char *value)
{
	char key[64];

	snprintf(key, sizeof(key), "%s_%zu", name, i + 1);
	return setenv(key, value, 1);
}

/* The environment the command gets, documented in docs/ADMIN.md. */
static int set_environment(const Run *r)
{
	char count[32], id[VSS_ID_STRING_MAX];

	snprintf(count, sizeof(count), "%zu", r->n);
	if (setenv("VSS_SNAPSHOT_SET_ID", r->set_id, 1) < 0 || setenv("VSS_CONSISTENCY", r->consistency, 1) < 0 ||
	    setenv("VSS_VOLUME_COUNT", count, 1) < 0)
		return -errno;
	for (size_t i = 0; i < r->n; i++)
		if (setenv_indexed("VSS_VOLUME", i, r->m[i].volume) < 0 ||
		    setenv_indexed("VSS_SNAPSHOT", i, r->m[i].target) < 0 ||
		    setenv_indexed("VSS_SHADOW_ID", i, vss_id_format(&r->m[i].id, id)) < 0)
			return -errno;
	return 0;
}

/* In the command's process: the namespace, the mounts, the command. Returns
 * only on failure, with an errno and what failed. */
static int child(const Run *r, const ExecArgs *a, pid_t parent, const sigset_t *mask, const char **what)
{
	_cleanup_free_ char *cwd = getcwd(NULL, 0);
	int trees[ELEMENTSOF(r->m)];

	*what = "cannot make a mount namespace";
	/* Whatever kills vssadmin kills the command, and with its last
	 * process the namespace and the mounts in it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		return errno;
	if (getppid() != parent)
		return ESRCH;
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return errno;
	/* Every exposure is cloned before anything is mounted: a volume
	 * mounted over a path must not hide another's exposure. */
	*what = "cannot clone an exposed snapshot";
	for (size_t i = 0; i < r->n; i++) {
		trees[i] = open_tree(AT_FDCWD, r->m[i].source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (trees[i] < 0 ||
		    mount_setattr(trees[i], "", AT_EMPTY_PATH | AT_RECURSIVE,
				  &(struct mount_attr){ .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
								    MOUNT_ATTR_NODEV },
				  sizeof(struct mount_attr)) < 0)
			return errno;
	}
	*what = "cannot mount an empty directory tree on --at";
	if (a->at && mount("vss-exec", a->at, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
		return errno;
	*what = "cannot mount a snapshot over its volume's path";
	for (size_t i = 0; i < r->n; i++) {
		if (a->at && mkdir_p(r->m[i].target, 0755) < 0)
			return errno;
		if (move_mount(trees[i], "", AT_FDCWD, r->m[i].target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
			return errno;
	}
	/* The working directory was looked up before the mounts: look it up
	 * again, so that relative paths lead into the set too. */
	if (cwd && chdir(cwd) < 0)
		(void)chdir("/");
	*what = "cannot set the environment";
	if (set_environment(r) < 0)
		return errno;
	sigprocmask(SIG_SETMASK, mask, NULL);
	*what = "cannot run the command";
	execvp(a->command[0], a->command);
	return errno;
}

/* Run the command and wait for it. Signals sent to vssadmin alone go on to
 * the command; those of the terminal reach it anyway (it is in our process
 * group), so vssadmin lives on to clean up. Returns the command's exit
 * status, or 128 + N for signal N; a failure before the command ran is
 * reported, with 127 for a command that cannot be run. Once it runs, the
 * exposures are no longer needed in our namespace and go. */
static int run_command(vss_backup *b, Run *r, const ExecArgs *a)
{
	sigset_t mask, old;
	int pipefd[2], status, e = 0, sfd = -1;
	const char *what = NULL;
	pid_t pid, parent = getpid();
	ssize_t k;

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGQUIT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, &old) < 0 || (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0 ||
	    pipe2(pipefd, O_CLOEXEC) < 0) {
		e = errno;
		safe_close(sfd);
		sigprocmask(SIG_SETMASK, &old, NULL);
		fail(E_UNEXPECTED, "cannot wait for a command: %s", strerror(e));
		return EXIT_EXEC_FAILED;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		e = child(r, a, parent, &old, &what);
		(void)!write(pipefd[1], &e, sizeof(e));
		(void)!write(pipefd[1], &what, sizeof(what));
		_exit(127);
	}
	e = pid < 0 ? errno : 0;
	close(pipefd[1]);
	/* Nothing comes through the pipe when the command runs: it closes at
	 * the exec. */
	if (pid > 0) {
		do
			k = read(pipefd[0], &e, sizeof(e));
		while (k < 0 && errno == EINTR);
		if (k == sizeof(e) && read(pipefd[0], &what, sizeof(what)) != sizeof(what))
			what = "the command's process failed";
		if (k != sizeof(e))
			e = 0;
	}
	close(pipefd[0]);
	if (e == 0)
		unexpose_all(b, r);
	while (pid > 0) {
		struct signalfd_siginfo si;

		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		k = read(sfd, &si, sizeof(si));
		if (k != sizeof(si))
			continue;
		if (si.ssi_signo != SIGCHLD && si.ssi_code != SI_KERNEL)
			(void)kill(pid, (int)si.ssi_signo);
	}
	safe_close(sfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		fail(E_UNEXPECTED, "cannot fork: %s", strerror(e));
		return EXIT_EXEC_FAILED;
	}
	if (e != 0) {
		bool running = streq(what, "cannot run the command");

		fail(e == EPERM ? E_ACCESSDENIED : E_UNEXPECTED, "%s%s%s: %s", what, running ? " " : "",
		     running ? a->command[0] : "", strerror(e));
		/* As the shell and env(1) say it. */
		return !running ? EXIT_EXEC_FAILED : e == ENOENT ? 127 : 126;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The snapshots of an existing set. */
static vss_hr take_set(vss_backup *b, const vss_id *set, Run *r)
{
	const vss_snapshot_prop **sel = NULL;
	vss_object_prop *all = NULL;
	size_t n = 0, k = 0;
	vss_hr hr;

	hr = query_snapshots(b, set, NULL, NULL, &all, &n, &sel, &k);
	if (VSS_FAILED(hr))
		return hr;
	if (k == 0)
		hr = VSS_E_OBJECT_NOT_FOUND;
	for (size_t i = 0; VSS_SUCCEEDED(hr) && i < k; i++)
		hr = add_member(r, sel[i]);
	free(sel);
	vss_free_object_props(all, n);
	if (hr == VSS_E_OBJECT_NOT_FOUND)
		fail(hr, "no set %s", ID_TO_STRING(set));
	else if (VSS_FAILED(hr))
		fail(hr, NULL);
	return hr;
}

/* The snapshots of the set just made. */
static vss_hr made_members(const MadeSet *made, Run *r)
{
	vss_hr hr = S_OK;

	for (size_t i = 0; VSS_SUCCEEDED(hr) && i < made->n; i++) {
		vss_snapshot_prop p;

		hr = vss_backup_get_snapshot_properties(made->b, &made->ids[i], &p);
		if (VSS_SUCCEEDED(hr)) {
			hr = add_member(r, &p);
			vss_free_snapshot_properties(&p);
		}
	}
	if (VSS_FAILED(hr))
		fail(hr, NULL);
	return hr;
}

/* --document: the set's Backup Components Document, once the backup is
 * complete (it records whether the command succeeded), for the backup tool
 * to keep with what the command wrote. Written whole or not at all. */
static int save_document(vss_backup *b, const char *path)
{
	_cleanup_free_ char *doc = NULL, *tmp = NULL;
	_cleanup_close_ int fd = -1;
	vss_hr hr;
	size_t n;

	hr = vss_backup_save_as_xml(b, &doc);
	if (VSS_FAILED(hr))
		return fail(hr, "cannot save the Backup Components Document: %s", vss_last_error_message());
	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return fail(E_OUTOFMEMORY, NULL);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	n = strlen(doc);
	if (fd < 0 || write(fd, doc, n) != (ssize_t)n || write(fd, "\n", 1) != 1 || fsync(fd) < 0 ||
	    rename(tmp, path) < 0) {
		int e = errno;

		(void)unlink(tmp);
		return fail(E_UNEXPECTED, "cannot write the Backup Components Document to %s: %s", path, strerror(e));
	}
	return 0;
}

int exec_command(const ExecArgs *a)
{
	bool writers = !a->set && !(a->create.context & VSS_VOLSNAP_ATTR_NO_WRITERS);
	MadeSet made = { 0 };
	Run r = { 0 };
	vss_hr hr;
	int ret;

	if (geteuid() != 0) {
		fail(E_ACCESSDENIED, "exec needs root: it runs the command in a mount namespace of its own");
		return EXIT_EXEC_FAILED;
	}
	if (a->set) {
		hr = open_admin(&made.b);
		if (VSS_FAILED(hr)) {
			fail(hr, NULL);
			return EXIT_EXEC_FAILED;
		}
		hr = take_set(made.b, a->set, &r);
	} else {
		if (make_set(&a->create, &made) != EXIT_SUCCESS)
			return EXIT_EXEC_FAILED;
		hr = made_members(&made, &r);
	}
	if (VSS_SUCCEEDED(hr)) {
		hr = expose_all(made.b, &r, a->at);
		if (VSS_FAILED(hr))
			fail(hr, NULL);
	}
	if (VSS_FAILED(hr)) {
		unexpose_all(made.b, &r);
		if (writers)
			vss_backup_abort_backup(made.b);
		vss_backup_release(made.b);
		run_clear(&r);
		return EXIT_EXEC_FAILED;
	}
	fprintf(stderr, "%s: running %s on set %s (%s)\n", program, a->command[0], r.set_id, r.consistency);
	ret = run_command(made.b, &r, a);
	unexpose_all(made.b, &r);
	if (writers) {
		hr = for_components_on(made.b, a->create.components_on, ret == 0);
		if (VSS_SUCCEEDED(hr))
			hr = run_async(made.b, vss_backup_backup_complete);
		if (VSS_FAILED(hr))
			fail(hr, "cannot tell the writers how the backup went: %s", vss_last_error_message());
	}
	if (a->document && save_document(made.b, a->document) != 0 && ret == 0)
		ret = EXIT_EXEC_FAILED;
	vss_backup_release(made.b);
	run_clear(&r);
	return ret;
}
