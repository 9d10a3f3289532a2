/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Names of contexts, attributes and states, for people and for --json. */

#include <stddef.h>
#include <stdint.h>

#include <vss/types.h>
#include <vss/writer.h>

/* "app_rollback" and friends; -1 when the name is unknown. Hyphens and
 * underscores are both accepted. */
int64_t context_from_name(const char *name);
/* The context a snapshot was made in, from its attribute bits. */
const char *context_name_of_attributes(int32_t attributes);
/* The Windows "Type:" label of a context ("ApplicationRollback"). */
const char *context_label_of_attributes(int32_t attributes);
/* "Persistent, No auto release, ..." into buf. */
char *attributes_to_string(int32_t attributes, char *buf, size_t size);
/* "created", "preparing", ... */
const char *snapshot_state_name(vss_snapshot_state s);
const char *provider_type_name(vss_provider_type t);
/* "Stable", "Waiting for thaw", "Failed at freeze", ... */
const char *writer_state_text(vss_writer_state s);
