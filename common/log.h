/*
 * log.h -- one log API for every daemon.
 *
 * One line per event: "<time> <ident>[<pid>] <level>: <message>", where the
 * message is "<sessid> <subsys> <event> key=value ...".  Peer data goes
 * through log_escape() first.  Never pass secrets, keys or message bodies.
 */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <stddef.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
	LOG_LVL_TRACE,
};

#define LOG_TO_STDERR	0x01
#define LOG_TO_SYSLOG	0x02

void	log_init(const char *, int, int);
void	log_setlevel(int);
int	log_getlevel(void);
int	log_level_parse(const char *, int *);

void	log_trace(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_error(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

/*
 * Copy src (n bytes) into dst as printable ASCII: space and '=' stay,
 * other bytes outside 0x21-0x7e become \xNN, backslash and quote are
 * escaped.  dst is always NUL-terminated; output is cut to fit with "...".
 * Returns dst.
 */
char	*log_escape(char *, size_t, const void *, size_t);

#endif
