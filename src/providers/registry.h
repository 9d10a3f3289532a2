/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Built-in providers. Adding one: write its ops table, declare it here and
 * list it in registry.c (docs/PROVIDERS.md). */

#include "providers/provider.h"

extern const provider_ops btrfs_provider;
extern const provider_ops image_provider;
extern const provider_ops lvm_provider;
