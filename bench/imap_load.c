/*
 * imap_load.c -- IMAP load generator on libetpan's IMAP client (mailimap).
 *
 * Runs in: bench/imap_bench.sh only (the `imap` section of bench/run),
 * against mailsrv and against Dovecot with the same options.
 *
 *	imap_load -p PORT -u USERS [-h HOST] [-c THREADS] [-d SECONDS]
 *	    [-w WARMUP] [-m MESSAGES] [-t TIMEOUT] [--nodelay]
 *	    [--server-pids PID,PID] [--server-tree PID] MODE
 *	MODE: --populate | --churn | --no-churn | --idle N [--rss-pid PID]
 *
 * USERS is a file of "address password" lines.  Every connection is
 * implicit TLS (mailimap_ssl_connect; Debian's libetpan does TLS with
 * GnuTLS, "NORMAL" priorities, and checks no certificate: the same for
 * both servers).  Thread t uses user t % nusers.  libetpan leaves Nagle
 * on; --nodelay makes the TCP connection here with TCP_NODELAY instead.
 *
 * --populate: APPEND -m messages (default 200, 3 to 7 KiB, every eighth a
 *   MIME multipart with a base64 attachment; two in three flagged \Seen)
 *   to each user's INBOX, which must be empty first, and checks the count
 *   afterwards.  The messages are a function of (address, index), so both
 *   servers get the same bytes and the load can check what it fetches.
 * --churn: each iteration is connect + TLS handshake, LOGIN, SELECT INBOX,
 *   the command mix below, LOGOUT.
 * --no-churn: each thread logs in and selects once (before the warm-up),
 *   then loops the command mix.
 * The command mix (k is the thread's next message number, round robin):
 *   UID FETCH 1:* (FLAGS)           -m results expected
 *   FETCH k (ENVELOPE BODY.PEEK[])  the body must equal message k-1
 *   UID SEARCH UNSEEN               the unseen count expected
 *   STORE k +FLAGS.SILENT (\Flagged), the next time -FLAGS.SILENT
 *   NOOP
 * Every command counts (LOGIN, SELECT and LOGOUT too).  After -w seconds
 * of warm-up (default 1), the commands completed in the next -d seconds
 * (default 10) are counted; the rate is commands / measured time.  Each
 * command's latency goes to a histogram (p50, p99 printed), and so does
 * the connect + TLS handshake + greeting, which is not a command.  An
 * error (a failed or refused command, a wrong count or body, a lost
 * connection) is counted and the thread starts a new session after 50 ms.
 * For the measured time the tool also prints its own CPU time, the
 * server's (--server-pids: each process; --server-tree: a process, its
 * live children and its reaped ones, as a Dovecot master forks every
 * service) and the CPU the rest of the machine used (/proc/stat).
 *
 * --idle N: N connections, each LOGIN, SELECT INBOX, IDLE (continuation
 *   seen), held; with --rss-pid, the server process's VmRSS is read from
 *   /proc before (after one warm-up session) and 2 s after the last IDLE,
 *   and the difference per connection printed.  Then every connection
 *   ends IDLE (DONE, tagged OK expected: none was dropped) and logs out.
 *   Debian's libetpan waits with select(2), which cannot take descriptors
 *   above FD_SETSIZE, and uses three per connection (socket, cancel
 *   pipe), so the connections are spread over child processes of at most
 *   IDLE_PER_PROC each.
 *
 * Every network wait is bounded (libetpan timeout -t, default 30 s); the
 * threads are joined with a bound too.  Output ends with one line
 *	imap_load result: mode=M cmds=N secs=S rate=R sessions=X
 *	    server_cpu=S client_cpu=S other_cpu=S errors=E
 * (for --idle: connections, VmRSS before and after, KiB each, errors)
 * and the exit status is 1 when there was any error or nothing completed.
 */
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <libetpan/libetpan.h>

#define MSG_MAX			(16 * 1024)
#define USERS_MAX		100000
#define THREADS_MAX		1000
#define IDLE_PER_PROC		250
#define IDLE_MAX		100000
#define ERR_SHOW		10
#define RETRY_US		50000
#define JOIN_GRACE_S		90
#define NB			600	/* latency histogram buckets */

enum cmd {
	C_LOGIN, C_SELECT, C_UIDFETCH, C_FETCH, C_SEARCH, C_STORE, C_NOOP,
	C_LOGOUT, C_APPEND, C_IDLE, C_DONE,
	C_CONNECT,	/* timed, not a command (not counted) */
	C_N
};
static const char *const cmd_name[C_N] = {
	"LOGIN", "SELECT", "UID FETCH 1:* (FLAGS)",
	"FETCH k (ENVELOPE BODY.PEEK[])", "UID SEARCH UNSEEN",
	"STORE k +/-FLAGS.SILENT", "NOOP", "LOGOUT", "APPEND", "IDLE",
	"DONE", "(connect, TLS, greeting)"
};

enum mode { M_NONE, M_POPULATE, M_CHURN, M_NOCHURN, M_IDLE };

struct user {
	char	*addr;
	char	*pass;
};

struct stats {
	uint64_t	n[C_N];
	uint64_t	hist[C_N][NB];
	uint64_t	sessions;	/* churn: login..logout completed */
	uint64_t	errors;
	uint64_t	appended;
};

struct thr {
	pthread_t	 tid;
	int		 id;
	struct stats	 st;
	_Atomic int	 done;
};

static const char	*host = "127.0.0.1";
static uint16_t		 port;
static int		 nthreads = 20;
static int		 seconds = 10;
static int		 warmup = 1;
static int		 nmsg = 200;
static int		 timeout_s = 30;
static int		 nodelay;	/* --nodelay: TCP_NODELAY on the client */
static enum mode	 mode;
static int		 nidle;
static long		 rss_pid;
static char		*srv_pids;	/* --server-pids "P,P" */
static long		 srv_tree;	/* --server-tree P */
static struct user	*users;
static int		 nusers;

static _Atomic int	 phase;		/* 0 warm-up, 1 measuring, 2 stop */
static _Atomic int	 nready;	/* --no-churn: threads logged in */
static _Atomic int	 next_user;	/* --populate */
static _Atomic int	 errors_shown;
static _Atomic uint64_t	 total_errors;

/* ------------------------------------------------------------ utilities */

static uint64_t
now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void
die(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	fputs("imap_load: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static int
ok(int r)
{
	return r == MAILIMAP_NO_ERROR || r == MAILIMAP_NO_ERROR_AUTHENTICATED ||
	    r == MAILIMAP_NO_ERROR_NON_AUTHENTICATED;
}

/* An error: counted; the first ERR_SHOW are printed with the reply. */
static void
fail(struct stats *st, mailimap *s, const char *user, const char *what,
    int r)
{
	const char	*resp = s != NULL && s->imap_response != NULL ?
			    s->imap_response : "";

	st->errors++;
	atomic_fetch_add(&total_errors, 1);
	if (atomic_fetch_add(&errors_shown, 1) < ERR_SHOW)
		fprintf(stderr, "imap_load: error: %s: %s: libetpan %d%s%s\n",
		    user, what, r, *resp ? ", server said: " : "", resp);
}

static int
bucket(uint64_t us)
{
	int	msb, b;

	if (us < 16)
		return (int)us;
	msb = 63 - __builtin_clzll(us);
	b = 16 + (msb - 4) * 16 + (int)((us >> (msb - 4)) & 15);
	return b < NB ? b : NB - 1;
}

static uint64_t
bucket_us(int b)
{
	int	msb;

	if (b < 16)
		return (uint64_t)b;
	msb = (b - 16) / 16 + 4;
	return (uint64_t)(16 + (b - 16) % 16) << (msb - 4);
}

/* A completed command: counted when it ended inside the measured time. */
static void
done_cmd(struct stats *st, enum cmd c, uint64_t t0)
{
	uint64_t	t1 = now_us();

	if (atomic_load_explicit(&phase, memory_order_relaxed) != 1)
		return;
	st->n[c]++;
	st->hist[c][bucket(t1 - t0)]++;
}

/* ------------------------------------------------------------ messages */

static uint64_t
splitmix(uint64_t *x)
{
	uint64_t	z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static const char *const words[] = {
	"budget", "review", "quarter", "minutes", "meeting", "draft",
	"the", "of", "and", "report", "ministry", "approval", "invoice",
	"schedule", "please", "attached", "revised", "figures", "for", "to",
	"department", "circular", "deadline", "regards", "a", "in", "team",
	"procurement", "audit", "travel", "policy", "update", "notice",
	"is", "with", "we", "on", "this", "agenda", "action", "items",
};
#define NWORDS	(sizeof(words) / sizeof(words[0]))

struct mbuf {
	char	b[MSG_MAX];
	size_t	n;
};

static void
mput(struct mbuf *m, const char *fmt, ...)
{
	va_list	ap;
	int	r;

	va_start(ap, fmt);
	r = vsnprintf(m->b + m->n, sizeof(m->b) - m->n, fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= sizeof(m->b) - m->n)
		die("message buffer too small");
	m->n += (size_t)r;
}

/* Text lines of words, CRLF-terminated, until about `size` bytes. */
static void
mtext(struct mbuf *m, uint64_t *x, size_t size)
{
	size_t	end = m->n + size, col = 0;

	while (m->n < end) {
		const char	*w = words[splitmix(x) % NWORDS];

		if (col > 0 && col + strlen(w) + 1 > 72) {
			mput(m, "\r\n");
			col = 0;
		}
		mput(m, "%s%s", col ? " " : "", w);
		col += strlen(w) + (col ? 1 : 0);
	}
	mput(m, "\r\n");
}

/* Message `i` of user `addr`: the same bytes every time. */
static void
make_msg(struct mbuf *m, const char *addr, int i)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint64_t	x = 1469598103934665603ULL;
	size_t		size, k;
	const char	*p;

	for (p = addr; *p; p++)
		x = (x ^ (unsigned char)*p) * 1099511628211ULL;
	x ^= (uint64_t)i * 0x100000001b3ULL;
	size = 3072 + splitmix(&x) % 4096;
	m->n = 0;
	mput(m, "Return-Path: <sender%d@example.org>\r\n"
	    "From: \"Sender %d\" <sender%d@example.org>\r\n"
	    "To: <%s>\r\n"
	    "Subject: bench message %d: %s %s\r\n"
	    "Date: Mon, 30 Nov 2026 %02d:%02d:%02d +0000\r\n"
	    "Message-ID: <bench.%d.%016llx@example.org>\r\n"
	    "MIME-Version: 1.0\r\n",
	    i % 17, i % 17, i % 17, addr, i, words[splitmix(&x) % NWORDS],
	    words[splitmix(&x) % NWORDS], (i / 3600) % 24, (i / 60) % 60,
	    i % 60, i, (unsigned long long)splitmix(&x));
	if (i % 8 != 3) {
		mput(m, "Content-Type: text/plain; charset=us-ascii\r\n"
		    "Content-Transfer-Encoding: 7bit\r\n\r\n");
		mtext(m, &x, size - m->n);
		return;
	}
	mput(m, "Content-Type: multipart/mixed; boundary=\"=_bench_%d\"\r\n"
	    "\r\nThis is a multi-part message in MIME format.\r\n"
	    "--=_bench_%d\r\nContent-Type: text/plain; charset=us-ascii\r\n"
	    "\r\n", i, i);
	mtext(m, &x, size / 3);
	mput(m, "--=_bench_%d\r\nContent-Type: application/octet-stream; "
	    "name=\"data-%d.bin\"\r\nContent-Disposition: attachment; "
	    "filename=\"data-%d.bin\"\r\nContent-Transfer-Encoding: base64"
	    "\r\n\r\n", i, i, i);
	while (m->n + 80 < size) {
		for (k = 0; k < 76; k++)
			m->b[m->n++] = b64[splitmix(&x) % 64];
		mput(m, "\r\n");
	}
	mput(m, "--=_bench_%d--\r\n", i);
}

static int
msg_seen(int i)
{
	return i % 3 != 0;
}

static uint32_t
unseen_count(int n)
{
	return (uint32_t)((n + 2) / 3);
}

/* ------------------------------------------------------------ sessions */

/*
 * --nodelay: the TCP connection made here with TCP_NODELAY (libetpan's
 * own connect leaves Nagle on), then TLS and the greeting by libetpan.
 */
static int
connect_nodelay(mailimap *s)
{
	struct sockaddr_in	 sin;
	mailstream		*ms;
	int			 fd, one = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
		die("--nodelay needs an IPv4 address for -h");
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return MAILIMAP_ERROR_CONNECTION_REFUSED;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		return MAILIMAP_ERROR_CONNECTION_REFUSED;
	}
	if ((ms = mailstream_ssl_open_timeout(fd, timeout_s)) == NULL) {
		close(fd);
		return MAILIMAP_ERROR_SSL;
	}
	return mailimap_connect(s, ms);
}

static mailimap *
sess_open(struct stats *st, const struct user *u)
{
	mailimap	*s;
	uint64_t	 t0 = now_us();
	int		 r;

	if ((s = mailimap_new(0, NULL)) == NULL)
		die("mailimap_new: out of memory");
	mailimap_set_timeout(s, timeout_s);
	if (nodelay)
		r = connect_nodelay(s);
	else
		r = mailimap_ssl_connect(s, host, port);
	if (!ok(r)) {
		fail(st, s, u->addr, "connect (TLS, greeting)", r);
		mailimap_free(s);
		return NULL;
	}
	done_cmd(st, C_CONNECT, t0);
	return s;
}

static int
do_login(struct stats *st, mailimap *s, const struct user *u)
{
	uint64_t	t0 = now_us();
	int		r;

	r = mailimap_login(s, u->addr, u->pass);
	if (!ok(r)) {
		fail(st, s, u->addr, "LOGIN", r);
		return -1;
	}
	done_cmd(st, C_LOGIN, t0);
	return 0;
}

/* SELECT INBOX; -1 on error, else EXISTS. */
static long
do_select(struct stats *st, mailimap *s, const struct user *u)
{
	uint64_t	t0 = now_us();
	int		r;

	r = mailimap_select(s, "INBOX");
	if (!ok(r) || s->imap_selection_info == NULL) {
		fail(st, s, u->addr, "SELECT INBOX", r);
		return -1;
	}
	done_cmd(st, C_SELECT, t0);
	return (long)s->imap_selection_info->sel_exists;
}

static void
do_logout(struct stats *st, mailimap *s, const struct user *u, int count)
{
	uint64_t	t0 = now_us();
	int		r;

	r = mailimap_logout(s);
	if (count) {
		if (!ok(r))
			fail(st, s, u->addr, "LOGOUT", r);
		else
			done_cmd(st, C_LOGOUT, t0);
	}
	mailimap_free(s);
}

static struct mailimap_fetch_type *
fetch_type(int which)
{
	struct mailimap_fetch_type	*ft;

	ft = mailimap_fetch_type_new_fetch_att_list_empty();
	if (which == 0)
		mailimap_fetch_type_new_fetch_att_list_add(ft,
		    mailimap_fetch_att_new_flags());
	else {
		mailimap_fetch_type_new_fetch_att_list_add(ft,
		    mailimap_fetch_att_new_envelope());
		mailimap_fetch_type_new_fetch_att_list_add(ft,
		    mailimap_fetch_att_new_body_peek_section(
		    mailimap_section_new(NULL)));
	}
	return ft;
}

/*
 * Checks the FETCH k (ENVELOPE BODY.PEEK[]) result against message k-1.
 * The list may hold untagged FETCH responses for other messages too
 * (flag changes by another session of the same user): only message k's
 * is looked at.
 */
static const char *
check_fetch(clist *res, const char *addr, uint32_t k)
{
	struct mbuf	 m;
	clistiter	*mi, *it;
	int		 env = 0, body = 0;

	if (res == NULL)
		return "no result";
	make_msg(&m, addr, (int)k - 1);
	for (mi = clist_begin(res); mi != NULL; mi = clist_next(mi)) {
		struct mailimap_msg_att	*ma = clist_content(mi);

		if (ma->att_number != k)
			continue;
		for (it = clist_begin(ma->att_list); it != NULL;
		    it = clist_next(it)) {
			struct mailimap_msg_att_item	*item;
			struct mailimap_msg_att_static	*sa;

			item = clist_content(it);
			if (item->att_type != MAILIMAP_MSG_ATT_ITEM_STATIC)
				continue;
			sa = item->att_data.att_static;
			if (sa->att_type == MAILIMAP_MSG_ATT_ENVELOPE) {
				if (sa->att_data.att_env == NULL ||
				    sa->att_data.att_env->env_subject ==
				    NULL || strstr(sa->att_data.att_env->
				    env_subject, "bench message") == NULL)
					return "ENVELOPE without the subject";
				env = 1;
			} else if (sa->att_type ==
			    MAILIMAP_MSG_ATT_BODY_SECTION) {
				struct mailimap_msg_att_body_section *bs =
				    sa->att_data.att_body_section;

				if (bs == NULL || bs->sec_body_part == NULL ||
				    bs->sec_length != m.n ||
				    memcmp(bs->sec_body_part, m.b, m.n) != 0)
					return "BODY[] differs from the "
					    "message appended";
				body = 1;
			}
		}
	}
	if (!env || !body)
		return "ENVELOPE or BODY[] missing";
	return NULL;
}

/*
 * Distinct message numbers in a FETCH result (untagged FETCH responses
 * for flag changes by another session may repeat a message).
 */
static int
distinct_msgs(clist *res)
{
	unsigned char	*seen;
	clistiter	*mi;
	int		 n = 0;

	if ((seen = calloc((size_t)nmsg + 1, 1)) == NULL)
		die("out of memory");
	for (mi = clist_begin(res); mi != NULL; mi = clist_next(mi)) {
		struct mailimap_msg_att	*ma = clist_content(mi);

		if (ma->att_number >= 1 && ma->att_number <= (uint32_t)nmsg &&
		    !seen[ma->att_number]) {
			seen[ma->att_number] = 1;
			n++;
		} else if (ma->att_number > (uint32_t)nmsg)
			n = nmsg + 1;	/* a message too many */
	}
	free(seen);
	return n;
}

/*
 * The command mix on a selected INBOX of `nmsg` messages; *k is the next
 * message number, *flip the STORE direction.  -1 on error.
 */
static int
mix(struct stats *st, mailimap *s, const struct user *u, uint32_t *k,
    int *flip)
{
	struct mailimap_fetch_type	*ft;
	struct mailimap_set		*set;
	struct mailimap_search_key	*key;
	struct mailimap_flag_list	*fl;
	struct mailimap_store_att_flags	*sf;
	clist				*res = NULL;
	const char			*bad;
	uint64_t			 t0;
	int				 r;
	char				 what[128];

	/* UID FETCH 1:* (FLAGS) */
	t0 = now_us();
	set = mailimap_set_new_interval(1, 0);
	ft = fetch_type(0);
	r = mailimap_uid_fetch(s, set, ft, &res);
	mailimap_fetch_type_free(ft);
	mailimap_set_free(set);
	if (!ok(r)) {
		fail(st, s, u->addr, cmd_name[C_UIDFETCH], r);
		return -1;
	}
	if (distinct_msgs(res) != nmsg) {
		snprintf(what, sizeof(what), "%s: %d messages, %d expected",
		    cmd_name[C_UIDFETCH], distinct_msgs(res), nmsg);
		mailimap_fetch_list_free(res);
		fail(st, s, u->addr, what, 0);
		return -1;
	}
	mailimap_fetch_list_free(res);
	done_cmd(st, C_UIDFETCH, t0);

	/* FETCH k (ENVELOPE BODY.PEEK[]) */
	t0 = now_us();
	set = mailimap_set_new_single(*k);
	ft = fetch_type(1);
	res = NULL;
	r = mailimap_fetch(s, set, ft, &res);
	mailimap_fetch_type_free(ft);
	mailimap_set_free(set);
	if (!ok(r)) {
		fail(st, s, u->addr, cmd_name[C_FETCH], r);
		return -1;
	}
	if ((bad = check_fetch(res, u->addr, *k)) != NULL) {
		snprintf(what, sizeof(what), "FETCH %u: %s", *k, bad);
		mailimap_fetch_list_free(res);
		fail(st, s, u->addr, what, 0);
		return -1;
	}
	mailimap_fetch_list_free(res);
	done_cmd(st, C_FETCH, t0);

	/* UID SEARCH UNSEEN */
	t0 = now_us();
	key = mailimap_search_key_new(MAILIMAP_SEARCH_KEY_UNSEEN, NULL, NULL,
	    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	    NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL);
	res = NULL;
	r = mailimap_uid_search(s, NULL, key, &res);
	mailimap_search_key_free(key);
	if (!ok(r)) {
		fail(st, s, u->addr, cmd_name[C_SEARCH], r);
		return -1;
	}
	if ((uint32_t)clist_count(res) != unseen_count(nmsg)) {
		snprintf(what, sizeof(what), "%s: %d results, %u expected",
		    cmd_name[C_SEARCH], clist_count(res),
		    unseen_count(nmsg));
		mailimap_search_result_free(res);
		fail(st, s, u->addr, what, 0);
		return -1;
	}
	mailimap_search_result_free(res);
	done_cmd(st, C_SEARCH, t0);

	/* STORE k +FLAGS.SILENT (\Flagged), or -FLAGS.SILENT */
	t0 = now_us();
	fl = mailimap_flag_list_new_empty();
	mailimap_flag_list_add(fl, mailimap_flag_new_flagged());
	sf = *flip ? mailimap_store_att_flags_new_remove_flags_silent(fl) :
	    mailimap_store_att_flags_new_add_flags_silent(fl);
	set = mailimap_set_new_single(*k);
	r = mailimap_store(s, set, sf);
	mailimap_store_att_flags_free(sf);
	mailimap_set_free(set);
	if (!ok(r)) {
		fail(st, s, u->addr, cmd_name[C_STORE], r);
		return -1;
	}
	done_cmd(st, C_STORE, t0);
	*flip = !*flip;

	/* NOOP */
	t0 = now_us();
	r = mailimap_noop(s);
	if (!ok(r)) {
		fail(st, s, u->addr, cmd_name[C_NOOP], r);
		return -1;
	}
	done_cmd(st, C_NOOP, t0);

	*k = *k % (uint32_t)nmsg + 1;
	return 0;
}

/* ------------------------------------------------------------ modes */

static void
pause_retry(void)
{
	usleep(RETRY_US);
}

static void
run_churn(struct thr *t)
{
	const struct user	*u = &users[t->id % nusers];
	uint32_t		 k = (uint32_t)(t->id * 37) % (uint32_t)nmsg + 1;
	int			 flip = 0;

	while (atomic_load(&phase) < 2) {
		mailimap	*s;
		long		 n;

		if ((s = sess_open(&t->st, u)) == NULL) {
			pause_retry();
			continue;
		}
		if (do_login(&t->st, s, u) < 0 ||
		    (n = do_select(&t->st, s, u)) < 0) {
			mailimap_free(s);
			pause_retry();
			continue;
		}
		if (n != nmsg) {
			fail(&t->st, s, u->addr, "SELECT: wrong EXISTS", (int)n);
			mailimap_free(s);
			pause_retry();
			continue;
		}
		if (mix(&t->st, s, u, &k, &flip) < 0) {
			mailimap_free(s);
			pause_retry();
			continue;
		}
		do_logout(&t->st, s, u, 1);
		if (atomic_load(&phase) == 1)
			t->st.sessions++;
	}
}

static void
run_nochurn(struct thr *t)
{
	const struct user	*u = &users[t->id % nusers];
	uint32_t		 k = (uint32_t)(t->id * 37) % (uint32_t)nmsg + 1;
	int			 flip = 0, first = 1;

	while (atomic_load(&phase) < 2) {
		mailimap	*s;
		long		 n;

		if ((s = sess_open(&t->st, u)) == NULL) {
			pause_retry();
			continue;
		}
		if (do_login(&t->st, s, u) < 0 ||
		    (n = do_select(&t->st, s, u)) < 0) {
			mailimap_free(s);
			pause_retry();
			continue;
		}
		if (n != nmsg) {
			fail(&t->st, s, u->addr, "SELECT: wrong EXISTS", (int)n);
			mailimap_free(s);
			pause_retry();
			continue;
		}
		if (first) {
			atomic_fetch_add(&nready, 1);
			first = 0;
		}
		while (atomic_load(&phase) < 2)
			if (mix(&t->st, s, u, &k, &flip) < 0)
				break;
		if (atomic_load(&phase) >= 2) {
			do_logout(&t->st, s, u, 0);
			return;
		}
		mailimap_free(s);
		pause_retry();
	}
}

static void
populate_user(struct stats *st, const struct user *u)
{
	struct mbuf			 m;
	struct mailimap_flag_list	*fl;
	mailimap			*s;
	long				 n;
	int				 i, r;
	char				 what[64];

	if ((s = sess_open(st, u)) == NULL)
		return;
	if (do_login(st, s, u) < 0 || (n = do_select(st, s, u)) < 0) {
		mailimap_free(s);
		return;
	}
	if (n != 0) {
		fail(st, s, u->addr, "--populate: INBOX is not empty",
		    (int)n);
		mailimap_free(s);
		return;
	}
	for (i = 0; i < nmsg; i++) {
		uint64_t	t0 = now_us();

		make_msg(&m, u->addr, i);
		fl = mailimap_flag_list_new_empty();
		if (msg_seen(i))
			mailimap_flag_list_add(fl, mailimap_flag_new_seen());
		r = mailimap_append(s, "INBOX", fl, NULL, m.b, m.n);
		mailimap_flag_list_free(fl);
		if (!ok(r)) {
			snprintf(what, sizeof(what), "APPEND of message %d", i);
			fail(st, s, u->addr, what, r);
			mailimap_free(s);
			return;
		}
		done_cmd(st, C_APPEND, t0);
		st->appended++;
	}
	/* the count, as a new session sees it */
	do_logout(st, s, u, 0);
	if ((s = sess_open(st, u)) == NULL)
		return;
	if (do_login(st, s, u) < 0 || (n = do_select(st, s, u)) < 0) {
		mailimap_free(s);
		return;
	}
	if (n != nmsg) {
		snprintf(what, sizeof(what), "after --populate: EXISTS %ld, "
		    "%d expected", n, nmsg);
		fail(st, s, u->addr, what, 0);
	}
	do_logout(st, s, u, 0);
}

static void *
thr_main(void *arg)
{
	struct thr	*t = arg;
	int		 i;

	switch (mode) {
	case M_CHURN:
		run_churn(t);
		break;
	case M_NOCHURN:
		run_nochurn(t);
		break;
	case M_POPULATE:
		while ((i = atomic_fetch_add(&next_user, 1)) < nusers)
			populate_user(&t->st, &users[i]);
		break;
	default:
		break;
	}
	atomic_store(&t->done, 1);
	return NULL;
}

/* ------------------------------------------------------------ --idle */

static long
rss_kib(long pid)
{
	FILE	*f;
	char	 path[64], line[256];
	long	 v = -1;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

/*
 * One child: connections [first, first + n); reports "R ok err" on rfd
 * once all are idling, waits for EOF on gfd (bounded), ends them and
 * reports "D ok err".
 */
static void
idle_child(int first, int n, int rfd, int gfd)
{
	mailimap	**ss;
	struct stats	 st;
	struct pollfd	 pfd;
	char		 line[64], c;
	int		 i, up = 0, okn = 0, len;

	memset(&st, 0, sizeof(st));
	if ((ss = calloc((size_t)n, sizeof(*ss))) == NULL)
		_exit(1);
	for (i = 0; i < n; i++) {
		const struct user	*u = &users[(first + i) % nusers];
		mailimap		*s;
		int			 r;

		if ((s = sess_open(&st, u)) == NULL)
			continue;
		if (do_login(&st, s, u) < 0 || do_select(&st, s, u) < 0) {
			mailimap_free(s);
			continue;
		}
		if (!ok(r = mailimap_idle(s))) {
			fail(&st, s, u->addr, "IDLE", r);
			mailimap_free(s);
			continue;
		}
		ss[i] = s;
		up++;
	}
	len = snprintf(line, sizeof(line), "R %d %llu\n", up,
	    (unsigned long long)st.errors);
	if (write(rfd, line, (size_t)len) != len)
		_exit(1);
	pfd.fd = gfd;
	pfd.events = POLLIN;
	(void)poll(&pfd, 1, 1800 * 1000);
	(void)read(gfd, &c, 1);
	st.errors = 0;
	for (i = 0; i < n; i++) {
		const struct user	*u = &users[(first + i) % nusers];
		int			 r;

		if (ss[i] == NULL)
			continue;
		if (!ok(r = mailimap_idle_done(ss[i]))) {
			fail(&st, ss[i], u->addr, "DONE (after IDLE)", r);
			mailimap_free(ss[i]);
			continue;
		}
		r = mailimap_logout(ss[i]);
		if (!ok(r))
			fail(&st, ss[i], u->addr, "LOGOUT after IDLE", r);
		else
			okn++;
		mailimap_free(ss[i]);
	}
	len = snprintf(line, sizeof(line), "D %d %llu\n", okn,
	    (unsigned long long)st.errors);
	if (write(rfd, line, (size_t)len) != len)
		_exit(1);
	_exit(0);
}

/*
 * Reads `want` lines "TAG ok err" from the children's pipe (each is one
 * short write, so lines do not interleave); sums the two fields.
 */
struct linebuf {
	char	b[4096];
	size_t	n;
};

static int
idle_collect(int fd, struct linebuf *lb, char tag, int want, long *sum_ok,
    long *sum_err, int secs)
{
	time_t	end = time(NULL) + secs;
	int	got = 0;

	*sum_ok = *sum_err = 0;
	while (got < want) {
		struct pollfd	 pfd = { .fd = fd, .events = POLLIN };
		char		*nl;
		long		 a, b;
		char		 t;
		ssize_t		 r;
		int		 left;

		if ((nl = memchr(lb->b, '\n', lb->n)) != NULL) {
			*nl = '\0';
			if (sscanf(lb->b, "%c %ld %ld", &t, &a, &b) != 3 ||
			    t != tag)
				return -1;
			*sum_ok += a;
			*sum_err += b;
			got++;
			lb->n -= (size_t)(nl + 1 - lb->b);
			memmove(lb->b, nl + 1, lb->n);
			continue;
		}
		if ((left = (int)(end - time(NULL))) <= 0 ||
		    poll(&pfd, 1, left * 1000) <= 0)
			return -1;
		r = read(fd, lb->b + lb->n, sizeof(lb->b) - 1 - lb->n);
		if (r <= 0)
			return -1;
		lb->n += (size_t)r;
	}
	return 0;
}

static int
run_idle(void)
{
	struct stats	 st;
	struct linebuf	 lb = { .n = 0 };
	mailimap	*s;
	pid_t		*kids;
	long		 before = -1, after = -1, up, err, okn, err2;
	uint64_t	 t0, t1;
	int		 rp[2], gp[2], nproc, i, status, bad = 0, setup_s;

	memset(&st, 0, sizeof(st));
	/* one warm-up session: code paths, caches, the mailbox */
	if ((s = sess_open(&st, &users[0])) == NULL ||
	    do_login(&st, s, &users[0]) < 0 ||
	    do_select(&st, s, &users[0]) < 0) {
		fprintf(stderr, "imap_load: --idle: warm-up session failed\n");
		return 1;
	}
	if (!ok(mailimap_idle(s)) || !ok(mailimap_idle_done(s))) {
		fail(&st, s, users[0].addr, "warm-up IDLE/DONE", 0);
		return 1;
	}
	do_logout(&st, s, &users[0], 0);
	if (rss_pid > 0) {
		sleep(1);
		if ((before = rss_kib(rss_pid)) < 0)
			die("cannot read /proc/%ld/status", rss_pid);
	}
	if (pipe(rp) < 0 || pipe(gp) < 0)
		die("pipe: %s", strerror(errno));
	nproc = (nidle + IDLE_PER_PROC - 1) / IDLE_PER_PROC;
	if ((kids = calloc((size_t)nproc, sizeof(*kids))) == NULL)
		die("out of memory");
	fflush(stdout);
	fflush(stderr);
	t0 = now_us();
	for (i = 0; i < nproc; i++) {
		int	first = i * IDLE_PER_PROC;
		int	n = nidle - first < IDLE_PER_PROC ? nidle - first :
			    IDLE_PER_PROC;

		if ((kids[i] = fork()) < 0)
			die("fork: %s", strerror(errno));
		if (kids[i] == 0) {
			close(rp[0]);
			close(gp[1]);
			idle_child(first, n, rp[1], gp[0]);
		}
	}
	close(rp[1]);
	close(gp[0]);
	/* generous: TLS handshakes, Argon2 logins, 2 cores */
	setup_s = 120 + nidle / 20;
	if (idle_collect(rp[0], &lb, 'R', nproc, &up, &err, setup_s) < 0) {
		fprintf(stderr, "imap_load: --idle: the connections were not "
		    "set up within %d s\n", setup_s);
		bad = 1;
		up = 0;
		err = 1;
	}
	t1 = now_us();
	printf("imap_load: --idle: %ld of %d connections idling (LOGIN, "
	    "SELECT INBOX, IDLE) in %.1f s, %ld errors, %d processes\n",
	    up, nidle, (double)(t1 - t0) / 1e6, err, nproc);
	if (rss_pid > 0 && !bad) {
		sleep(2);
		after = rss_kib(rss_pid);
		printf("imap_load: --idle: server pid %ld VmRSS %ld KiB before, "
		    "%ld KiB with %ld idle connections: %+.1f KiB each\n",
		    rss_pid, before, after, up, up > 0 ?
		    (double)(after - before) / (double)up : 0.0);
	}
	fflush(stdout);
	close(gp[1]);		/* go: end IDLE, log out */
	if (!bad && idle_collect(rp[0], &lb, 'D', nproc, &okn, &err2,
	    120 + nidle / 50) < 0) {
		fprintf(stderr, "imap_load: --idle: the connections did not "
		    "end in time\n");
		bad = 1;
	}
	if (!bad) {
		printf("imap_load: --idle: %ld connections ended IDLE and "
		    "logged out, %ld errors\n", okn, err2);
		if (okn != up)
			bad = 1;
		err += err2;
	}
	for (i = 0; i < nproc; i++) {
		if (bad)
			kill(kids[i], SIGKILL);
		if (waitpid(kids[i], &status, 0) > 0 &&
		    (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
			bad = 1;
	}
	printf("imap_load result: mode=idle connections=%ld rss_before_kib=%ld "
	    "rss_after_kib=%ld kib_each=%.1f errors=%ld\n", up, before, after,
	    up > 0 && after >= 0 ? (double)(after - before) / (double)up :
	    0.0, err + bad);
	return bad || err > 0 || up != nidle;
}

/* ------------------------------------------------------------ main */

static void
load_users(const char *path)
{
	FILE	*f;
	char	 line[2048], a[1024], p[1024];

	if ((f = fopen(path, "r")) == NULL)
		die("%s: %s", path, strerror(errno));
	if ((users = calloc(USERS_MAX, sizeof(*users))) == NULL)
		die("out of memory");
	while (fgets(line, sizeof(line), f) != NULL) {
		if (line[0] == '#' || sscanf(line, "%1023s %1023s", a, p) != 2)
			continue;
		if (nusers == USERS_MAX)
			die("%s: more than %d users", path, USERS_MAX);
		users[nusers].addr = strdup(a);
		users[nusers].pass = strdup(p);
		nusers++;
	}
	fclose(f);
	if (nusers == 0)
		die("%s: no users", path);
}

static void
usage(void)
{
	fprintf(stderr, "usage: imap_load -p PORT -u USERS [-h HOST] "
	    "[-c THREADS] [-d SECONDS] [-w WARMUP]\n"
	    "           [-m MESSAGES] [-t TIMEOUT] --populate | --churn | "
	    "--no-churn | --idle N [--rss-pid PID]\n"
	    "           [--server-pids PID,PID] [--server-tree PID] "
	    "[--nodelay]\n");
	exit(2);
}

static double
cpu_s(void)
{
	struct rusage	ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime (+ cutime + cstime) of a process, in ticks; 0 if gone */
static uint64_t
proc_ticks(long pid, int children, long *ppid)
{
	FILE			*f;
	char			 path[64], buf[1024], *p;
	unsigned long long	 ut, st;
	long long		 cut, cst;
	long			 pp;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	/* after the ")" of comm: state ppid ... field 14 utime */
	if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	    "%llu %llu %lld %lld", &pp, &ut, &st, &cut, &cst) != 5)
		return 0;
	if (ppid != NULL)
		*ppid = pp;
	return ut + st + (children ? (uint64_t)(cut + cst) : 0);
}

/*
 * CPU seconds of the server: each of --server-pids; and for
 * --server-tree, the process with its reaped children and its live
 * children (a Dovecot master forks every service itself).
 */
static double
server_cpu(void)
{
	uint64_t	 t = 0;
	char		*copy, *tok, *save = NULL;

	if (srv_pids != NULL) {
		copy = strdup(srv_pids);
		for (tok = strtok_r(copy, ",", &save); tok != NULL;
		    tok = strtok_r(NULL, ",", &save))
			t += proc_ticks(atol(tok), 0, NULL);
		free(copy);
	}
	if (srv_tree > 0) {
		DIR		*d;
		struct dirent	*de;

		t += proc_ticks(srv_tree, 1, NULL);
		if ((d = opendir("/proc")) != NULL) {
			while ((de = readdir(d)) != NULL) {
				long		pid = atol(de->d_name), pp = 0;
				uint64_t	v;

				if (pid <= 0)
					continue;
				v = proc_ticks(pid, 0, &pp);
				if (pp == srv_tree)
					t += v;
			}
			closedir(d);
		}
	}
	return (double)t / (double)sysconf(_SC_CLK_TCK);
}

/* Busy CPU seconds of the whole machine so far (/proc/stat). */
static double
machine_busy(void)
{
	FILE			*f;
	unsigned long long	 v[8] = { 0 };
	double			 busy = 0;

	if ((f = fopen("/proc/stat", "r")) == NULL)
		return 0;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
	    &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8)
		busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);
	fclose(f);
	return busy / (double)sysconf(_SC_CLK_TCK);
}

static void
report(struct thr *thr, double secs, double cpu, double scpu, double busy)
{
	struct stats	tot;
	uint64_t	cmds = 0;
	int		i, c, b;

	memset(&tot, 0, sizeof(tot));
	for (i = 0; i < nthreads; i++) {
		for (c = 0; c < C_N; c++) {
			tot.n[c] += thr[i].st.n[c];
			for (b = 0; b < NB; b++)
				tot.hist[c][b] += thr[i].st.hist[c][b];
		}
		tot.sessions += thr[i].st.sessions;
		tot.errors += thr[i].st.errors;
		tot.appended += thr[i].st.appended;
	}
	for (c = 0; c < C_N; c++) {
		uint64_t	seen = 0, p50 = 0, p99 = 0;

		if (c != C_CONNECT)
			cmds += tot.n[c];
		if (tot.n[c] == 0)
			continue;
		for (b = 0; b < NB; b++) {
			seen += tot.hist[c][b];
			if (p50 == 0 && seen * 2 >= tot.n[c])
				p50 = bucket_us(b) + 1;
			if (p99 == 0 && seen * 100 >= tot.n[c] * 99)
				p99 = bucket_us(b) + 1;
		}
		printf("imap_load:   %-31s %8llu  p50 %8.2f ms  p99 %8.2f ms\n",
		    cmd_name[c], (unsigned long long)tot.n[c],
		    (double)(p50 - 1) / 1e3, (double)(p99 - 1) / 1e3);
	}
	if (mode == M_POPULATE)
		printf("imap_load: appended %llu messages (%d users x %d) in "
		    "%.2f s: %.1f msg/s, errors %llu\n",
		    (unsigned long long)tot.appended, nusers, nmsg, secs,
		    (double)tot.appended / secs,
		    (unsigned long long)tot.errors);
	else
		printf("imap_load: %llu commands in %.2f s: %.1f cmd/s; %.1f "
		    "sessions/s (login to logout); errors %llu\n",
		    (unsigned long long)cmds, secs, (double)cmds / secs,
		    (double)tot.sessions / secs,
		    (unsigned long long)tot.errors);
	printf("imap_load: the load tool used %.2f s of CPU in the measured "
	    "time (%.0f%% of one core)\n", cpu, cpu * 100 / secs);
	if (srv_pids != NULL || srv_tree > 0) {
		printf("imap_load: the server used %.2f s of CPU in the "
		    "measured time (%.0f%% of one core): %.0f us per "
		    "command\n", scpu, scpu * 100 / secs,
		    cmds > 0 ? scpu * 1e6 / (double)cmds : 0.0);
		printf("imap_load: the machine (%ld cores) was busy %.2f s: "
		    "%.2f s outside the server and this tool (other "
		    "processes, interrupts)\n", sysconf(_SC_NPROCESSORS_ONLN),
		    busy, busy - scpu - cpu);
	}
	printf("imap_load result: mode=%s cmds=%llu secs=%.3f rate=%.1f "
	    "sessions=%llu server_cpu=%.2f client_cpu=%.2f other_cpu=%.2f "
	    "errors=%llu\n",
	    mode == M_POPULATE ? "populate" : mode == M_CHURN ? "churn" :
	    "no-churn", (unsigned long long)cmds, secs, (double)cmds / secs,
	    (unsigned long long)tot.sessions, scpu, cpu, busy - scpu - cpu,
	    (unsigned long long)atomic_load(&total_errors));
}

/* A decimal option value in [0, max]; usage() otherwise. */
static long
num_arg(const char *s, long max)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || v > max)
		usage();
	return v;
}

int
main(int argc, char **argv)
{
	static const struct option	lopts[] = {
		{ "populate", no_argument, NULL, 'P' },
		{ "churn", no_argument, NULL, 'C' },
		{ "no-churn", no_argument, NULL, 'N' },
		{ "idle", required_argument, NULL, 'I' },
		{ "rss-pid", required_argument, NULL, 'R' },
		{ "server-pids", required_argument, NULL, 'S' },
		{ "server-tree", required_argument, NULL, 'T' },
		{ "nodelay", no_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 }
	};
	struct thr	*thr;
	struct rlimit	 rl;
	const char	*ufile = NULL;
	uint64_t	 t0, t1, end;
	double		 cpu0, cpu1, scpu0, scpu1, busy0, busy1;
	int		 ch, i, stuck = 0;

	while ((ch = getopt_long(argc, argv, "h:p:u:c:d:w:m:t:", lopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'h': host = optarg; break;
		case 'p': port = (uint16_t)num_arg(optarg, 65535); break;
		case 'u': ufile = optarg; break;
		case 'c': nthreads = (int)num_arg(optarg, INT_MAX); break;
		case 'd': seconds = (int)num_arg(optarg, INT_MAX); break;
		case 'w': warmup = (int)num_arg(optarg, INT_MAX); break;
		case 'm': nmsg = (int)num_arg(optarg, INT_MAX); break;
		case 't': timeout_s = (int)num_arg(optarg, INT_MAX); break;
		case 'P': mode = M_POPULATE; break;
		case 'C': mode = M_CHURN; break;
		case 'N': mode = M_NOCHURN; break;
		case 'I': mode = M_IDLE; nidle = (int)num_arg(optarg, INT_MAX); break;
		case 'R': rss_pid = num_arg(optarg, LONG_MAX); break;
		case 'S': srv_pids = optarg; break;
		case 'T': srv_tree = num_arg(optarg, LONG_MAX); break;
		case 'D': nodelay = 1; break;
		default: usage();
		}
	}
	if (optind != argc || mode == M_NONE || port == 0 || ufile == NULL ||
	    nthreads < 1 || nthreads > THREADS_MAX || seconds < 1 ||
	    warmup < 0 || nmsg < 1 || nmsg > 100000 || timeout_s < 1 ||
	    (mode == M_IDLE && (nidle < 1 || nidle > IDLE_MAX)))
		usage();
	load_users(ufile);
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* libetpan's wait for a TLS handshake or read; also bounds connect */
	mailstream_network_delay.tv_sec = timeout_s;
	mailstream_network_delay.tv_usec = 0;
	/*
	 * libetpan calls gnutls_global_init() per connection and
	 * gnutls_global_deinit() when it closes: one reference held here
	 * keeps the library initialised (it would be set up and torn down
	 * per session otherwise).
	 */
	if (gnutls_global_init() < 0)
		die("gnutls_global_init failed");

	printf("imap_load: %s, %s:%u, implicit TLS (libetpan %d.%d, GnuTLS "
	    "%s, no certificate check%s), %d users, %d messages each\n",
	    mode == M_POPULATE ? "populate" : mode == M_CHURN ? "churn" :
	    mode == M_NOCHURN ? "no-churn" : "idle", host, port,
	    libetpan_get_version_major(), libetpan_get_version_minor(),
	    gnutls_check_version(NULL), nodelay ? ", TCP_NODELAY" : "",
	    nusers, nmsg);
	fflush(stdout);
	if (mode == M_IDLE)
		return run_idle();

	if (mode == M_POPULATE && nthreads > nusers)
		nthreads = nusers;
	if ((thr = calloc((size_t)nthreads, sizeof(*thr))) == NULL)
		die("out of memory");
	if (mode == M_POPULATE)
		atomic_store(&phase, 1);
	t0 = now_us();
	cpu0 = cpu_s();
	scpu0 = server_cpu();
	busy0 = machine_busy();
	for (i = 0; i < nthreads; i++) {
		thr[i].id = i;
		if (pthread_create(&thr[i].tid, NULL, thr_main, &thr[i]) != 0)
			die("pthread_create failed");
	}
	if (mode == M_POPULATE) {
		/* bounded: 2 s a message at worst */
		end = now_us() + (uint64_t)(60 + 2 * nmsg *
		    ((nusers + nthreads - 1) / nthreads)) * 1000000;
		for (;;) {
			int	n = 0;

			for (i = 0; i < nthreads; i++)
				n += atomic_load(&thr[i].done);
			if (n == nthreads || now_us() > end)
				break;
			usleep(20000);
		}
		t1 = now_us();
		cpu1 = cpu_s();
		scpu1 = server_cpu();
		busy1 = machine_busy();
		atomic_store(&phase, 2);
	} else {
		if (mode == M_NOCHURN) {
			/* every thread logged in and selected first */
			end = now_us() + 300 * 1000000ULL;
			while (atomic_load(&nready) < nthreads &&
			    atomic_load(&total_errors) == 0 && now_us() < end)
				usleep(10000);
			if (atomic_load(&nready) < nthreads) {
				fprintf(stderr, "imap_load: only %d of %d "
				    "sessions logged in\n",
				    atomic_load(&nready), nthreads);
				atomic_fetch_add(&total_errors, 1);
			}
		}
		usleep((useconds_t)warmup * 1000000);
		cpu0 = cpu_s();
		scpu0 = server_cpu();
		busy0 = machine_busy();
		atomic_store(&phase, 1);
		t0 = now_us();
		usleep((useconds_t)seconds * 1000000);
		atomic_store(&phase, 2);
		t1 = now_us();
		cpu1 = cpu_s();
		scpu1 = server_cpu();
		busy1 = machine_busy();
	}
	/* join, bounded (each network wait is bounded by -t) */
	end = now_us() + (uint64_t)(timeout_s + JOIN_GRACE_S) * 1000000;
	for (i = 0; i < nthreads; i++) {
		while (!atomic_load(&thr[i].done) && now_us() < end)
			usleep(10000);
		if (!atomic_load(&thr[i].done))
			stuck++;
		else
			pthread_join(thr[i].tid, NULL);
	}
	if (stuck) {
		fprintf(stderr, "imap_load: %d threads did not finish in "
		    "time\n", stuck);
		fflush(stdout);
		_exit(1);
	}
	report(thr, (double)(t1 - t0) / 1e6, cpu1 - cpu0, scpu1 - scpu0,
	    busy1 - busy0);
	fflush(stdout);
	{
		uint64_t	c = 0;
		int		k;

		for (i = 0; i < nthreads; i++)
			for (k = 0; k < C_CONNECT; k++)
				c += thr[i].st.n[k];
		if (atomic_load(&total_errors) > 0 || c == 0)
			return 1;
	}
	return 0;
}
