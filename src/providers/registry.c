/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "basic/id.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "providers/registry.h"

/* Asked in this order when the requestor names no provider, after the
 * registered ones. */
static const provider_ops *const builtin[] = {
	&btrfs_provider,
	&image_provider,
	&lvm_provider,
};

/* Providers declared in vssd.conf come first: an administrator who names
 * the volumes a provider claims means it to take them, and a volume it
 * claims may also be one a built-in provider takes (a SAN LUN formatted
 * ext4, an image on a reflink host). Then the built-in ones. Changed only
 * at start-up, before the engine's threads exist. */
static const provider_ops **all;
static size_t n_all;

static int registry_fill(void)
{
	if (all)
		return 0;
	all = malloc(sizeof(*all) * ELEMENTSOF(builtin));
	if (!all)
		return -ENOMEM;
	memcpy(all, builtin, sizeof(builtin));
	n_all = ELEMENTSOF(builtin);
	return 0;
}

const provider_ops *const *provider_registry(size_t *ret_count)
{
	if (registry_fill() < 0) {
		*ret_count = ELEMENTSOF(builtin);
		return builtin;
	}
	*ret_count = n_all;
	return all;
}

int provider_register(const provider_ops *ops)
{
	const provider_ops **grown;
	size_t n_registered = 0;
	int r;

	/* A table made for another version would be read with the wrong
	 * layout: refused, never guessed at. */
	if (ops->version != PROVIDER_OPS_VERSION) {
		log_error("provider %s: its ops version is %u, vssd's is %u; not registered", ops->name ?: "(unnamed)",
			  ops->version, PROVIDER_OPS_VERSION);
		return -EPROTO;
	}
	if (!ops->name || !ops->name[0] || vss_id_is_null(&ops->id) || !ops->is_volume_supported || !ops->locate ||
	    (!ops->commit && !ops->commit_group) || !ops->delete_snapshot) {
		log_error("provider %s: a provider needs a name, an id, is_volume_supported, locate, commit or "
			  "commit_group, and delete_snapshot; not registered", ops->name ?: "(unnamed)");
		return -EINVAL;
	}
	/* A plan nothing can carry out, or a revert with no plan to follow. */
	if (!ops->revert_plan != !ops->revert) {
		log_error("provider %s: it has %s but not %s (both or neither); not registered", ops->name,
			  ops->revert ? "revert" : "revert_plan", ops->revert ? "revert_plan" : "revert");
		return -EINVAL;
	}
	r = registry_fill();
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_all; i++) {
		if (all[i] == ops || vss_id_equal(&all[i]->id, &ops->id)) {
			log_error("provider %s: its id %s is provider %s's already; not registered", ops->name,
				  ID_TO_STRING(&ops->id), all[i]->name);
			return -EEXIST;
		}
		if (streq(all[i]->name, ops->name)) {
			log_error("provider %s: the name is another provider's already; not registered", ops->name);
			return -EEXIST;
		}
	}
	grown = realloc(all, sizeof(*all) * (n_all + 1));
	if (!grown)
		return -ENOMEM;
	all = grown;
	/* After the registered ones, before the built-in ones. */
	for (size_t i = 0; i < n_all && all[i] != builtin[0]; i++)
		n_registered++;
	memmove(all + n_registered + 1, all + n_registered, sizeof(*all) * (n_all - n_registered));
	all[n_registered] = ops;
	n_all++;
	log_debug("provider %s %s registered", ops->name, ID_TO_STRING(&ops->id));
	return 0;
}

void provider_unregister(const provider_ops *ops)
{
	for (size_t i = 0; i < n_all; i++)
		if (all[i] == ops) {
			memmove(all + i, all + i + 1, sizeof(*all) * (n_all - i - 1));
			n_all--;
			break;
		}
	/* The last one gone, nothing is left allocated. */
	if (n_all == ELEMENTSOF(builtin) && memcmp(all, builtin, sizeof(builtin)) == 0) {
		free(all);
		all = NULL;
		n_all = 0;
	}
}
