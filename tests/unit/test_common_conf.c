/*
 * test_common_conf.c -- unit tests for common/conf.c and its schema.
 *
 * Each test writes config files under its own mkdtemp() directory, which
 * the teardown removes.  Run from the repository root (the example
 * conf/amanat.conf is loaded by a relative path).  An argument is a
 * cmocka test filter (a glob on the full name, e.g. '*quoting*'): only
 * matching tests run.
 *
 * Runs in: the unit test binary (ASan/UBSan in make check).
 * Failure policy: cmocka assertions.
 * SECURITY: n/a (test code); secret-file checks use 0600/0644 temp files.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/stat.h>

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define EXAMPLE_CONF	"conf/amanat.conf"

struct tstate {
	char	dir[64];
	char	path[128];	/* dir/amanat.conf */
};

/* ------------------------------------------------------------ helpers */

static int
rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int
setup(void **state)
{
	struct tstate	*t = xcalloc(1, sizeof(*t));
	char		*real = NULL;

	snprintf(t->dir, sizeof(t->dir), "/tmp/amanat-conf-XXXXXX");
	/* conf stores the realpath of the directory. */
	if (mkdtemp(t->dir) == NULL || (real = realpath(t->dir, NULL)) ==
	    NULL || strlen(real) >= sizeof(t->dir)) {
		free(real);
		free(t);
		return -1;
	}
	snprintf(t->dir, sizeof(t->dir), "%s", real);
	free(real);
	snprintf(t->path, sizeof(t->path), "%s/amanat.conf", t->dir);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct tstate	*t = *state;

	(void)nftw(t->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(t);
	return 0;
}

static void
write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int	fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void
write_under(struct tstate *t, const char *rel, const char *text, mode_t mode)
{
	char	path[PATH_MAX], *slash;

	snprintf(path, sizeof(path), "%s/%s", t->dir, rel);
	for (slash = path + strlen(t->dir) + 1; (slash = strchr(slash, '/'))
	    != NULL; slash++) {
		*slash = '\0';
		(void)mkdir(path, 0700);
		*slash = '/';
	}
	write_file(path, text, strlen(text), mode);
}

static int
load_bytes(struct tstate *t, struct amanat_conf *cf, const char *data,
    size_t len)
{
	write_file(t->path, data, len, 0600);
	return conf_load(cf, t->path);
}

static int
load(struct tstate *t, struct amanat_conf *cf, const char *text)
{
	return load_bytes(t, cf, text, strlen(text));
}

static void
assert_zeroed(const struct amanat_conf *cf)
{
	static const struct amanat_conf	zero;

	assert_memory_equal(cf, &zero, sizeof(zero));
}

/* ERR_INVAL, "<path>:<line>: " then a message containing want. */
static void
expect_bytes_err(struct tstate *t, const char *data, size_t len, int line,
    const char *want)
{
	struct amanat_conf	cf;
	char			prefix[PATH_MAX + 32];
	const char		*msg;

	assert_int_equal(load_bytes(t, &cf, data, len), ERR_INVAL);
	msg = err_msg();
	snprintf(prefix, sizeof(prefix), "%s:%d: ", t->path, line);
	if (strncmp(msg, prefix, strlen(prefix)) != 0 ||
	    strstr(msg, want) == NULL)
		fail_msg("got \"%s\", want \"%s...%s\"", msg, prefix, want);
	assert_zeroed(&cf);
	conf_free(&cf);
}

static void
expect_err(struct tstate *t, const char *text, int line, const char *want)
{
	expect_bytes_err(t, text, strlen(text), line, want);
}

static void *
field(struct amanat_conf *cf, const struct conf_knob *k)
{
	return (char *)cf + k->offset;
}

static int
parse_as(long long *out, enum conf_type type, long long min, long long max,
    const char *s)
{
	struct conf_knob	k = { "test", type, 0, min, max, NULL, NULL };

	return conf_parse_value(out, &k, s);
}

/* ------------------------------------------------------------ tests */

static void
test_common_conf__defaults(void **state)
{
	struct tstate		*t = *state;
	struct amanat_conf	 cf;
	char			 want[PATH_MAX + 64];

	assert_int_equal(load(t, &cf, ""), 0);
	assert_string_equal(cf.path, t->path);
	assert_non_null(cf.dir);
	assert_true(cf.dir[0] == '/');
	assert_string_equal(cf.node.name, "amanat");
	assert_string_equal(cf.node.datadir, cf.dir);
	assert_int_equal(cf.node.log_level, LOG_LVL_INFO);
	assert_int_equal(cf.node.log_syslog, 0);
	assert_int_equal(cf.node.max_open_files, 65536);
	snprintf(want, sizeof(want), "%s/tls/server.key", cf.dir);
	assert_string_equal(cf.tls.key, want);
	snprintf(want, sizeof(want), "%s/ca.pem", cf.dir);
	assert_string_equal(cf.tls.ca, want);
	assert_int_equal(cf.tls.min_version, TLS_MIN_1_2);
	assert_string_equal(cf.keyservice.http.listen, "127.0.0.1:8444");
	assert_int_equal(cf.keyservice.http.idle_timeout, 60000);
	assert_int_equal(cf.keyservice.http.max_body, 1 << 20);
	assert_int_equal(cf.keyservice.map_size, 64LL << 20);
	assert_string_equal(cf.mailsrv.imaps_listen, "127.0.0.1:2993");
	assert_int_equal(cf.mailsrv.smtp_idle_timeout, 300000);
	assert_int_equal(cf.mailsrv.imap_idle_timeout, 30 * 60000);
	assert_int_equal(cf.docstore.http.max_body, 256LL << 20);
	assert_int_equal(cf.norigins, 0);
	assert_int_equal(conf_line(&cf, "node.name"), 0);
	conf_free(&cf);
	assert_zeroed(&cf);
	conf_free(&cf);		/* idempotent */
}

static void
test_common_conf__int_limits(void **state)
{
	struct tstate		*t = *state;
	struct amanat_conf	 cf;

	assert_int_equal(load(t, &cf, "[keyservice]\n"
	    "max_connections = 1000000\n"), 0);
	assert_int_equal(cf.keyservice.http.max_connections, 1000000);
	assert_int_equal(conf_line(&cf, "keyservice.max_connections"), 2);
	conf_free(&cf);
	assert_int_equal(load(t, &cf, "[keyservice]\nmax_connections = 1\n"),
	    0);
	assert_int_equal(cf.keyservice.http.max_connections, 1);
	conf_free(&cf);
	expect_err(t, "[keyservice]\nmax_connections = 1000001\n", 2,
	    "keyservice.max_connections: 1000001 is out of range "
	    "[1, 1000000]");
	expect_err(t, "# c\n[keyservice]\n\nmax_connections = 0\n", 4,
	    "keyservice.max_connections: 0 is out of range [1, 1000000]");
	expect_err(t, "[keyservice]\nmax_connections = 10x\n", 2,
	    "keyservice.max_connections: '10x' is not an integer");
	expect_err(t, "[keyservice]\nmax_connections = 99999999999999999999\n",
	    2, "is not an integer");
}

static void
test_common_conf__size_suffixes(void **state)
{
	long long	v = 0;

	(void)state;
	assert_int_equal(parse_as(&v, CONF_SIZE, 0, LLONG_MAX, "17"), 0);
	assert_int_equal(v, 17);
	assert_int_equal(parse_as(&v, CONF_SIZE, 0, LLONG_MAX, "1K"), 0);
	assert_int_equal(v, 1024);
	assert_int_equal(parse_as(&v, CONF_SIZE, 0, LLONG_MAX, "2M"), 0);
	assert_int_equal(v, 2 << 20);
	assert_int_equal(parse_as(&v, CONF_SIZE, 0, LLONG_MAX, "3g"), 0);
	assert_int_equal(v, 3LL << 30);
	assert_int_equal(parse_as(&v, CONF_SIZE, 0, LLONG_MAX,
	    "8589934591G"), 0);
	assert_int_equal(v, 8589934591LL << 30);
	v = 5;
	assert_int_equal(parse_as(&v, CONF_SIZE, 0, LLONG_MAX,
	    "99999999999G"), ERR_INVAL);
	assert_int_equal(parse_as(&v, CONF_SIZE, 0, LLONG_MAX,
	    "8589934592G"), ERR_INVAL);
	assert_int_equal(parse_as(&v, CONF_SIZE, 0, LLONG_MAX,
	    "99999999999999999999"), ERR_INVAL);
	assert_int_equal(parse_as(&v, CONF_SIZE, 0, LLONG_MAX, "1T"),
	    ERR_INVAL);
	assert_int_equal(parse_as(&v, CONF_SIZE, 0, LLONG_MAX, "1KB"),
	    ERR_INVAL);
	assert_int_equal(parse_as(&v, CONF_SIZE, 0, LLONG_MAX, "K"),
	    ERR_INVAL);
	assert_int_equal(parse_as(&v, CONF_SIZE, 0, LLONG_MAX, "-1"),
	    ERR_INVAL);
	assert_int_equal(parse_as(&v, CONF_SIZE, 0, LLONG_MAX, ""),
	    ERR_INVAL);
	assert_int_equal(parse_as(&v, CONF_SIZE, 0, LLONG_MAX, "1 K"),
	    ERR_INVAL);
	assert_int_equal(v, 5);		/* unchanged on error */
	assert_int_equal(parse_as(&v, CONF_SIZE, 1024, 4096, "4K"), 0);
	assert_int_equal(parse_as(&v, CONF_SIZE, 1024, 4096, "4097"),
	    ERR_INVAL);
	assert_string_equal(err_msg(), "4097 is out of range [1K, 4K]");
	assert_int_equal(parse_as(&v, CONF_SIZE, 1024, 4096, "1023"),
	    ERR_INVAL);
}

static void
test_common_conf__size_in_file(void **state)
{
	struct tstate		*t = *state;
	struct amanat_conf	 cf;

	assert_int_equal(load(t, &cf, "[keyservice]\nmax_body = 64M\n"), 0);
	assert_int_equal(cf.keyservice.http.max_body, 64LL << 20);
	conf_free(&cf);
	expect_err(t, "[keyservice]\nmax_body = 65537K\n", 2,
	    "keyservice.max_body: 65537K is out of range [1K, 64M]");
	expect_err(t, "[docstore]\nmax_body = 99999999999G\n", 2,
	    "docstore.max_body: '99999999999G' is not a size");
}

static void
test_common_conf__duration_suffixes(void **state)
{
	struct tstate		*t = *state;
	struct amanat_conf	 cf;
	long long		 v = 0;

	assert_int_equal(parse_as(&v, CONF_DURATION, 0, LLONG_MAX, "250ms"),
	    0);
	assert_int_equal(v, 250);
	assert_int_equal(parse_as(&v, CONF_DURATION, 0, LLONG_MAX, "5"), 0);
	assert_int_equal(v, 5000);
	assert_int_equal(parse_as(&v, CONF_DURATION, 0, LLONG_MAX, "5s"), 0);
	assert_int_equal(v, 5000);
	assert_int_equal(parse_as(&v, CONF_DURATION, 0, LLONG_MAX, "2m"), 0);
	assert_int_equal(v, 120000);
	assert_int_equal(parse_as(&v, CONF_DURATION, 0, LLONG_MAX, "3h"), 0);
	assert_int_equal(v, 3 * 3600000LL);
	assert_int_equal(parse_as(&v, CONF_DURATION, 0, LLONG_MAX, "1d"), 0);
	assert_int_equal(v, 86400000LL);
	assert_int_equal(parse_as(&v, CONF_DURATION, 0, LLONG_MAX, "1w"),
	    ERR_INVAL);
	assert_int_equal(parse_as(&v, CONF_DURATION, 0, LLONG_MAX, "1.5s"),
	    ERR_INVAL);
	assert_int_equal(parse_as(&v, CONF_DURATION, 0, LLONG_MAX, "1S"),
	    ERR_INVAL);
	assert_int_equal(parse_as(&v, CONF_DURATION, 0, LLONG_MAX,
	    "9999999999999999d"), ERR_INVAL);
	assert_int_equal(load(t, &cf, "[mailsrv]\nimap_idle_timeout = 1d\n"
	    "smtp_idle_timeout = 1500ms\n"), 0);
	assert_int_equal(cf.mailsrv.imap_idle_timeout, 86400000LL);
	assert_int_equal(cf.mailsrv.smtp_idle_timeout, 1500);
	conf_free(&cf);
	expect_err(t, "[mailsrv]\nimap_idle_timeout = 59s\n", 2,
	    "mailsrv.imap_idle_timeout: 59s is out of range [1m, 1d]");
	expect_err(t, "[mailsrv]\nimap_idle_timeout = 25h\n", 2,
	    "out of range [1m, 1d]");
	expect_err(t, "[docstore]\nidle_timeout = soon\n", 2,
	    "docstore.idle_timeout: 'soon' is not a duration");
}

static void
test_common_conf__bool_enum_str(void **state)
{
	struct tstate		*t = *state;
	struct amanat_conf	 cf;

	assert_int_equal(load(t, &cf, "[node]\nlog_syslog = YES\n"
	    "log_level = trace\nname = \"node 1\"\n[tls]\nmin_version = 1.3\n"),
	    0);
	assert_int_equal(cf.node.log_syslog, 1);
	assert_int_equal(cf.node.log_level, LOG_LVL_TRACE);
	assert_string_equal(cf.node.name, "node 1");
	assert_int_equal(cf.tls.min_version, TLS_MIN_1_3);
	conf_free(&cf);
	assert_int_equal(load(t, &cf, "[node]\nlog_syslog = Off\n"), 0);
	assert_int_equal(cf.node.log_syslog, 0);
	conf_free(&cf);
	expect_err(t, "[node]\nlog_syslog = maybe\n", 2,
	    "node.log_syslog: 'maybe' is not a boolean");
	expect_err(t, "[node]\nlog_level = INFO\n", 2,
	    "node.log_level: 'INFO' is not one of: error, warn, info, debug, "
	    "trace");
	expect_err(t, "[tls]\nmin_version = 1.1\n", 2,
	    "tls.min_version: '1.1' is not one of: 1.2, 1.3");
	expect_err(t, "[node]\nname =\n", 2,
	    "node.name: length 0 is out of range [1, 64]");
}

static void
test_common_conf__addr(void **state)
{
	static const char *const good[] = {
		"127.0.0.1:1", "localhost:65535", "[::1]:8443",
		"mx-1.example.org:25", "[2001:db8::1]:443",
	};
	static const char *const bad[] = {
		"127.0.0.1", ":25", "host:0", "host:65536", "::1:80",
		"[::1]80", "[]:80", "[zz]:80", "ho st:80", "host:", "host:+80",
		"host:-1", "[::1]:", "h_st:80", "",
	};
	struct conf_knob	 k = { "listen", CONF_ADDR, 0, 0, 0, NULL,
	    NULL };
	char			*v = NULL;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (conf_parse_value(&v, &k, good[i]) != 0)
			fail_msg("%s refused: %s", good[i], err_msg());
		assert_string_equal(v, good[i]);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (conf_parse_value(&v, &k, bad[i]) != ERR_INVAL)
			fail_msg("%s accepted", bad[i]);
	assert_string_equal(v, good[4]);
	free(v);
}

static void
test_common_conf__quoting_and_comments(void **state)
{
	struct tstate		*t = *state;
	struct amanat_conf	 cf;

	assert_int_equal(load(t, &cf,
	    "  # indented comment\n"
	    "\t; another\n"
	    "[node]  # trailing comment\n"
	    "name = \" a \\\"b\\\" \\\\ # ; \"   # comment\n"
	    "[mailsrv]\n"
	    "hostname = mx#1 ; comment\n"
	    "[tls]\n"
	    "ciphers\t=\tHIGH:!aNULL\t\n"
	    "ciphersuites = a \"b\" c # x\n"), 0);
	assert_string_equal(cf.node.name, " a \"b\" \\ # ; ");
	assert_string_equal(cf.mailsrv.hostname, "mx#1");
	assert_string_equal(cf.tls.ciphers, "HIGH:!aNULL");
	assert_string_equal(cf.tls.ciphersuites, "a \"b\" c");
	assert_int_equal(conf_line(&cf, "node.name"), 4);
	assert_int_equal(conf_line(&cf, "tls.ciphersuites"), 9);
	conf_free(&cf);
}

static void
test_common_conf__no_final_newline(void **state)
{
	struct tstate		*t = *state;
	struct amanat_conf	 cf;

	assert_int_equal(load(t, &cf, "[node]\nname = last"), 0);
	assert_string_equal(cf.node.name, "last");
	conf_free(&cf);
	expect_err(t, "[node]\nname = \"open", 2, "unterminated quoted value");
}

static void
test_common_conf__unknown_key(void **state)
{
	expect_err(*state, "[mailsrv]\nhostname = a\nfoo = 1\n", 3,
	    "unknown key 'foo' in [mailsrv]");
}

static void
test_common_conf__unknown_section(void **state)
{
	expect_err(*state, "[node]\n\n[smtpd]\nfoo = 1\n", 3,
	    "unknown section [smtpd]");
	expect_err(*state, "[]\n", 1, "empty section name");
	expect_err(*state, "[Node]\n", 1, "in section name");
	expect_err(*state, "[node\n", 1, "unterminated section header");
	expect_err(*state, "[node] x\n", 1, "after section header");
}

static void
test_common_conf__key_outside_section(void **state)
{
	expect_err(*state, "# top\nname = x\n[node]\n", 2,
	    "key 'name' outside any [section]");
}

static void
test_common_conf__bad_keys(void **state)
{
	expect_err(*state, "[node]\nName = x\n", 2, "at start of line");
	expect_err(*state, "[node]\nna-me = x\n", 2, "in key");
	expect_err(*state, "[node]\nname x\n", 2, "expected '=' after key");
	expect_err(*state, "[node]\nname\n", 2, "expected '=' after key");
	expect_err(*state, "[node]\n= x\n", 2, "at start of line");
}

static void
test_common_conf__duplicate_key(void **state)
{
	struct tstate		*t = *state;
	struct amanat_conf	 cf;

	expect_err(t, "[node]\nname = a\nname = b\n", 3,
	    "duplicate key 'name' in [node] (first set on line 2)");
	expect_err(t, "[node]\nname = a\n[tls]\n[node]\nname = b\n", 5,
	    "duplicate key 'name' in [node] (first set on line 2)");
	/* Repeated sections merge. */
	assert_int_equal(load(t, &cf, "[node]\nname = a\n[tls]\n"
	    "min_version = 1.3\n[node]\nlog_level = debug\n"), 0);
	assert_string_equal(cf.node.name, "a");
	assert_int_equal(cf.node.log_level, LOG_LVL_DEBUG);
	assert_int_equal(conf_line(&cf, "node.log_level"), 6);
	conf_free(&cf);
}

static void
test_common_conf__bad_quoting(void **state)
{
	expect_err(*state, "[node]\nname = \"abc\n", 2,
	    "unterminated quoted value");
	expect_err(*state, "[node]\nname = \"abc\" x\n", 2,
	    "after closing quote");
	expect_err(*state, "[node]\nname = \"abc\"x\n", 2,
	    "after closing quote");
	expect_err(*state, "[node]\nname = \"a\\n\"\n", 2, "after \\");
	expect_err(*state, "[node]\nname = \"a\\\n", 2,
	    "unterminated quoted value");
}

static void
test_common_conf__line_max(void **state)
{
	struct tstate		*t = *state;
	struct amanat_conf	 cf;
	char			*text;
	size_t			 vlen, hlen;

	/* "[tls]\n" then "ciphers = " and a value filling CONF_LINE_MAX. */
	text = xmalloc(CONF_LINE_MAX + 64);
	hlen = (size_t)snprintf(text, 64, "[tls]\nciphers = ");
	vlen = CONF_LINE_MAX - (hlen - strlen("[tls]\n"));
	memset(text + hlen, 'A', vlen);
	memcpy(text + hlen + vlen, "\n", 2);
	assert_int_equal(load(t, &cf, text), 0);
	assert_int_equal(strlen(cf.tls.ciphers), vlen);
	conf_free(&cf);
	/* One more byte. */
	memset(text + hlen, 'A', vlen + 1);
	memcpy(text + hlen + vlen + 1, "\n", 2);
	expect_err(t, text, 2, "line longer than 4096 bytes");
	/* A comment line, exactly at and just over the limit. */
	memset(text, '#', CONF_LINE_MAX);
	text[CONF_LINE_MAX] = '\0';
	assert_int_equal(load(t, &cf, text), 0);
	conf_free(&cf);
	memset(text, '#', CONF_LINE_MAX + 1);
	text[CONF_LINE_MAX + 1] = '\0';
	expect_err(t, text, 1, "line longer than 4096 bytes");
	free(text);
}

static void
test_common_conf__control_char(void **state)
{
	struct tstate	*t = *state;
	static const char nul[] = "[node]\nname = a\0b\n";

	expect_bytes_err(t, nul, sizeof(nul) - 1, 2,
	    "control character 0x00");
	expect_err(t, "[node]\r\n", 1, "control character 0x0d");
	expect_err(t, "[node]\n# \x01 in a comment\n", 2,
	    "control character 0x01");
	expect_err(t, "[node]\nname = \"a\x7f\"\n", 2,
	    "control character 0x7f");
	expect_err(t, "[node]\nname = \"a\x1b[0m\"\n", 2,
	    "control character 0x1b");
}

static void
test_common_conf__relative_paths(void **state)
{
	struct tstate		*t = *state;
	struct amanat_conf	 cf;
	char			 want[PATH_MAX + 64];

	/* datadir after the paths that depend on it. */
	assert_int_equal(load(t, &cf, "[tls]\nca = certs/ca.pem\n"
	    "key = /etc/amanat/server.key\ncert = ./c.pem\n"
	    "[node]\ndatadir = data\n"), 0);
	snprintf(want, sizeof(want), "%s/data", cf.dir);
	assert_string_equal(cf.node.datadir, want);
	snprintf(want, sizeof(want), "%s/data/certs/ca.pem", cf.dir);
	assert_string_equal(cf.tls.ca, want);
	snprintf(want, sizeof(want), "%s/data/c.pem", cf.dir);
	assert_string_equal(cf.tls.cert, want);
	assert_string_equal(cf.tls.key, "/etc/amanat/server.key");
	snprintf(want, sizeof(want), "%s/data/keys/master.key", cf.dir);
	assert_string_equal(cf.keyservice.master_key, want);
	conf_free(&cf);

	assert_int_equal(load(t, &cf, "[node]\ndatadir = /srv/amanat\n"), 0);
	assert_string_equal(cf.node.datadir, "/srv/amanat");
	assert_string_equal(cf.tls.ca, "/srv/amanat/ca.pem");
	conf_free(&cf);
	expect_err(t, "[node]\ndatadir =\n", 2, "node.datadir: expected a "
	    "path");
}

static void
test_common_conf__check_files(void **state)
{
	struct tstate		*t = *state;
	struct amanat_conf	 cf;
	char			 want[PATH_MAX + 64];

	write_under(t, "d/ca.pem", "ca\n", 0644);
	write_under(t, "d/tls/server.pem", "cert\n", 0644);
	write_under(t, "d/tls/server.key", "key\n", 0644);
	write_under(t, "d/keys/master.key", "master\n", 0600);
	write_under(t, "d/clients/mailsrv.pem", "cert\n", 0644);
	write_under(t, "d/clients/mailsrv.key", "key\n", 0600);
	write_under(t, "d/clients/docstore.pem", "cert\n", 0644);
	write_under(t, "d/clients/docstore.key", "key\n", 0600);
	write_under(t, "d/clients/admin.pem", "cert\n", 0644);
	write_under(t, "d/clients/admin.key", "key\n", 0600);
	assert_int_equal(load(t, &cf, "[node]\ndatadir = d\n\n[tls]\n"
	    "key = tls/server.key\n"), 0);
	assert_int_equal(conf_check_files(&cf), ERR_PERM);
	snprintf(want, sizeof(want), "%s:5: tls.key: %s: ", t->path,
	    cf.tls.key);
	if (strncmp(err_msg(), want, strlen(want)) != 0)
		fail_msg("got \"%s\", want \"%s...\"", err_msg(), want);
	assert_int_equal(chmod(cf.tls.key, 0600), 0);
	assert_int_equal(conf_check_files(&cf), 0);
	/* A defaulted knob has no line. */
	assert_int_equal(unlink(cf.keyservice.master_key), 0);
	assert_int_equal(conf_check_files(&cf), ERR_NOTFOUND);
	snprintf(want, sizeof(want), "%s: keyservice.master_key: ", t->path);
	if (strncmp(err_msg(), want, strlen(want)) != 0)
		fail_msg("got \"%s\", want \"%s...\"", err_msg(), want);
	write_under(t, "d/keys/master.key", "master\n", 0640);
	assert_int_equal(conf_check_files(&cf), ERR_PERM);
	assert_int_equal(chmod(cf.keyservice.master_key, 0600), 0);
	/* cert and ca must exist. */
	assert_int_equal(unlink(cf.tls.ca), 0);
	assert_int_equal(conf_check_files(&cf), ERR_NOTFOUND);
	snprintf(want, sizeof(want), "%s: tls.ca: ", t->path);
	if (strncmp(err_msg(), want, strlen(want)) != 0)
		fail_msg("got \"%s\", want \"%s...\"", err_msg(), want);
	conf_free(&cf);
}

static void
cmp_knobs(struct amanat_conf *a, struct amanat_conf *b)
{
	const struct conf_knob	*k;
	size_t			 i, j;

	for (i = 0; i < conf_nsections; i++) {
		for (j = 0; j < conf_sections[i].nknobs; j++) {
			k = &conf_sections[i].knobs[j];
			switch (k->type) {
			case CONF_BOOL:
			case CONF_ENUM:
				assert_int_equal(*(int *)field(a, k),
				    *(int *)field(b, k));
				break;
			case CONF_INT:
			case CONF_SIZE:
			case CONF_DURATION:
				assert_int_equal(*(long long *)field(a, k),
				    *(long long *)field(b, k));
				break;
			default:
				assert_string_equal(*(char **)field(a, k),
				    *(char **)field(b, k));
				break;
			}
		}
	}
}

static void
test_common_conf__example_loads(void **state)
{
	struct tstate		*t = *state;
	struct amanat_conf	 ex, def;
	char			*data, key[256];
	size_t			 len, i, j;

	/* From the repository, by a path relative to the cwd. */
	if (conf_load(&ex, EXAMPLE_CONF) != 0)
		fail_msg("%s: %s", EXAMPLE_CONF, err_msg());
	/* The example sets (documents) every knob. */
	for (i = 0; i < conf_nsections; i++) {
		for (j = 0; j < conf_sections[i].nknobs; j++) {
			snprintf(key, sizeof(key), "%s.%s",
			    conf_sections[i].name,
			    conf_sections[i].knobs[j].name);
			if (conf_line(&ex, key) == 0)
				fail_msg("%s does not set %s", EXAMPLE_CONF,
				    key);
		}
	}
	conf_free(&ex);
	/* Its values are the defaults (same directory, so same paths). */
	assert_int_equal(file_read_all(&data, &len, EXAMPLE_CONF,
	    CONF_FILE_MAX), 0);
	assert_int_equal(conf_load_buffer(&ex, t->path, data, len), 0);
	assert_int_equal(conf_load_buffer(&def, t->path, "", 0), 0);
	cmp_knobs(&ex, &def);
	conf_free(&ex);
	conf_free(&def);
	free(data);
}

static void
test_common_conf__file_errors(void **state)
{
	struct tstate		*t = *state;
	struct amanat_conf	 cf;
	char			 path[PATH_MAX + 16], *big;

	snprintf(path, sizeof(path), "%s/nope.conf", t->dir);
	assert_int_equal(conf_load(&cf, path), ERR_NOTFOUND);
	assert_zeroed(&cf);
	big = xmalloc(CONF_FILE_MAX + 1);
	memset(big, '\n', CONF_FILE_MAX + 1);
	assert_int_equal(load_bytes(t, &cf, big, CONF_FILE_MAX + 1),
	    ERR_INVAL);
	assert_zeroed(&cf);
	assert_int_equal(load_bytes(t, &cf, big, CONF_FILE_MAX), 0);
	conf_free(&cf);
	assert_int_equal(conf_load_buffer(&cf, t->path, big,
	    CONF_FILE_MAX + 1), ERR_INVAL);
	assert_zeroed(&cf);
	free(big);
}

static void
test_common_conf__load_buffer(void **state)
{
	struct tstate		*t = *state;
	struct amanat_conf	 cf;
	static const char	 text[] = "[docstore]\nlisten = [::1]:9443\n";
	char			 want[PATH_MAX + 16];

	assert_int_equal(conf_load_buffer(&cf, t->path, text,
	    sizeof(text) - 1), 0);
	assert_string_equal(cf.docstore.http.listen, "[::1]:9443");
	assert_string_equal(cf.dir, t->dir);
	conf_free(&cf);
	assert_int_equal(conf_load_buffer(&cf, t->path, "[x]", 3), ERR_INVAL);
	snprintf(want, sizeof(want), "%s:1: unknown section [x]", t->path);
	assert_string_equal(err_msg(), want);
	assert_zeroed(&cf);
}

#define T(name)	cmocka_unit_test_setup_teardown(test_common_conf__##name, \
	setup, teardown)

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		T(defaults),
		T(int_limits),
		T(size_suffixes),
		T(size_in_file),
		T(duration_suffixes),
		T(bool_enum_str),
		T(addr),
		T(quoting_and_comments),
		T(no_final_newline),
		T(unknown_key),
		T(unknown_section),
		T(key_outside_section),
		T(bad_keys),
		T(duplicate_key),
		T(bad_quoting),
		T(line_max),
		T(control_char),
		T(relative_paths),
		T(check_files),
		T(example_loads),
		T(file_errors),
		T(load_buffer),
	};
	int	rc;

	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	fflush(stdout);
	fflush(stderr);
	return rc;
}
