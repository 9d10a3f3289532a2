/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include <vss/types.h>
#include <vss/writer.h>

#include "basic/props.h"

void vss_free_snapshot_properties(vss_snapshot_prop *p)
{
	if (!p)
		return;
	free(p->snapshot_device_object);
	free(p->original_volume_name);
	free(p->originating_machine);
	free(p->service_machine);
	free(p->exposed_name);
	free(p->exposed_path);
	free(p->consistency);
	memset(p, 0, sizeof(*p));
}

void vss_free_provider_properties(vss_provider_prop *p)
{
	if (!p)
		return;
	free(p->provider_name);
	free(p->provider_version);
	memset(p, 0, sizeof(*p));
}

void vss_free_object_props(vss_object_prop *props, size_t count)
{
	if (!props)
		return;
	for (size_t i = 0; i < count; i++) {
		if (props[i].type == VSS_OBJECT_SNAPSHOT)
			vss_free_snapshot_properties(&props[i].obj.snap);
		else if (props[i].type == VSS_OBJECT_PROVIDER)
			vss_free_provider_properties(&props[i].obj.prov);
	}
	free(props);
}

void vss_free_diff_area_props(vss_diff_area_prop *props, size_t count)
{
	for (size_t i = 0; props && i < count; i++) {
		free(props[i].volume_name);
		free(props[i].diff_area_volume_name);
	}
	free(props);
}

static void files_free(vss_wm_file *f, size_t n)
{
	for (size_t i = 0; f && i < n; i++) {
		free(f[i].path);
		free(f[i].filespec);
	}
	free(f);
}

void vss_writer_metadata_clear(vss_writer_metadata *md)
{
	if (!md)
		return;
	for (size_t i = 0; i < md->n_components; i++) {
		free(md->components[i].logical_path);
		free(md->components[i].name);
		free(md->components[i].caption);
		files_free(md->components[i].files, md->components[i].n_files);
	}
	free(md->components);
	files_free(md->excluded, md->n_excluded);
	free(md->name);
	free(md->instance_name);
	*md = (vss_writer_metadata){ 0 };
}

void vss_writer_status_clear(vss_writer_status *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->message);
	*s = (vss_writer_status){ 0 };
}
