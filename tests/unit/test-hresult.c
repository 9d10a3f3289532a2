/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>
#include <string.h>

#include <vss/hresult.h>

#include "basic/hresult-table.h"
#include "basic/macro.h"
#include "tests.h"

/*
 * The contract: names and values as Windows has them. Written out as
 * literals, not through the macros, so that a wrong macro cannot agree with
 * itself. The macro column then checks the header against the same literal.
 */
struct expected_hr {
	const char *name;
	uint32_t value;
	vss_hr macro;
};

#define X(name, value) { #name, value, name }

static const struct expected_hr contract[] = {
	X(S_OK, 0x00000000u),
	X(S_FALSE, 0x00000001u),
	X(E_ACCESSDENIED, 0x80070005u),
	X(E_INVALIDARG, 0x80070057u),
	X(E_OUTOFMEMORY, 0x8007000Eu),
	X(E_UNEXPECTED, 0x8000FFFFu),
	X(VSS_S_ASYNC_PENDING, 0x00042309u),
	X(VSS_S_ASYNC_FINISHED, 0x0004230Au),
	X(VSS_S_ASYNC_CANCELLED, 0x0004230Bu),
	X(VSS_E_BAD_STATE, 0x80042301u),
	X(VSS_E_UNEXPECTED, 0x80042302u),
	X(VSS_E_PROVIDER_ALREADY_REGISTERED, 0x80042303u),
	X(VSS_E_PROVIDER_NOT_REGISTERED, 0x80042304u),
	X(VSS_E_PROVIDER_VETO, 0x80042306u),
	X(VSS_E_PROVIDER_IN_USE, 0x80042307u),
	X(VSS_E_OBJECT_NOT_FOUND, 0x80042308u),
	X(VSS_E_VOLUME_NOT_SUPPORTED, 0x8004230Cu),
	X(VSS_E_OBJECT_ALREADY_EXISTS, 0x8004230Du),
	X(VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER, 0x8004230Eu),
	X(VSS_E_UNEXPECTED_PROVIDER_ERROR, 0x8004230Fu),
	X(VSS_E_CORRUPT_XML_DOCUMENT, 0x80042310u),
	X(VSS_E_INVALID_XML_DOCUMENT, 0x80042311u),
	X(VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED, 0x80042312u),
	X(VSS_E_FLUSH_WRITES_TIMEOUT, 0x80042313u),
	X(VSS_E_HOLD_WRITES_TIMEOUT, 0x80042314u),
	X(VSS_E_UNEXPECTED_WRITER_ERROR, 0x80042315u),
	X(VSS_E_SNAPSHOT_SET_IN_PROGRESS, 0x80042316u),
	X(VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED, 0x80042317u),
	X(VSS_E_WRITER_INFRASTRUCTURE, 0x80042318u),
	X(VSS_E_WRITER_NOT_RESPONDING, 0x80042319u),
	X(VSS_E_WRITER_ALREADY_SUBSCRIBED, 0x8004231Au),
	X(VSS_E_UNSUPPORTED_CONTEXT, 0x8004231Bu),
	X(VSS_E_VOLUME_IN_USE, 0x8004231Du),
	X(VSS_E_MAXIMUM_DIFFAREA_ASSOCIATIONS_REACHED, 0x8004231Eu),
	X(VSS_E_INSUFFICIENT_STORAGE, 0x8004231Fu),
	X(VSS_E_REVERT_IN_PROGRESS, 0x80042325u),
	X(VSS_E_REBOOT_REQUIRED, 0x80042327u),
	X(VSS_E_TRANSACTION_FREEZE_TIMEOUT, 0x80042328u),
	X(VSS_E_TRANSACTION_THAW_TIMEOUT, 0x80042329u),
	X(VSS_E_NESTED_VOLUME_LIMIT, 0x8004232Cu),
	X(VSS_E_VOLUME_NOT_LOCAL, 0x8004232Du),
	X(VSS_E_CLUSTER_TIMEOUT, 0x8004232Eu),
	X(VSS_E_NOT_SUPPORTED, 0x8004232Fu),
	X(VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT, 0x800423F0u),
	X(VSS_E_WRITERERROR_OUTOFRESOURCES, 0x800423F1u),
	X(VSS_E_WRITERERROR_TIMEOUT, 0x800423F2u),
	X(VSS_E_WRITERERROR_RETRYABLE, 0x800423F3u),
	X(VSS_E_WRITERERROR_NONRETRYABLE, 0x800423F4u),
	X(VSS_E_WRITERERROR_RECOVERY_FAILED, 0x800423F5u),
	X(VSS_E_WRITERERROR_PARTIAL_FAILURE, 0x80042336u),
	X(VSS_E_WRITER_STATUS_NOT_AVAILABLE, 0x80042409u),
	/* Not in the brief's list, but in the header and the table: the COM
	 * values are just as fixed. */
	X(E_NOTIMPL, 0x80004001u),
	X(E_ABORT, 0x80004004u),
	X(E_FAIL, 0x80004005u),
};

static void test_contract_values(void)
{
	for (size_t i = 0; i < ELEMENTSOF(contract); i++) {
		const struct expected_hr *c = &contract[i];
		vss_hr hr = (vss_hr)c->value, parsed = 0x12345678;

		/* The header macro. */
		ASSERT_EQ_UINT(c->value, (uint32_t)c->macro);
		/* The table, both ways. */
		ASSERT_STREQ(c->name, vss_hr_name(hr));
		ASSERT_HR(S_OK, vss_hr_from_name(c->name, &parsed));
		ASSERT_EQ_UINT(c->value, (uint32_t)parsed);
		ASSERT_NOT_NULL(vss_hr_lookup(hr));
		ASSERT_NOT_NULL(vss_hr_lookup_name(c->name));
	}
}

/* COM's rule: the severity bit is the sign bit. */
static void test_sign_follows_severity(void)
{
	for (size_t i = 0; i < ELEMENTSOF(contract); i++) {
		const struct expected_hr *c = &contract[i];
		bool severity = (c->value & 0x80000000u) != 0;
		bool named_failure = strncmp(c->name, "E_", 2) == 0 || strncmp(c->name, "VSS_E_", 6) == 0;

		ASSERT_EQ_INT(named_failure, severity);
		ASSERT_EQ_INT(severity, c->macro < 0);
		ASSERT_EQ_INT(severity, VSS_FAILED(c->macro));
		ASSERT_EQ_INT(!severity, VSS_SUCCEEDED(c->macro));
	}
	ASSERT_TRUE(VSS_SUCCEEDED(S_OK));
	ASSERT_TRUE(VSS_SUCCEEDED(S_FALSE));
	ASSERT_TRUE(VSS_FAILED(VSS_E_BAD_STATE));
	ASSERT_EQ_INT(INT32_MIN, VSS_HR_(0x80000000));
	ASSERT_EQ_INT(-1, VSS_HR_(0xFFFFFFFF));
	ASSERT_EQ_INT(INT32_MAX, VSS_HR_(0x7FFFFFFF));
}

/* The constants must be integer constant expressions: vssd and requestors
 * switch on them. A non-constant macro breaks the build here. */
static int classify(vss_hr hr)
{
	switch (hr) {
	case S_OK:
		return 0;
	case VSS_S_ASYNC_FINISHED:
		return 1;
	case VSS_E_BAD_STATE:
		return 2;
	case E_INVALIDARG:
		return 3;
	default:
		return -1;
	}
}

static void test_constants_in_switch(void)
{
	_Static_assert(VSS_E_BAD_STATE < 0, "failures are negative");
	_Static_assert(VSS_S_ASYNC_PENDING > 0, "VSS_S_* are positive");

	ASSERT_EQ_INT(0, classify((vss_hr)0));
	ASSERT_EQ_INT(1, classify((vss_hr)0x0004230Au));
	ASSERT_EQ_INT(2, classify((vss_hr)0x80042301u));
	ASSERT_EQ_INT(3, classify((vss_hr)0x80070057u));
	ASSERT_EQ_INT(-1, classify((vss_hr)0x80042399u));
}

static void test_table_is_consistent(void)
{
	size_t n = 0;
	const struct vss_hr_entry *t = vss_hr_table(&n);

	ASSERT_NOT_NULL(t);
	/* Everything in the contract, and nothing vss does not document. */
	ASSERT_EQ_UINT(ELEMENTSOF(contract), n);

	for (size_t i = 0; i < n; i++) {
		size_t len;
		bool in_contract = false;

		ASSERT_NOT_NULL(t[i].name);
		ASSERT_NOT_NULL(t[i].message);
		len = strlen(t[i].message);
		/* Messages are printed as sentences by vssadmin. */
		ASSERT_TRUE(len > 1);
		ASSERT_EQ_INT('.', t[i].message[len - 1]);
		ASSERT_STREQ(t[i].message, vss_hr_message(t[i].hr));
		ASSERT_TRUE(vss_hr_lookup(t[i].hr) == &t[i]);
		ASSERT_TRUE(vss_hr_lookup_name(t[i].name) == &t[i]);

		for (size_t j = 0; j < ELEMENTSOF(contract); j++)
			if (strcmp(contract[j].name, t[i].name) == 0 && (vss_hr)contract[j].value == t[i].hr)
				in_contract = true;
		ASSERT_TRUE(in_contract);

		/* Names and values are unique: the D-Bus error name maps back
		 * to exactly one value. */
		for (size_t j = i + 1; j < n; j++) {
			ASSERT_TRUE(strcmp(t[i].name, t[j].name) != 0);
			ASSERT_NE_INT(t[i].hr, t[j].hr);
		}
	}
}

static void test_unknown_values(void)
{
	static const uint32_t unknown[] = {
		0x80042300u, 0x80042305u, 0x8004231Cu, 0x80042999u, 0x80000000u,
		0xFFFFFFFFu, 0x00000002u, 0x0004230Cu, 0x7FFFFFFFu,
	};

	for (size_t i = 0; i < ELEMENTSOF(unknown); i++) {
		vss_hr hr = (vss_hr)unknown[i];

		ASSERT_STREQ("UNKNOWN_HRESULT", vss_hr_name(hr));
		ASSERT_NULL(vss_hr_lookup(hr));
		ASSERT_STREQ(VSS_FAILED(hr) ? "Unknown failure." : "Unknown success code.", vss_hr_message(hr));
	}
}

static void test_from_name_errors(void)
{
	vss_hr v = 0x0badcafe;

	/* A failure clears the output (docs/ABI.md): nothing stale is read. */
	ASSERT_HR(E_INVALIDARG, vss_hr_from_name(NULL, &v));
	ASSERT_HR(S_OK, v);
	ASSERT_HR(E_INVALIDARG, vss_hr_from_name("S_OK", NULL));

	v = 0x0badcafe;
	ASSERT_HR(VSS_E_OBJECT_NOT_FOUND, vss_hr_from_name("VSS_E_NO_SUCH_THING", &v));
	ASSERT_HR(S_OK, v);
	ASSERT_HR(VSS_E_OBJECT_NOT_FOUND, vss_hr_from_name("", &v));
	/* The sentinel is not a code. */
	ASSERT_HR(VSS_E_OBJECT_NOT_FOUND, vss_hr_from_name("UNKNOWN_HRESULT", &v));
	/* Names are exact: no case folding, no prefix match. */
	ASSERT_HR(VSS_E_OBJECT_NOT_FOUND, vss_hr_from_name("vss_e_bad_state", &v));
	ASSERT_HR(VSS_E_OBJECT_NOT_FOUND, vss_hr_from_name("VSS_E_BAD_STATE ", &v));
	v = 0x0badcafe;
	ASSERT_HR(VSS_E_OBJECT_NOT_FOUND, vss_hr_from_name("VSS_E_BAD", &v));
	ASSERT_HR(S_OK, v);
	ASSERT_NULL(vss_hr_lookup_name("VSS_E_BAD"));
}

int main(void)
{
	RUN_TEST(test_contract_values);
	RUN_TEST(test_sign_follows_severity);
	RUN_TEST(test_constants_in_switch);
	RUN_TEST(test_table_is_consistent);
	RUN_TEST(test_unknown_values);
	RUN_TEST(test_from_name_errors);
	TEST_SUMMARY();
	return 0;
}
