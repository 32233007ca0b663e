/*
 * conf.h -- the node configuration file.
 *
 * One file per node (conf/amanat.conf is the documented example), INI-like:
 *
 *	# comment
 *	[section]
 *	key = value		; value to end of line, trimmed
 *	key = "quoted value"	; \" and \\ escapes inside quotes
 *
 * Every section and key is declared in a knob table (common/nodeconf.c)
 * with its type, bounds and default; anything else is an error.  Every
 * daemon parses the whole file, so one daemon's -n check validates all
 * sections.  Errors are reported as "file:line: message".
 *
 * Relative paths: [node] datadir is relative to the directory holding the
 * config file; every other path is relative to datadir.  conf_load()
 * stores absolute (joined) paths.
 */
#ifndef COMMON_CONF_H
#define COMMON_CONF_H

#include <stddef.h>

#define CONF_LINE_MAX	4096	/* longest config line */
#define CONF_FILE_MAX	(1024 * 1024)

enum conf_type {
	CONF_STR,	/* char *; bounds are length bounds */
	CONF_INT,	/* long long */
	CONF_SIZE,	/* long long bytes; suffixes K M G (1024-based) */
	CONF_DURATION,	/* long long milliseconds; suffixes ms s m h d,
			 * a bare number is seconds */
	CONF_BOOL,	/* int; yes/no true/false on/off 1/0 */
	CONF_ENUM,	/* int index into the knob's enums[] */
	CONF_ADDR,	/* char * "host:port" or "[v6]:port", port 1-65535 */
	CONF_PATH,	/* char *, joined to datadir */
	CONF_SECRET,	/* char * path to a secret file: joined to datadir;
			 * conf_check_files() refuses it if group/other
			 * may access it */
};

struct conf_knob {
	const char		*name;
	enum conf_type		 type;
	size_t			 offset;	/* into struct amanat_conf */
	long long		 min, max;
	const char		*def;		/* default, as text; NULL = unset */
	const char *const	*enums;		/* NULL-terminated, CONF_ENUM */
};

struct conf_section {
	const char		*name;
	const struct conf_knob	*knobs;		/* sorted by name (bsearch) */
	size_t			 nknobs;
};

/* Where each knob was set, for file:line messages after parsing. */
struct conf_origin {
	const char	*key;	/* "section.key" */
	int		 line;
};

enum tls_min { TLS_MIN_1_2 = 0, TLS_MIN_1_3 };

/* The knobs every HTTPS API section has ([keyservice], [docstore]). */
struct conf_httpd {
	char		*listen;
	long long	 max_connections;
	long long	 idle_timeout;
	long long	 max_body;
	long long	 output_limit;
};

struct amanat_conf {
	char	*path;		/* the config file as given */
	char	*dir;		/* its directory (absolute) */

	struct {
		char		*name;
		char		*datadir;
		int		 log_level;	/* enum log_level */
		int		 log_syslog;
		long long	 max_open_files;
	} node;

	struct {
		char		*ca;		/* CA bundle clients trust */
		char		*cert;		/* server certificate chain */
		char		*key;		/* its private key (secret) */
		char		*ciphers;	/* TLS 1.2 cipher list */
		char		*ciphersuites;	/* TLS 1.3 suites */
		int		 min_version;	/* enum tls_min */
		char		*server_names;	/* SANs of the server cert
						 * issued at node init */
	} tls;

	struct {
		struct conf_httpd http;
		char		*master_key;	/* secret */
		long long	 map_size;
		char		*crl_listen;	/* plain HTTP: CRL, CA cert */
		char		*crl_url;	/* named in issued certs */
		long long	 argon2_memory;	/* bytes */
		long long	 argon2_time;
		long long	 argon2_lanes;
		long long	 workers;
		long long	 login_free_failures;
		long long	 login_delay;	/* ms, doubles per failure */
		long long	 login_max_delay;
		long long	 login_window;
	} keyservice;

	/* How a service or the CLI reaches keyservice (mutual TLS). */

	struct {
		char		*cert;		/* client certificate */
		char		*key;		/* its key (secret) */
	} mailsrv_client, docstore_client, cli;

	struct {
		char		*hostname;
		char		*smtp_listen;
		char		*submission_listen;
		char		*smtps_listen;
		char		*imap_listen;
		char		*imaps_listen;
		long long	 max_connections;
		long long	 smtp_max_per_ip;	/* 0: no limit */
		long long	 imap_max_per_ip;
		long long	 smtp_idle_timeout;
		long long	 imap_idle_timeout;
		long long	 output_limit;
		long long	 map_size;
		long long	 max_message_size;
		long long	 max_recipients;
		char		*postmaster;	/* RCPT TO:<postmaster>, or "" */
		long long	 quota;		/* per user, 0: none */
		long long	 queue_lifetime;	/* ms */
		long long	 delay_warning;		/* ms, 0: never */
		int		 direct_delivery;
		long long	 retry_min;		/* ms */
		long long	 retry_max;		/* ms */
		long long	 workers;
		char		*api_listen;	/* HTTPS admin/audit API */
		char		*relay_routes;	/* "domain=host:port,..." */
		char		*relay_tls_domains;	/* TLS required */
		long long	 relay_port;	/* of MX hosts found in DNS */
		char		*dns_resolver;	/* "ip[@port]", or "" */
		long long	 dns_timeout;		/* ms, one MX lookup */
	} mailsrv;

	struct {
		struct conf_httpd http;
	} docstore;

	struct conf_origin	*origins;
	size_t			 norigins;
};

/*
 * Parse path into cf (zeroed first, defaults applied).  On error returns
 * ERR_INVAL (or ERR_NOTFOUND/ERR_IO for the file itself) with err_msg()
 * "file:line: message"; cf is then freed and zeroed.
 */
int	conf_load(struct amanat_conf *, const char *);
/*
 * The same from memory (at most CONF_FILE_MAX bytes; NUL is an error):
 * path is used for messages and its directory for relative paths.
 */
int	conf_load_buffer(struct amanat_conf *, const char *, const char *,
	    size_t);
/*
 * Check the files the config names: CONF_SECRET knobs must be private
 * (ERR_PERM), and cert/key/ca files must exist when set.  Same message
 * format.  Done by -n and at daemon start.
 */
int	conf_check_files(const struct amanat_conf *);
void	conf_free(struct amanat_conf *);
/* The line a "section.key" was set on, or 0 if it took its default. */
int	conf_line(const struct amanat_conf *, const char *);

/* The schema: every section of the node file (common/nodeconf.c). */
extern const struct conf_section	 conf_sections[];
extern const size_t			 conf_nsections;

/* Parse one value of the given knob type (exposed for tests and fuzzing). */
int	conf_parse_value(void *, const struct conf_knob *, const char *);

#endif
