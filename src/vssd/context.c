/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <vss/types.h>

#include "vssd/manager.h"

/* Bits a requestor may OR into a context (the SDK's two lists together). */
#define REQUESTOR_BITS                                                                         \
	(VSS_VOLSNAP_ATTR_NO_AUTORECOVERY | VSS_VOLSNAP_ATTR_TRANSPORTABLE |                   \
	 VSS_VOLSNAP_ATTR_NOT_TRANSACTED | VSS_VOLSNAP_ATTR_DIFFERENTIAL | VSS_VOLSNAP_ATTR_PLEX | \
	 VSS_VOLSNAP_ATTR_ROLLBACK_RECOVERY | VSS_VOLSNAP_ATTR_TXF_RECOVERY)

static int32_t base(int32_t context)
{
	return context & ~REQUESTOR_BITS;
}

bool context_is_valid_for_requestor(int32_t context, vss_hr *ret_error)
{
	switch (base(context)) {
	case VSS_CTX_BACKUP:
	case VSS_CTX_FILE_SHARE_BACKUP:
	case VSS_CTX_NAS_ROLLBACK:
	case VSS_CTX_APP_ROLLBACK:
	case VSS_CTX_CLIENT_ACCESSIBLE:
	case VSS_CTX_CLIENT_ACCESSIBLE_WRITERS:
		break;
	default:
		if (context == VSS_CTX_ALL)
			return true;
		*ret_error = E_INVALIDARG;
		return false;
	}
	/* Transportable sets need a hardware provider, which vss does not have. */
	if (context & VSS_VOLSNAP_ATTR_TRANSPORTABLE) {
		*ret_error = VSS_E_UNSUPPORTED_CONTEXT;
		return false;
	}
	return true;
}

bool context_matches(int32_t object_context, int32_t snapshot_context)
{
	return object_context == VSS_CTX_ALL || base(object_context) == base(snapshot_context);
}

bool context_auto_release(int32_t context)
{
	return !(context & VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE);
}

bool context_has_writers(int32_t context)
{
	return context != VSS_CTX_ALL && !(context & VSS_VOLSNAP_ATTR_NO_WRITERS);
}
