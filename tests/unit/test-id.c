/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include <vss/types.h>

#include "basic/id.h"
#include "basic/macro.h"
#include "tests.h"

static const vss_id sample = { {
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
} };

/* The catalog and the D-Bus wire store this text, so its exact form is part
 * of the on-disk format, not a matter of taste. */
#define SAMPLE_TEXT "{00112233-4455-6677-8899-aabbccddeeff}"

static void test_format(void)
{
	char buf[VSS_ID_STRING_MAX];
	vss_id null_id = VSS_ID_NULL;

	memset(buf, 'x', sizeof(buf));
	ASSERT_TRUE(vss_id_format(&sample, buf) == buf);
	ASSERT_STREQ(SAMPLE_TEXT, buf);
	ASSERT_EQ_UINT(VSS_ID_STRING_MAX - 1, strlen(buf));
	ASSERT_STREQ("{00000000-0000-0000-0000-000000000000}", vss_id_format(&null_id, buf));
	ASSERT_STREQ(SAMPLE_TEXT, ID_TO_STRING(&sample));
}

static void test_parse_accepted(void)
{
	static const char *const forms[] = {
		SAMPLE_TEXT,
		"00112233-4455-6677-8899-aabbccddeeff",
		"{00112233-4455-6677-8899-AABBCCDDEEFF}",
		"00112233-4455-6677-8899-AaBbCcDdEeFf",
	};

	for (size_t i = 0; i < ELEMENTSOF(forms); i++) {
		vss_id id = VSS_ID_NULL;

		ASSERT_HR(S_OK, vss_id_parse(forms[i], &id));
		ASSERT_ID_EQ(&sample, &id);
	}
}

static void test_parse_rejected(void)
{
	static const char *const bad[] = {
		"",
		"{}",
		"{00112233-4455-6677-8899-aabbccddeeff",     /* no closing brace */
		"00112233-4455-6677-8899-aabbccddeeff}",     /* no opening brace */
		"(00112233-4455-6677-8899-aabbccddeeff)",
		"[00112233-4455-6677-8899-aabbccddeeff]",
		"{00112233-4455-6677-8899-aabbccddeeff}}",
		"{{00112233-4455-6677-8899-aabbccddeeff}",
		"00112233-4455-6677-8899-aabbccddeef",       /* one digit short */
		"00112233-4455-6677-8899-aabbccddeeff0",     /* one digit long */
		"00112233445566778899aabbccddeeff",          /* no hyphens */
		"0011223-34455-6677-8899-aabbccddeeff",      /* hyphen misplaced */
		"00112233-4455-6677-8899-aabbccddeefg",      /* not hex */
		"00112233-4455-6677-8899_aabbccddeeff",
		" 00112233-4455-6677-8899-aabbccddeeff",
		"{ 0112233-4455-6677-8899-aabbccddeeff}",
	};

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		vss_id id = sample;

		ASSERT_HR(E_INVALIDARG, vss_id_parse(bad[i], &id));
		/* A failure leaves the null id (docs/ABI.md), not what was there. */
		ASSERT_TRUE(vss_id_is_null(&id));
	}
	{
		vss_id id = sample;

		ASSERT_HR(E_INVALIDARG, vss_id_parse(NULL, &id));
		ASSERT_TRUE(vss_id_is_null(&id));
		ASSERT_HR(E_INVALIDARG, vss_id_parse(SAMPLE_TEXT, NULL));
	}
}

static void test_null_and_equal(void)
{
	vss_id null_id = VSS_ID_NULL, a = sample, b = sample;

	ASSERT_TRUE(vss_id_is_null(&null_id));
	ASSERT_TRUE(vss_id_is_null(NULL));
	ASSERT_FALSE(vss_id_is_null(&sample));

	/* Any single non-zero byte makes an id non-null. */
	for (size_t i = 0; i < sizeof(null_id.bytes); i++) {
		vss_id one = VSS_ID_NULL;

		one.bytes[i] = 0x80;
		ASSERT_FALSE(vss_id_is_null(&one));
		ASSERT_FALSE(vss_id_equal(&one, &null_id));
	}

	ASSERT_TRUE(vss_id_equal(&a, &b));
	ASSERT_TRUE(vss_id_equal(&null_id, &null_id));
	b.bytes[15] ^= 1;
	ASSERT_FALSE(vss_id_equal(&a, &b));
	b = sample;
	b.bytes[0] ^= 0x80;
	ASSERT_FALSE(vss_id_equal(&a, &b));
}

static void test_generate(void)
{
	vss_id ids[64];

	for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
		vss_id back;

		vss_id_generate(&ids[i]);
		ASSERT_FALSE(vss_id_is_null(&ids[i]));
		/* RFC 4122 version 4, variant 10xx. */
		ASSERT_EQ_INT(0x40, ids[i].bytes[6] & 0xf0);
		ASSERT_EQ_INT(0x80, ids[i].bytes[8] & 0xc0);
		/* Every generated id survives its own text form. */
		ASSERT_HR(S_OK, vss_id_parse(ID_TO_STRING(&ids[i]), &back));
		ASSERT_ID_EQ(&ids[i], &back);
		for (size_t j = 0; j < i; j++)
			ASSERT_FALSE(vss_id_equal(&ids[i], &ids[j]));
	}
}

int main(void)
{
	RUN_TEST(test_format);
	RUN_TEST(test_parse_accepted);
	RUN_TEST(test_parse_rejected);
	RUN_TEST(test_null_and_equal);
	RUN_TEST(test_generate);
	TEST_SUMMARY();
	return 0;
}
