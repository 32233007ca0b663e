/*
 * test_common_gcm.c -- unit tests for AES-256-GCM in one call.
 *
 * Purpose: a published test vector (McGrew and Viega, "The Galois/Counter
 * Mode of Operation", test case 14); round trips in place and out of
 * place with the AAD in pieces; every flipped byte of the ciphertext, of
 * the tag and of an AAD piece is refused with ERR_PERM and the output
 * wiped; inputs over INT_MAX refused before any work.
 * Runs in: the unit test binary only.
 * Failure policy: cmocka assertions.
 * SECURITY: nothing unauthenticated may come out of a failed decryption.
 */
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/gcm.h"

static const unsigned char	key[GCM_KEY_LEN] = "0123456789abcdef0123456789abcde";
static const unsigned char	iv[GCM_IV_LEN] = "nonce-12byt";

static int
all_zero(const unsigned char *p, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

static void
test_common_gcm__vector(void **state)
{
	static const unsigned char	want_ct[16] = {
		0xce, 0xa7, 0x40, 0x3d, 0x4d, 0x60, 0x6b, 0x6e,
		0x07, 0x4e, 0xc5, 0xd3, 0xba, 0xf3, 0x9d, 0x18,
	};
	static const unsigned char	want_tag[16] = {
		0xd0, 0xd1, 0xc8, 0xa7, 0x99, 0x99, 0x6b, 0xf0,
		0x26, 0x5b, 0x98, 0xb5, 0xd4, 0x8a, 0xb9, 0x19,
	};
	unsigned char	zkey[GCM_KEY_LEN] = { 0 }, ziv[GCM_IV_LEN] = { 0 };
	unsigned char	pt[16] = { 0 }, ct[16], tag[GCM_TAG_LEN];

	(void)state;
	assert_int_equal(gcm_crypt(1, zkey, ziv, NULL, 0, pt, sizeof(pt), ct,
	    tag), 0);
	assert_memory_equal(ct, want_ct, sizeof(ct));
	assert_memory_equal(tag, want_tag, sizeof(tag));
	assert_int_equal(gcm_crypt(0, zkey, ziv, NULL, 0, ct, sizeof(ct), pt,
	    tag), 0);
	assert_true(all_zero(pt, sizeof(pt)));
}

static void
test_common_gcm__roundtrip_and_tamper(void **state)
{
	static const char	msg[] = "the message, 31 bytes of it ok";
	unsigned char		ct[sizeof(msg)], out[sizeof(msg)];
	unsigned char		tag[GCM_TAG_LEN], buf[sizeof(msg)];
	char			label[] = "label";
	struct gcm_aad		aad[] = {
		{ label, sizeof(label) },
		{ "", 0 },			/* empty pieces are skipped */
		{ "id-0001", 7 },
	};
	size_t			i, n = sizeof(msg);

	(void)state;
	assert_int_equal(gcm_crypt(1, key, iv, aad, 3,
	    (const unsigned char *)msg, n, ct, tag), 0);
	assert_memory_not_equal(ct, msg, n);
	assert_int_equal(gcm_crypt(0, key, iv, aad, 3, ct, n, out, tag), 0);
	assert_memory_equal(out, msg, n);
	/* in place, both ways */
	memcpy(buf, msg, n);
	assert_int_equal(gcm_crypt(1, key, iv, aad, 3, buf, n, buf, tag), 0);
	assert_memory_equal(buf, ct, n);
	assert_int_equal(gcm_crypt(0, key, iv, aad, 3, buf, n, buf, tag), 0);
	assert_memory_equal(buf, msg, n);

	/* any flipped byte of the ciphertext: ERR_PERM, output wiped */
	for (i = 0; i < n; i++) {
		ct[i] ^= 0x01;
		memset(out, 0xaa, n);
		assert_int_equal(gcm_crypt(0, key, iv, aad, 3, ct, n, out,
		    tag), ERR_PERM);
		assert_int_equal(err_code(), ERR_PERM);
		assert_true(all_zero(out, n));
		ct[i] ^= 0x01;
	}
	for (i = 0; i < sizeof(tag); i++) {
		tag[i] ^= 0x80;
		assert_int_equal(gcm_crypt(0, key, iv, aad, 3, ct, n, out,
		    tag), ERR_PERM);
		tag[i] ^= 0x80;
	}
	/* the AAD binds: another label, another id, a piece left out */
	label[0] = 'L';
	assert_int_equal(gcm_crypt(0, key, iv, aad, 3, ct, n, out, tag),
	    ERR_PERM);
	label[0] = 'l';
	aad[2].p = "id-0002";
	assert_int_equal(gcm_crypt(0, key, iv, aad, 3, ct, n, out, tag),
	    ERR_PERM);
	aad[2].p = "id-0001";
	assert_int_equal(gcm_crypt(0, key, iv, aad, 2, ct, n, out, tag),
	    ERR_PERM);
	/* the right ones still open it */
	assert_int_equal(gcm_crypt(0, key, iv, aad, 3, ct, n, out, tag), 0);
	assert_memory_equal(out, msg, n);
}

static void
test_common_gcm__limits(void **state)
{
	unsigned char	b[1] = { 0x11 }, tag[GCM_TAG_LEN];

	(void)state;
	/* INT_MAX + 1 bytes: refused before reading or writing any */
	assert_int_equal(gcm_crypt(1, key, iv, NULL, 0, b,
	    (size_t)INT_MAX + 1, b, tag), ERR_TOOBIG);
	assert_int_equal(b[0], 0x11);
	/* empty input: only the tag */
	assert_int_equal(gcm_crypt(1, key, iv, NULL, 0, b, 0, b, tag), 0);
	assert_int_equal(gcm_crypt(0, key, iv, NULL, 0, b, 0, b, tag), 0);
	tag[0] ^= 1;
	assert_int_equal(gcm_crypt(0, key, iv, NULL, 0, b, 0, b, tag),
	    ERR_PERM);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_common_gcm__vector),
		cmocka_unit_test(test_common_gcm__roundtrip_and_tamper),
		cmocka_unit_test(test_common_gcm__limits),
	};
	int	rc;

	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
