/*
 * log.c -- leveled, one-line-per-event logging to stderr and/or syslog.
 *
 * Runs in: every process.  Thread-safe: each line is formatted into a
 * local buffer and written with a single write(2).
 * Failure policy: logging never fails the caller; a line longer than
 * LOG_LINE_MAX is truncated.
 * SECURITY: callers escape peer data with log_escape(); secrets are never
 * passed here (enforced by review, see docs/style.md).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define LOG_LINE_MAX	2048

static const char	*log_ident = "amanat";
static int		 log_level = LOG_LVL_INFO;
static int		 log_dest = LOG_TO_STDERR;
static int		 log_pid;	/* set by log_init (after any fork) */

static const char *const level_names[] = {
	"error", "warn", "info", "debug", "trace",
};

void
log_init(const char *ident, int level, int dest)
{
	log_ident = ident;
	log_pid = (int)getpid();
	log_level = level;
	log_dest = dest;
	if (dest & LOG_TO_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_setlevel(int level)
{
	log_level = level;
}

int
log_getlevel(void)
{
	return log_level;
}

int
log_level_parse(const char *s, int *out)
{
	size_t	i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	}
	return -1;
}

static void	log_vline(int, const char *, const char *, va_list)
		    __attribute__((format(printf, 3, 0)));

static void
log_vline(int level, const char *errstr, const char *fmt, va_list ap)
{
	char		 line[LOG_LINE_MAX];
	struct timespec	 ts;
	struct tm	 tm;
	size_t		 n = 0, msgoff;
	int		 r, prio;

	if (level > log_level)
		return;
	if (log_dest & LOG_TO_STDERR) {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s[%d] %s: ",
		    ts.tv_nsec / 1000000, log_ident,
		    log_pid ? log_pid : (int)getpid(),
		    level_names[level]);
		if (r > 0)
			n += (size_t)r;
	}
	msgoff = n;
	if (n < sizeof(line)) {
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if (r > 0)
			n += (size_t)r;
	}
	if (errstr != NULL && n < sizeof(line)) {
		r = snprintf(line + n, sizeof(line) - n, " error=\"%s\"",
		    errstr);
		if (r > 0)
			n += (size_t)r;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	if (log_dest & LOG_TO_SYSLOG) {
		line[n] = '\0';
		prio = level == LOG_LVL_ERROR ? LOG_ERR :
		    level == LOG_LVL_WARN ? LOG_WARNING :
		    level == LOG_LVL_INFO ? LOG_INFO : LOG_DEBUG;
		/* syslog adds its own time and ident */
		syslog(prio, "%s", line + msgoff);
	}
	if (log_dest & LOG_TO_STDERR) {
		line[n++] = '\n';
		(void)!write(STDERR_FILENO, line, n);
	}
}

#define LOG_FN(name, level, witherr)					\
void									\
name(const char *fmt, ...)						\
{									\
	va_list	ap;							\
	int	saved = errno;						\
									\
	va_start(ap, fmt);						\
	log_vline(level, witherr ? strerror(saved) : NULL, fmt, ap);	\
	va_end(ap);							\
	errno = saved;							\
}

LOG_FN(log_trace, LOG_LVL_TRACE, 0)
LOG_FN(log_debug, LOG_LVL_DEBUG, 0)
LOG_FN(log_info, LOG_LVL_INFO, 0)
LOG_FN(log_warn, LOG_LVL_WARN, 1)
LOG_FN(log_warnx, LOG_LVL_WARN, 0)
LOG_FN(log_error, LOG_LVL_ERROR, 0)

void
fatal(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	log_vline(LOG_LVL_ERROR, strerror(saved), fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vline(LOG_LVL_ERROR, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

char *
log_escape(char *dst, size_t dstlen, const void *src, size_t n)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*s = src;
	size_t			 i, o = 0;

	if (dstlen == 0)
		return dst;
	for (i = 0; i < n; i++) {
		unsigned char	c = s[i];
		size_t		need = (c == '\\' || c == '"') ? 2 :
		    (c >= 0x20 && c < 0x7f) ? 1 : 4;

		/* the last byte fits without "..." after it; others need
		 * room for "..." in case what follows does not fit */
		if (o + need + (i + 1 < n ? 3 : 0) + 1 > dstlen) {
			while (o > 0 && o + 4 > dstlen)
				o--;
			if (o + 4 <= dstlen) {
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (need == 1) {
			dst[o++] = (char)c;
		} else if (need == 2) {
			dst[o++] = '\\';
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return dst;
}
