/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "basic/macro.h"
#include "providers/registry.h"

/* Asked in this order when the requestor names no provider. */
static const provider_ops *const registry[] = {
	&btrfs_provider,
	&image_provider,
	&lvm_provider,
};

const provider_ops *const *provider_registry(size_t *ret_count)
{
	*ret_count = ELEMENTSOF(registry);
	return registry;
}
