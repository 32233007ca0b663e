/*
 * cli.h -- the amanat admin CLI: parsed commands, the keyservice HTTPS
 * client, output helpers and the command handlers.
 *
 * The CLI is a client of the node's APIs (docs/keyservice-api.md,
 * mailsrv's admin API for the mail commands, the daemons' audit APIs); it
 * includes only common/ and this header, never a service's headers.
 * Everything but main() lives in libcli.a so the unit tests
 * (tests/unit/test_cli_*.c) can call the pure parts: argument parsing,
 * percent-encoding, response parsing and table formatting.
 *
 * Runs in: the admin's shell (build/amanat).
 * Failure policy: a handler returns the process exit status (CLI_EXIT_*)
 * after printing one "amanat: ..." line on stderr.
 * SECURITY: passwords and passphrases live in fixed buffers that are
 * wiped after use; the server is verified against the node CA and its
 * name or IP, and the CLI presents its own client certificate.
 */
#ifndef KEYSERVICE_CLI_CLI_H
#define KEYSERVICE_CLI_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/buf.h"
#include "common/conf.h"

/* Exit statuses. */
#define CLI_EXIT_OK		0
#define CLI_EXIT_API		1	/* the API refused (4xx/5xx), or down */
#define CLI_EXIT_CONFIG		2	/* config file, certificate or key */
#define CLI_EXIT_CONNECT	3	/* cannot connect, TLS, bad response */
#define CLI_EXIT_USAGE		64	/* EX_USAGE */

#define CLI_DEFAULT_CONF	"/etc/amanat/amanat.conf"

/* Limits. */
#define CLI_BODY_MAX		(16 * 1024 * 1024)	/* response body */
#define CLI_HEAD_MAX		(64 * 1024)	/* status line + headers */
#define CLI_HEADERS_MAX		100		/* header fields */
#define CLI_CONNECT_TIMEOUT_MS	10000
#define CLI_IO_TIMEOUT_MS	120000		/* per read or write */
#define CLI_SECRET_MAX		1024	/* password/passphrase bytes (API) */
#define CLI_MULTI_MAX		32	/* repeated --domain / --role */
#define CLI_PATH_MAX		2048	/* request target */

enum cli_verb {
	CLI_NONE = 0,
	CLI_STATUS,
	CLI_INIT,
	CLI_DEPT_ADD,
	CLI_DEPT_LIST,
	CLI_USER_ADD,
	CLI_USER_LIST,
	CLI_USER_SHOW,
	CLI_USER_PASSWD,
	CLI_USER_SUSPEND,
	CLI_USER_ACTIVATE,
	CLI_USER_DELETE,
	CLI_CERT_ISSUE,		/* S/MIME pair for ADDRESS */
	CLI_CERT_CLIENT,	/* cert issue --client CN */
	CLI_CERT_LIST,
	CLI_CERT_SHOW,
	CLI_CERT_REVOKE,
	CLI_CERT_EXPORT,
	CLI_KEY_ROTATE,
	CLI_KEY_SHOW,
	CLI_AUDIT_QUERY,
	CLI_AUDIT_VERIFY,
	CLI_AUDIT_EXPORT,
	CLI_AUDIT_VERIFY_EXPORT,	/* offline: no config needed */
	CLI_MAIL_QUEUE_LIST,
	CLI_MAIL_QUEUE_SHOW,
	CLI_MAIL_QUEUE_RETRY,
	CLI_MAIL_QUEUE_DELETE,
	CLI_MAIL_MAILBOXES,
	CLI_MAIL_MESSAGES,
};

/*
 * A parsed command line.  Strings are borrowed from argv.  group names
 * the command group ("user", ...) once known, for usage messages.
 */
struct cli_cmd {
	/* global options */
	const char	*conf;
	const char	*cert;
	const char	*key;
	int		 json;
	int		 help;

	enum cli_verb	 verb;
	const char	*group;
	const char	*arg;		/* NAME, ADDRESS, SERIAL, KEY_ID, CN, ID */
	const char	*arg2;		/* a second positional: MAILBOX */
	const char	*display_name;
	const char	*domains[CLI_MULTI_MAX];
	size_t		 ndomains;
	const char	*roles[CLI_MULTI_MAX];
	size_t		 nroles;
	const char	*dept;
	const char	*out;
	const char	*out_cert;
	const char	*out_key;
	const char	*reason;
	int		 demo;
	int		 password_stdin;
	int		 passphrase_stdin;
	/* audit (validated by cmd_audit.c) */
	const char	*actor;
	const char	*object;
	const char	*action;
	const char	*outcome;
	const char	*since;
	const char	*until;
	const char	*limit;
	const char	*services[CLI_MULTI_MAX];
	size_t		 nservices;
	const char	*state;
	const char	*from;
	const char	*to;
	const char	*ca;
	int		 quick;
};

/*
 * args.c: parse argv (global options, command, its options) into cmd.
 * ERR_INVAL with err_msg() on a usage error; cmd->group tells which
 * usage to print.  Uses getopt_long (resets optind).
 */
int	cli_parse(struct cli_cmd *, int, char **);
/* Usage for group (NULL: everything). */
void	cli_usage(FILE *, const char *);

/* ------------------------------------------------------------ client.c */

/* A parsed HTTP response; body points into the buffer parsed. */
struct cli_resp {
	int			 status;
	size_t			 head_len;
	int			 has_length;
	uint64_t		 content_length;
	const unsigned char	*body;
	size_t			 body_len;
	json_t			*json;		/* NULL: no body, or not JSON */
};

/*
 * Parse a response held in data[0..len).  final: no more bytes will
 * come (EOF).  Returns 0 when complete (resp filled, resp->json owned by
 * the caller), ERR_AGAIN when more bytes are needed, ERR_PROTO on a
 * malformed or truncated response, ERR_TOOBIG when the head exceeds
 * CLI_HEAD_MAX or the body exceeds max.
 */
int	cli_resp_parse(struct cli_resp *, const unsigned char *, size_t,
	    size_t, int);
void	cli_resp_clear(struct cli_resp *);

/*
 * Percent-encode s as one path segment or query value (everything but
 * RFC 3986 unreserved characters).  ERR_TOOBIG if it does not fit.
 */
int	cli_pct_encode(char *, size_t, const char *);

/*
 * out = prefix + percent-encoded arg + suffix (suffix may be NULL): a
 * request target such as /v1/users/a%40b.example/password.
 */
int	cli_target(char *, size_t, const char *, const char *, const char *);

/* Split "host:port" / "[v6]:port"; ERR_INVAL if malformed. */
int	cli_addr_split(char *, size_t, char *, size_t, const char *);

/* A TLS connection with a timeout on every read and write. */
struct cli_conn {
	int	 fd;
	SSL	*ssl;
};

/*
 * Connect to addr and handshake, verifying the server certificate
 * chain (ctx) and its name or IP against the host part of addr.
 * ERR_IO / ERR_GENERIC with err_msg() on failure.
 */
int	cli_conn_open(struct cli_conn *, SSL_CTX *, const char *);
void	cli_conn_close(struct cli_conn *);

/* The keyservice API client. */
struct cli_client {
	SSL_CTX		*ctx;
	const char	*addr;		/* [keyservice] listen (borrowed) */
};

/*
 * Build the mTLS context: server verified against ca, cert/key
 * presented.  ERR_INVAL/ERR_IO/ERR_GENERIC with err_msg().
 */
int	cli_client_init(struct cli_client *, const char *, const char *,
	    const char *, const char *);
void	cli_client_free(struct cli_client *);

/*
 * One request: method, target (already encoded), optional JSON body.
 * On 0, resp holds the status and JSON (any status; the caller decides).
 * ERR_IO/ERR_GENERIC (connect, TLS), ERR_PROTO, ERR_TOOBIG otherwise.
 * Request and response bytes are wiped after use.
 */
int	cli_request(struct cli_resp *, struct cli_client *, const char *,
	    const char *, json_t *);

/* ------------------------------------------------------------ output.c */

/* A text table; columns are sized to their content. */
struct cli_table;

struct cli_table *cli_table_new(size_t, const char *const *);
/* Append a row of ncols cells (NULL prints "-"); cells are copied. */
void	cli_table_add(struct cli_table *, const char *const *);
/* Format into out: header, rows, two spaces between columns. */
int	cli_table_format(const struct cli_table *, struct buf *);
void	cli_table_print(const struct cli_table *, FILE *);
void	cli_table_free(struct cli_table **);

/* Display width of UTF-8 text (code points; controls count as one). */
size_t	cli_text_width(const char *);

/* "2024-05-01 12:00:00Z" for epoch seconds; "-" for <= 0. */
void	cli_fmt_time(char *, size_t, long long);
/*
 * A JSON value as a table cell: strings as is, integers, booleans, arrays
 * of strings joined with ",", times (when is_time) formatted.
 */
void	cli_fmt_value(char *, size_t, const json_t *, int);

/* Pretty JSON (JSON_INDENT(2)) and a newline. */
void	cli_print_json(FILE *, const json_t *);
/*
 * "key: value" lines for the named fields of obj (labels aligned);
 * fields whose name ends in a time suffix are formatted as times.
 */
void	cli_print_fields(FILE *, const json_t *, const char *const *);

/*
 * Report a refused request: "amanat: <message> (HTTP <status>)"; returns
 * CLI_EXIT_API.
 */
int	cli_api_error(const struct cli_resp *);
/* Map a cli_request() failure to a message and exit status. */
int	cli_transport_error(int);

/* ------------------------------------------------------------ secret.c */

/*
 * Read a secret (what: "password" or "passphrase"): from stdin's first
 * line when from_stdin, else from the terminal with echo off (prompted,
 * asked twice when confirm is set).
 * Refuses an empty secret and one over CLI_SECRET_MAX bytes (ERR_INVAL).
 * buf must hold CLI_SECRET_MAX + 1 bytes; the caller wipes it.
 */
int	cli_read_secret(char *, size_t, int, const char *, int);
/* A jansson allocator that wipes memory it frees (set in main). */
void	cli_json_wiping_alloc(void);

/* ------------------------------------------------------------ commands */

/* What every command handler gets. */
struct cli_ctx {
	const struct cli_cmd		*cmd;
	const struct amanat_conf	*cf;
	struct cli_client		 client;
};

/*
 * Send a request and handle failures: on a 2xx answer *out holds the
 * JSON (caller decrefs) and 0 is returned; otherwise the error has been
 * printed and the exit status is returned.
 */
int	cli_call(json_t **, struct cli_ctx *, const char *, const char *,
	    json_t *);

int	cli_cmd_status(const struct cli_cmd *, const struct amanat_conf *);
int	cli_cmd_init(const struct cli_cmd *, const struct amanat_conf *);
int	cli_cmd_dept(struct cli_ctx *);
int	cli_cmd_user(struct cli_ctx *);
int	cli_cmd_cert(struct cli_ctx *);
int	cli_cmd_key(struct cli_ctx *);

/* ------------------------------------------------------------ cmd_audit.c */

#define CLI_AUDIT_LIMIT_DEF	100	/* audit query --limit */
#define CLI_AUDIT_LIMIT_MAX	100000
#define CLI_AUDIT_PAGE		1000	/* entries per request */
#define CLI_AUDIT_BUNDLE_MAX	(1024L * 1024 * 1024)	/* export file */

/* audit query, verify, export: the daemons' audit APIs. */
int	cli_cmd_audit(const struct cli_cmd *, const struct amanat_conf *);
/* audit verify-export FILE --ca CAFILE: offline, no config. */
int	cli_cmd_audit_verify_export(const struct cli_cmd *);

/*
 * TIME: unix seconds, or ISO 8601 UTC "YYYY-MM-DD", "YYYY-MM-DDTHH:MMZ",
 * "YYYY-MM-DDTHH:MM:SSZ" (a space may replace the T).  Unix
 * milliseconds into *out; ERR_INVAL otherwise.
 */
int	cli_audit_time(int64_t *, const char *);
/*
 * Merge the answers of n services (lists[i]: arrays of {"index",
 * "entry"} from services[i]) into a new array of {"service", "index",
 * "entry"}, oldest first by the entries' "time" (ties: service order,
 * then index), keeping the newest limit (0: all).
 */
json_t	*cli_audit_merge(const char *const *, json_t *const *, size_t,
	    size_t);

/* A CA file as a verification store (ERR_IO/ERR_GENERIC). */
int	cli_audit_store(X509_STORE **, const char *);
/*
 * Check a checkpoint JSON with the PEM "certificate" it carries: the
 * certificate chains to store as of the checkpoint's time, its CN is
 * "sign:<service>" for the service of the checkpoint's origin, and it
 * signed the checkpoint.  The CN goes to cn.  0, or ERR_PROTO /
 * ERR_INVAL with err_msg() saying what failed.
 */
int	cli_audit_checkpoint_check(const json_t *, X509_STORE *, char *,
	    size_t);

/* What an offline check of an export bundle found. */
struct cli_audit_summary {
	char		origin[160];
	char		signer[128];	/* certificate CN */
	uint64_t	from;		/* first entry */
	uint64_t	count;		/* entries verified */
	uint64_t	cp_size;
	int64_t		cp_time;	/* unix ms */
	uint64_t	bad_index;	/* first bad entry, or UINT64_MAX */
};

/*
 * Verify an export bundle (common/auditsvc.h): its checkpoint
 * (cli_audit_checkpoint_check), every entry's inclusion proof against
 * the checkpoint's root, indexes from "from" to "to" without a gap.
 * 0, or ERR_PROTO/ERR_INVAL with err_msg() naming the first bad entry
 * (also in sum->bad_index).
 */
int	cli_audit_bundle_verify(struct cli_audit_summary *, const json_t *,
	    X509_STORE *);

/*
 * Where audit verify reads a daemon's audit API: get(out, status, arg,
 * target) is 0 with the answer's status and JSON (any status; *out may
 * be NULL), or < 0 with err_msg() when there is no answer.
 */
struct cli_audit_src {
	int	(*get)(json_t **, int *, void *, const char *);
	void	*arg;
};

/* What audit verify found for one daemon. */
struct cli_audit_check {
	uint64_t	size;		/* entries the daemon has */
	uint64_t	cp_size;	/* the checkpoint verified */
	uint64_t	prev_size;	/* the saved one, 0 if none */
	uint64_t	bad_index;	/* first bad entry, or UINT64_MAX */
	int		no_checkpoint;	/* none signed yet */
	char		signer[128];
};

#define CLI_AUDIT_QUICK	0x01	/* only the entries since the state */

/*
 * Verify one daemon's log (origin "<node>/<service>") against its latest
 * signed checkpoint and the state saved by the last run (NULL: none):
 * the checkpoint's certificate and signature, its consistency with the
 * saved checkpoint, and every entry (CLI_AUDIT_QUICK: every entry since
 * the saved checkpoint) recomputed into the signed root; the first entry
 * that does not match is found by bisection with consistency proofs.
 * 0 with *state_out the new state (caller frees; NULL when there is no
 * checkpoint yet), or ERR_PROTO (tampering: err_msg() says what and
 * where), ERR_IO (the daemon did not answer), ERR_INVAL.
 */
int	cli_audit_verify_log(struct cli_audit_check *, json_t **,
	    const struct cli_audit_src *, const char *, const json_t *,
	    X509_STORE *, int);

/* ------------------------------------------------------------ cmd_mail.c */

/*
 * mail queue list|show|retry|delete, mail mailboxes, mail messages:
 * clients of mailsrv's admin API at [mailsrv] api_listen (node admin
 * certificate only).
 */
int	cli_cmd_mail(const struct cli_cmd *, const struct amanat_conf *);

/*
 * The state of one recipient of a queue envelope: "pending",
 * "delivered", "failed" (the API's string, or its number 0/1/2), or "?".
 */
const char *cli_mail_rcpt_state(const json_t *);
/* "3 (2 pending, 1 failed)": how many recipients, and their states. */
void	cli_mail_rcpts_summary(char *, size_t, const json_t *);
/* IMAP system flags of a store flag word: "\Seen \Answered", or "". */
void	cli_mail_flags(char *, size_t, long long);
/*
 * /v1/mailboxes/<address>[/<mailbox>] with each part percent-encoded as
 * one segment (mailbox may be NULL).  ERR_TOOBIG if it does not fit.
 */
int	cli_mail_target(char *, size_t, const char *, const char *);

/*
 * Text renderings of the API's answers, appended to out: the queue list
 * (an array of envelopes, oldest first), one envelope with its
 * recipients, a mailbox list and a message list.  0, ERR_PROTO when the
 * answer does not have the expected shape, or a buf error.
 */
int	cli_mail_queue_format(struct buf *, const json_t *);
int	cli_mail_show_format(struct buf *, const json_t *);
int	cli_mail_mailboxes_format(struct buf *, const json_t *);
int	cli_mail_messages_format(struct buf *, const json_t *);

#endif
