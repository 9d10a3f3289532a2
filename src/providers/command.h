/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The command provider (docs/COMMAND-PROVIDER.md): a provider whose steps are
 * programs named in a [Provider] section of vssd.conf with Type = command.
 * vssd makes one per section at load (new, set for each key, finish), then
 * registers it.
 */

#include "basic/util.h"
#include "providers/provider.h"

/* How many command providers vssd can have at once. */
#define COMMAND_PROVIDERS_MAX 8
/* The longest deadline a step's command may have. */
#define COMMAND_TIMEOUT_MAX_SEC 3600

/* A new command provider called name, its keys still to be set: -EINVAL
 * for a bad name, -E2BIG when there are COMMAND_PROVIDERS_MAX already. */
int command_provider_new(const char *name, provider_ops **ret, const char **ret_reason);
/* Take one key of its section: 0, -ENOKEY for a key it does not know, or
 * another negative errno with *ret_reason (static text, may stay NULL). */
int command_provider_set(provider_ops *ops, const char *key, const char *value, const char **ret_reason);
/* Once every key is set: -EINVAL, with *ret_reason, when a key it needs is
 * missing. */
int command_provider_finish(provider_ops *ops, const char **ret_reason);
/* Its commit command's deadline: vssd checks it against the hold limit. */
usec_t command_provider_commit_timeout(const provider_ops *ops);
/* Free one made by command_provider_new(), unregistered first. */
void command_provider_free(provider_ops *ops);
