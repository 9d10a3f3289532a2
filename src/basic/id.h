/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <vss/types.h>

/* A new random (version 4) id. */
void vss_id_generate(vss_id *ret);

/* Format into a compound literal: printf("%s", ID_TO_STRING(&id)). */
#define ID_TO_STRING(id) vss_id_format((id), (char[VSS_ID_STRING_MAX]){ 0 })
