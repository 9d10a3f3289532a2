/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vssadmin's command line, read and checked as vssadmin reads it, without
 * talking to vssd. The input is the argument vector, one argument per
 * '\0'-terminated string (argv[0] is added).
 *
 * parse_command_line() is static, so this includes vssadmin.c whole, with its
 * main() renamed.
 */

#include <getopt.h>

#include "fuzz.h"

#define main vssadmin_main
int main(int argc, char **argv);
#include "vssadmin/vssadmin.c"
#undef main

#define MAX_ARGS 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzInput in = fuzz_input(data, size);
	char *argv[MAX_ARGS + 2] = { (char *)"vssadmin" };
	int argc = 1, r;
	Command cmd;

	while (argc <= MAX_ARGS && !fuzz_at_end(&in))
		argv[argc++] = (char *)fuzz_string(&in);
	argv[argc] = NULL;

	optind = 0; /* getopt_long() starts over only so */
	r = parse_command_line(argc, argv, &cmd);
	if (r == COMMAND_RUN) {
		/* What the parser promises the commands. */
		if (cmd.verb == VERB_CREATE_SHADOW && !cmd.schedule &&
		    (!cmd.create.volumes || strv_length(cmd.create.volumes) > VSS_MAX_VOLUMES_PER_SET + 1))
			abort();
		if (cmd.verb == VERB_PRUNE && !cmd.schedule)
			abort();
		if (cmd.verb == VERB_DELETE_SHADOWS && !!cmd.del.shadow + !!cmd.del.set + !!cmd.del.volume != 1)
			abort();
		if ((cmd.verb == VERB_EXPOSE || cmd.verb == VERB_UNEXPOSE) && !!cmd.exp.shadow + !!cmd.exp.set != 1)
			abort();
		if (cmd.verb == VERB_RESIZE_SHADOWSTORAGE && (!cmd.volume || cmd.maximum < -1))
			abort();
		if (cmd.verb == VERB_EXEC && (!cmd.exec.command || !cmd.exec.command[0] ||
					      !!cmd.exec.set + !!cmd.exec.create.volumes != 1))
			abort();
	} else if (r != EXIT_SUCCESS && r != EXIT_USAGE && r != EXIT_FAILURE) {
		abort();
	}
	strv_free(cmd.volumes);
	strv_free(cmd.canonical);
	free(cmd.at);
	fuzz_free(&in);
	return 0;
}
