/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The wire readers of src/protocol/bus.c against any message a peer could
 * send. sd-bus cannot make a message from raw bytes, so the input is a small
 * program that builds one (tests/fuzz/README.md has the format):
 *
 *     error name \0  body signature \0  values...
 *
 * The values follow the signature: basic types as little-endian bytes,
 * strings \0-terminated, an array as a count byte and its elements, a
 * variant as its signature (\0-terminated) and its value. Input that sd-bus
 * refuses to build (a bad signature, a string that is not UTF-8) is skipped:
 * a peer could not send it either. Every reader then reads the same sealed
 * message from the start, as libvss and vssd read replies.
 */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <systemd/sd-bus.h>

#include "basic/props.h"
#include "fuzz.h"
#include "protocol/bus.h"

/* Bounds on what one input may build, so that nested arrays of arrays stay
 * small and fast. */
#define MAX_VALUES 4096
#define MAX_DEPTH 16

typedef struct Builder {
	FuzzInput in;
	unsigned values;
} Builder;

/* The length of the single complete type at the start of sig; 0 when there is
 * none (sd-bus checks the finer rules). */
static size_t type_length(const char *sig, size_t len, unsigned depth)
{
	size_t i, n;
	char close;

	if (len == 0 || depth > 64)
		return 0;
	switch (sig[0]) {
	case 'a':
		n = type_length(sig + 1, len - 1, depth + 1);
		return n ? n + 1 : 0;
	case '(':
	case '{':
		close = sig[0] == '(' ? ')' : '}';
		for (i = 1; i < len && sig[i] != close; i += n) {
			n = type_length(sig + i, len - i, depth + 1);
			if (n == 0)
				return 0;
		}
		return i < len ? i + 1 : 0;
	default:
		return strchr("ybnqiuxtdsogv", sig[0]) ? 1 : 0;
	}
}

static int append_types(sd_bus_message *m, const char *sig, size_t len, Builder *b, unsigned depth);

static int append_basic(sd_bus_message *m, char type, Builder *b)
{
	union {
		uint8_t y;
		int16_t n;
		int32_t i;
		int64_t x;
		double d;
	} v = { 0 };
	const char *s;

	switch (type) {
	case 'y':
		v.y = fuzz_u8(&b->in);
		return sd_bus_message_append_basic(m, type, &v.y);
	case 'b':
		v.i = fuzz_u8(&b->in) & 1;
		return sd_bus_message_append_basic(m, type, &v.i);
	case 'n':
	case 'q':
		fuzz_bytes(&b->in, &v.n, sizeof(v.n));
		return sd_bus_message_append_basic(m, type, &v.n);
	case 'i':
	case 'u':
		fuzz_bytes(&b->in, &v.i, sizeof(v.i));
		return sd_bus_message_append_basic(m, type, &v.i);
	case 'x':
	case 't':
	case 'd':
		fuzz_bytes(&b->in, &v.x, sizeof(v.x));
		return sd_bus_message_append_basic(m, type, &v.x);
	case 's':
	case 'o':
	case 'g':
		s = fuzz_string(&b->in);
		return sd_bus_message_append_basic(m, type, s);
	default:
		return -EINVAL;
	}
}

static int append_one(sd_bus_message *m, const char *sig, size_t len, Builder *b, unsigned depth)
{
	_cleanup_free_ char *contents = NULL;
	const char *vsig;
	char kind;
	int r;

	if (++b->values > MAX_VALUES || depth > MAX_DEPTH)
		return -E2BIG;
	switch (sig[0]) {
	case 'a':
		contents = strndup(sig + 1, len - 1);
		if (!contents)
			return -ENOMEM;
		r = sd_bus_message_open_container(m, 'a', contents);
		for (unsigned n = fuzz_u8(&b->in) % 32; r >= 0 && n > 0; n--)
			r = append_one(m, sig + 1, len - 1, b, depth + 1);
		break;
	case 'v':
		vsig = fuzz_string(&b->in);
		if (type_length(vsig, strlen(vsig), 0) != strlen(vsig))
			return -EINVAL;
		r = sd_bus_message_open_container(m, 'v', vsig);
		if (r >= 0)
			r = append_types(m, vsig, strlen(vsig), b, depth + 1);
		break;
	case '(':
	case '{':
		kind = sig[0] == '(' ? 'r' : 'e';
		contents = strndup(sig + 1, len - 2);
		if (!contents)
			return -ENOMEM;
		r = sd_bus_message_open_container(m, kind, contents);
		if (r >= 0)
			r = append_types(m, sig + 1, len - 2, b, depth + 1);
		break;
	default:
		return append_basic(m, sig[0], b);
	}
	if (r < 0)
		return r;
	return sd_bus_message_close_container(m);
}

/* Append a value of each complete type in sig. */
static int append_types(sd_bus_message *m, const char *sig, size_t len, Builder *b, unsigned depth)
{
	while (len > 0) {
		size_t n = type_length(sig, len, 0);
		int r;

		if (n == 0)
			return -EINVAL;
		r = append_one(m, sig, n, b, depth);
		if (r < 0)
			return r;
		sig += n;
		len -= n;
	}
	return 0;
}

static sd_bus *bus;

/* sd-bus makes messages only on a started bus; one end of a socket pair is
 * enough, nothing is ever sent. */
static sd_bus *get_bus(void)
{
	int fds[2];

	if (bus)
		return bus;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0 || sd_bus_new(&bus) < 0 ||
	    sd_bus_set_fd(bus, fds[0], fds[0]) < 0 || sd_bus_start(bus) < 0)
		abort();
	return bus;
}

/* Readers that read one item of an array at a time, as load_array() in
 * libvss does: until one says there is nothing more. */
static void read_metadata_array(sd_bus_message *m)
{
	vss_writer_metadata md;
	int r;

	r = sd_bus_message_enter_container(m, 'a', "(ssssiii" WRITER_METADATA_COMPONENTS ")");
	while (r >= 0) {
		md = (vss_writer_metadata){ 0 };
		r = bus_read_writer_metadata(m, &md);
		if (r <= 0)
			break;
		vss_writer_metadata_clear(&md);
	}
}

static void read_status_array(sd_bus_message *m)
{
	vss_writer_status s;
	int r;

	r = sd_bus_message_enter_container(m, 'a', "(sssiis)");
	while (r >= 0) {
		s = (vss_writer_status){ 0 };
		r = bus_read_writer_status(m, &s);
		if (r <= 0)
			break;
		vss_writer_status_clear(&s);
	}
}

/* As vss_backup_query() reads its reply. */
static void read_query(sd_bus_message *m, bool snapshots)
{
	vss_snapshot_prop sp;
	vss_provider_prop pp;
	int r;

	r = sd_bus_message_enter_container(m, 'a', "a{sv}");
	while (r >= 0 && sd_bus_message_at_end(m, false) == 0) {
		if (snapshots) {
			r = bus_read_snapshot_prop(m, &sp);
			if (r >= 0)
				vss_free_snapshot_properties(&sp);
		} else {
			r = bus_read_provider_prop(m, &pp);
			if (r >= 0)
				vss_free_provider_properties(&pp);
		}
	}
}

/* A QuerySnapshots page: whatever was read is the caller's to free, also
 * when the page turns out bad. */
static void read_snapshot_page(sd_bus_message *m)
{
	vss_snapshot_prop *props = NULL;
	size_t n = 0, allocated = 0;

	(void)bus_read_snapshot_page(m, &props, &n, &allocated, false);
	for (size_t i = 0; i < n; i++)
		vss_free_snapshot_properties(&props[i]);
	free(props);
}

static void read_all(sd_bus_message *m)
{
	vss_snapshot_prop sp;
	vss_provider_prop pp;
	vss_writer_metadata md;
	vss_writer_status s;

	if (sd_bus_message_rewind(m, true) >= 0 && bus_read_snapshot_prop(m, &sp) >= 0)
		vss_free_snapshot_properties(&sp);
	if (sd_bus_message_rewind(m, true) >= 0 && bus_read_provider_prop(m, &pp) >= 0)
		vss_free_provider_properties(&pp);
	/* A failed read leaves what it had read in md for the caller to clear,
	 * as vssd's read_identify() does. */
	md = (vss_writer_metadata){ 0 };
	if (sd_bus_message_rewind(m, true) >= 0)
		(void)bus_read_components(m, &md);
	vss_writer_metadata_clear(&md);
	md = (vss_writer_metadata){ 0 };
	if (sd_bus_message_rewind(m, true) >= 0 && bus_read_writer_metadata(m, &md) > 0)
		vss_writer_metadata_clear(&md);
	s = (vss_writer_status){ 0 };
	if (sd_bus_message_rewind(m, true) >= 0 && bus_read_writer_status(m, &s) > 0)
		vss_writer_status_clear(&s);
	if (sd_bus_message_rewind(m, true) >= 0)
		read_metadata_array(m);
	if (sd_bus_message_rewind(m, true) >= 0)
		read_status_array(m);
	if (sd_bus_message_rewind(m, true) >= 0)
		read_query(m, true);
	if (sd_bus_message_rewind(m, true) >= 0)
		read_query(m, false);
	if (sd_bus_message_rewind(m, true) >= 0)
		read_snapshot_page(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Builder b = { .in = fuzz_input(data, size) };
	sd_bus_error error = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL;
	const char *sig;
	vss_hr hr;

	/* An error reply's name, as client.c maps it. */
	error.name = fuzz_string(&b.in);
	error.message = "fuzz";
	hr = bus_error_to_hr(&error);
	if (strncmp(error.name, VSS_BUS_ERROR_PREFIX, strlen(VSS_BUS_ERROR_PREFIX)) == 0 && hr != VSS_E_UNEXPECTED &&
	    !streq(vss_hr_name(hr), error.name + strlen(VSS_BUS_ERROR_PREFIX)))
		abort(); /* a name mapped to a result of another name */

	sig = fuzz_string(&b.in);
	if (sd_bus_message_new_method_call(get_bus(), &m, VSS_BUS_NAME, VSS_BUS_MANAGER_PATH, VSS_BUS_MANAGER_IFACE,
					   "Fuzz") < 0)
		abort();
	if (append_types(m, sig, strlen(sig), &b, 0) >= 0 && sd_bus_message_seal(m, 1, 0) >= 0)
		read_all(m);
	sd_bus_message_unref(m);
	fuzz_free(&b.in);
	return 0;
}
