/*
 * fuzz_conf.c -- libFuzzer target for the node configuration parser.
 *
 * Each input is parsed as a whole config file from memory
 * (conf_load_buffer, so no temp files), then, as a C string cut to the
 * line limit, as a value of every knob type (conf_parse_value).  A
 * successful parse must be freed cleanly; a failed one must leave the
 * struct zeroed.  Seeds: tests/fuzz/corpus/conf/.
 *
 * Build:  clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *	    -D_GNU_SOURCE tests/fuzz/fuzz_conf.c common/conf.c \
 *	    common/nodeconf.c common/util.c common/err.c common/xmalloc.c \
 *	    common/log.c common/buf.c -lbsd -lcrypto -o fuzz_conf
 *
 * Runs in: the fuzzer only.
 * Failure policy: abort() on a broken invariant, for the fuzzer to see.
 * SECURITY: n/a (test code).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_values(const uint8_t *data, size_t size)
{
	static const enum conf_type types[] = {
		CONF_STR, CONF_INT, CONF_SIZE, CONF_DURATION, CONF_BOOL,
		CONF_ENUM, CONF_ADDR, CONF_PATH, CONF_SECRET,
	};
	static const char *const enums[] = { "a", "1.2", "", NULL };
	union {
		long long	 ll;
		int		 i;
		char		*s;
	} u;
	struct conf_knob	 k = { "fuzz", CONF_STR, 0, 0, 0, NULL, enums };
	char			*s;
	size_t			 i, n;

	n = size < CONF_LINE_MAX ? size : CONF_LINE_MAX;
	s = malloc(n + 1);
	if (s == NULL)
		return;
	memcpy(s, data, n);
	s[n] = '\0';
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		memset(&u, 0, sizeof(u));
		k.type = types[i];
		k.min = i % 2 ? 0 : 1;
		k.max = i % 2 ? 0x7fffffffffffffffLL : 64;
		(void)conf_parse_value(&u, &k, s);
		if (k.type == CONF_STR || k.type == CONF_ADDR ||
		    k.type == CONF_PATH || k.type == CONF_SECRET)
			free(u.s);
	}
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct amanat_conf	zero;
	struct amanat_conf		cf;

	if (size > CONF_FILE_MAX)
		return 0;
	if (conf_load_buffer(&cf, "fuzz.conf", (const char *)data, size) == 0) {
		if (cf.node.datadir == NULL || cf.node.name == NULL)
			abort();
		(void)conf_line(&cf, "node.name");
		conf_free(&cf);
	} else if (memcmp(&cf, &zero, sizeof(cf)) != 0)
		abort();
	fuzz_values(data, size);
	return 0;
}
