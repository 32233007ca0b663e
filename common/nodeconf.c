/*
 * nodeconf.c -- the schema of the node configuration file.
 *
 * One table of knobs per section of struct amanat_conf: name, type,
 * field offset, bounds and default (as text, parsed like the file).
 * Knobs must stay sorted by name within a section (conf.c looks them up
 * with bsearch and checks the order at load).  Durations are in
 * milliseconds, sizes in bytes.  conf/amanat.conf documents every knob
 * here; change both together.
 *
 * The defaults are those of the demo node: unprivileged, on 127.0.0.1,
 * with the ports of shared/design.md (docstore 8443, keyservice 8444,
 * mail on 2xxx).
 *
 * Runs in: every daemon and the CLI (read-only data).
 * Failure policy: none (tables only); a bad default is fatalx() at load.
 * SECURITY: CONF_SECRET knobs name files that conf_check_files() refuses
 * when group or others may access them.
 */
#include <stddef.h>

#include "common/conf.h"
#include "common/tls.h"
#include "common/util.h"

#define OFF(f)		offsetof(struct amanat_conf, f)

#define KIB		(1LL << 10)
#define MIB		(1LL << 20)
#define GIB		(1LL << 30)
#define TIB		(1LL << 40)

#define SEC		1000LL
#define MIN		(60 * SEC)
#define DAY		(24 * 60 * MIN)

#define CONNS_MAX	1000000

static const char *const log_levels[] = {
	"error", "warn", "info", "debug", "trace", NULL	/* enum log_level */
};

static const char *const tls_versions[] = {
	"1.2", "1.3", NULL				/* enum tls_min */
};

static const struct conf_knob node_knobs[] = {
	{ "datadir", CONF_PATH, OFF(node.datadir), 0, 0, ".", NULL },
	{ "log_level", CONF_ENUM, OFF(node.log_level), 0, 0, "info",
	    log_levels },
	{ "log_syslog", CONF_BOOL, OFF(node.log_syslog), 0, 1, "no", NULL },
	{ "max_open_files", CONF_INT, OFF(node.max_open_files), 64, 1048576,
	    "65536", NULL },
	{ "name", CONF_STR, OFF(node.name), 1, 64, "amanat", NULL },
};

static const struct conf_knob tls_knobs[] = {
	{ "ca", CONF_PATH, OFF(tls.ca), 0, 0, "ca.pem", NULL },
	{ "cert", CONF_PATH, OFF(tls.cert), 0, 0, "tls/server.pem", NULL },
	{ "ciphers", CONF_STR, OFF(tls.ciphers), 1, 0, AMANAT_TLS_CIPHERS,
	    NULL },
	{ "ciphersuites", CONF_STR, OFF(tls.ciphersuites), 1, 0,
	    AMANAT_TLS_CIPHERSUITES, NULL },
	{ "key", CONF_SECRET, OFF(tls.key), 0, 0, "tls/server.key", NULL },
	{ "min_version", CONF_ENUM, OFF(tls.min_version), 0, 0, "1.2",
	    tls_versions },
	{ "server_names", CONF_STR, OFF(tls.server_names), 1, 1024,
	    "localhost,127.0.0.1,::1", NULL },
};

static const struct conf_knob keyservice_knobs[] = {
	{ "argon2_lanes", CONF_INT, OFF(keyservice.argon2_lanes), 1, 16, "1",
	    NULL },
	{ "argon2_memory", CONF_SIZE, OFF(keyservice.argon2_memory), 1 * MIB,
	    1 * GIB, "64M", NULL },
	{ "argon2_time", CONF_INT, OFF(keyservice.argon2_time), 1, 20, "3",
	    NULL },
	{ "crl_listen", CONF_ADDR, OFF(keyservice.crl_listen), 0, 0,
	    "127.0.0.1:8445", NULL },
	{ "crl_url", CONF_STR, OFF(keyservice.crl_url), 1, 256,
	    "http://127.0.0.1:8445/crl.der", NULL },
	{ "idle_timeout", CONF_DURATION, OFF(keyservice.http.idle_timeout),
	    1 * SEC, 1 * DAY, "60s", NULL },
	{ "listen", CONF_ADDR, OFF(keyservice.http.listen), 0, 0,
	    "127.0.0.1:8444", NULL },
	{ "login_delay", CONF_DURATION, OFF(keyservice.login_delay), 1,
	    1 * MIN, "1s", NULL },
	{ "login_free_failures", CONF_INT,
	    OFF(keyservice.login_free_failures), 1, 100, "5", NULL },
	{ "login_max_delay", CONF_DURATION, OFF(keyservice.login_max_delay),
	    1 * SEC, 1 * DAY, "15m", NULL },
	{ "login_window", CONF_DURATION, OFF(keyservice.login_window),
	    1 * MIN, 1 * DAY, "15m", NULL },
	{ "map_size", CONF_SIZE, OFF(keyservice.map_size), 1 * MIB, 1 * TIB,
	    "64M", NULL },
	{ "master_key", CONF_SECRET, OFF(keyservice.master_key), 0, 0,
	    "keys/master.key", NULL },
	{ "max_body", CONF_SIZE, OFF(keyservice.http.max_body), 1 * KIB, 64 * MIB,
	    "1M", NULL },
	{ "max_connections", CONF_INT, OFF(keyservice.http.max_connections), 1,
	    CONNS_MAX, "10000", NULL },
	{ "output_limit", CONF_SIZE, OFF(keyservice.http.output_limit), 4 * KIB,
	    1 * GIB, "4M", NULL },
	{ "workers", CONF_INT, OFF(keyservice.workers), 1, 64, "2", NULL },
};

static const struct conf_knob mailsrv_knobs[] = {
	{ "api_listen", CONF_ADDR, OFF(mailsrv.api_listen), 0, 0,
	    "127.0.0.1:2444", NULL },
	{ "delay_warning", CONF_DURATION, OFF(mailsrv.delay_warning), 0,
	    30 * DAY, "4h", NULL },
	{ "direct_delivery", CONF_BOOL, OFF(mailsrv.direct_delivery), 0, 1,
	    "yes", NULL },
	{ "dns_resolver", CONF_STR, OFF(mailsrv.dns_resolver), 0, 63, "",
	    NULL },
	{ "dns_timeout", CONF_DURATION, OFF(mailsrv.dns_timeout), 1 * SEC,
	    5 * MIN, "30s", NULL },
	{ "hostname", CONF_STR, OFF(mailsrv.hostname), 1, 253, "localhost",
	    NULL },
	{ "imap_idle_timeout", CONF_DURATION, OFF(mailsrv.imap_idle_timeout),
	    1 * MIN, 1 * DAY, "30m", NULL },
	{ "imap_listen", CONF_ADDR, OFF(mailsrv.imap_listen), 0, 0,
	    "127.0.0.1:2143", NULL },
	{ "imap_max_connections_per_ip", CONF_INT,
	    OFF(mailsrv.imap_max_per_ip), 0, CONNS_MAX, "1000", NULL },
	{ "imaps_listen", CONF_ADDR, OFF(mailsrv.imaps_listen), 0, 0,
	    "127.0.0.1:2993", NULL },
	{ "map_size", CONF_SIZE, OFF(mailsrv.map_size), 1 * MIB, 1 * TIB,
	    "256M", NULL },
	{ "max_connections", CONF_INT, OFF(mailsrv.max_connections), 1,
	    CONNS_MAX, "10000", NULL },
	{ "max_message_size", CONF_SIZE, OFF(mailsrv.max_message_size), 1 * KIB,
	    1 * GIB, "25M", NULL },
	{ "max_recipients", CONF_INT, OFF(mailsrv.max_recipients), 1, 10000,
	    "100", NULL },
	{ "output_limit", CONF_SIZE, OFF(mailsrv.output_limit), 4 * KIB,
	    1 * GIB, "4M", NULL },
	{ "postmaster", CONF_STR, OFF(mailsrv.postmaster), 0, 320, "", NULL },
	{ "queue_lifetime", CONF_DURATION, OFF(mailsrv.queue_lifetime),
	    1 * MIN, 30 * DAY, "5d", NULL },
	{ "quota", CONF_SIZE, OFF(mailsrv.quota), 0, 1024 * GIB, "2G", NULL },
	{ "relay_port", CONF_INT, OFF(mailsrv.relay_port), 1, 65535, "25",
	    NULL },
	{ "relay_routes", CONF_STR, OFF(mailsrv.relay_routes), 0, 4096, "",
	    NULL },
	{ "relay_tls_domains", CONF_STR, OFF(mailsrv.relay_tls_domains), 0,
	    4096, "", NULL },
	{ "retry_max", CONF_DURATION, OFF(mailsrv.retry_max), 1 * SEC,
	    1 * DAY, "1h", NULL },
	{ "retry_min", CONF_DURATION, OFF(mailsrv.retry_min), 1 * SEC,
	    1 * DAY, "5m", NULL },
	{ "smtp_idle_timeout", CONF_DURATION, OFF(mailsrv.smtp_idle_timeout),
	    1 * SEC, 1 * DAY, "300s", NULL },
	{ "smtp_listen", CONF_ADDR, OFF(mailsrv.smtp_listen), 0, 0,
	    "127.0.0.1:2525", NULL },
	{ "smtp_max_connections_per_ip", CONF_INT,
	    OFF(mailsrv.smtp_max_per_ip), 0, CONNS_MAX, "50", NULL },
	{ "smtps_listen", CONF_ADDR, OFF(mailsrv.smtps_listen), 0, 0,
	    "127.0.0.1:2465", NULL },
	{ "submission_listen", CONF_ADDR, OFF(mailsrv.submission_listen), 0,
	    0, "127.0.0.1:2587", NULL },
	{ "workers", CONF_INT, OFF(mailsrv.workers), 1, 64, "4", NULL },
};

static const struct conf_knob docstore_knobs[] = {
	{ "idle_timeout", CONF_DURATION, OFF(docstore.http.idle_timeout),
	    1 * SEC, 1 * DAY, "60s", NULL },
	{ "listen", CONF_ADDR, OFF(docstore.http.listen), 0, 0, "127.0.0.1:8443",
	    NULL },
	{ "max_body", CONF_SIZE, OFF(docstore.http.max_body), 1 * KIB, 4 * GIB,
	    "256M", NULL },
	{ "max_connections", CONF_INT, OFF(docstore.http.max_connections), 1,
	    CONNS_MAX, "10000", NULL },
	{ "output_limit", CONF_SIZE, OFF(docstore.http.output_limit), 4 * KIB,
	    1 * GIB, "4M", NULL },
};

static const struct conf_knob mailsrv_client_knobs[] = {
	{ "cert", CONF_PATH, OFF(mailsrv_client.cert), 0, 0,
	    "clients/mailsrv.pem", NULL },
	{ "key", CONF_SECRET, OFF(mailsrv_client.key), 0, 0,
	    "clients/mailsrv.key", NULL },
};

static const struct conf_knob docstore_client_knobs[] = {
	{ "cert", CONF_PATH, OFF(docstore_client.cert), 0, 0,
	    "clients/docstore.pem", NULL },
	{ "key", CONF_SECRET, OFF(docstore_client.key), 0, 0,
	    "clients/docstore.key", NULL },
};

static const struct conf_knob cli_knobs[] = {
	{ "cert", CONF_PATH, OFF(cli.cert), 0, 0, "clients/admin.pem", NULL },
	{ "key", CONF_SECRET, OFF(cli.key), 0, 0, "clients/admin.key", NULL },
};

#define SECTION(n, k)	{ n, k, nitems(k) }

const struct conf_section conf_sections[] = {
	SECTION("node", node_knobs),
	SECTION("tls", tls_knobs),
	SECTION("keyservice", keyservice_knobs),
	SECTION("mailsrv", mailsrv_knobs),
	SECTION("docstore", docstore_knobs),
	SECTION("mailsrv_client", mailsrv_client_knobs),
	SECTION("docstore_client", docstore_client_knobs),
	SECTION("cli", cli_knobs),
};

const size_t conf_nsections = nitems(conf_sections);
