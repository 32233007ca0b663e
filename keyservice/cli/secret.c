/*
 * secret.c -- passwords and passphrases for the CLI: the first line of
 * stdin (--password-stdin, --passphrase-stdin) or a prompt on the
 * terminal with echo off; and a jansson allocator that wipes on free, so
 * secrets that pass through JSON do not linger in freed memory.
 *
 * Runs in: the admin's shell.
 * Failure policy: an empty, over-long or mismatched secret, or no
 * terminal to prompt on, is ERR_INVAL with a message; nothing is echoed.
 * SECURITY: secrets are read byte by byte with read(2) (no stdio buffer
 * keeps a copy) into the caller's fixed buffer, which the caller wipes;
 * the terminal's echo is restored before any signal that arrived while
 * it was off is delivered.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "keyservice/cli/cli.h"

/* One line from fd into buf; the newline is dropped. */
static int
cli__read_line(char *buf, size_t size, int fd)
{
	size_t	n = 0;
	ssize_t	r;
	char	c;
	int	over = 0;

	for (;;) {
		if ((r = read(fd, &c, 1)) < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err_set(ERR_IO, "reading the secret: %s",
			    strerror(errno));
			return ERR_IO;
		}
		if (r == 0 || c == '\n')
			break;
		if (n + 1 < size)
			buf[n++] = c;
		else
			over = 1;
	}
	c = 0;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	if (over || n > CLI_SECRET_MAX) {
		explicit_bzero(buf, size);
		err_set(ERR_INVAL, "secret longer than %d bytes",
		    CLI_SECRET_MAX);
		return ERR_INVAL;
	}
	if (n == 0) {
		err_set(ERR_INVAL, "empty secret refused");
		return ERR_INVAL;
	}
	return 0;
}

/* Prompt on the terminal fd with echo off. */
static int
cli__prompt(char *buf, size_t size, int fd, const char *prompt)
{
	struct termios	old, noecho;
	sigset_t	block, saved;
	int		rc;

	if (tcgetattr(fd, &old) < 0) {
		err_set(ERR_IO, "terminal: %s", strerror(errno));
		return ERR_IO;
	}
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGTSTP);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &saved);
	if (tcsetattr(fd, TCSAFLUSH, &noecho) < 0) {
		sigprocmask(SIG_SETMASK, &saved, NULL);
		err_set(ERR_IO, "terminal: %s", strerror(errno));
		return ERR_IO;
	}
	/* after the flush, so an early answer is not thrown away */
	(void)write(fd, prompt, strlen(prompt));
	rc = cli__read_line(buf, size, fd);
	(void)tcsetattr(fd, TCSAFLUSH, &old);
	(void)write(fd, "\n", 1);
	sigprocmask(SIG_SETMASK, &saved, NULL);
	return rc;
}

static int
cli__from_tty(char *buf, size_t size, int fd, const char *prompt,
    int confirm)
{
	char	again[CLI_SECRET_MAX + 2];
	size_t	n;
	int	rc;

	if ((rc = cli__prompt(buf, size, fd, prompt)) < 0 || !confirm)
		return rc;
	if ((rc = cli__prompt(again, sizeof(again), fd, "Again: ")) == 0) {
		n = strlen(buf);
		if (n != strlen(again) || !ct_memeq(buf, again, n)) {
			err_set(ERR_INVAL, "the two entries differ");
			rc = ERR_INVAL;
		}
	}
	explicit_bzero(again, sizeof(again));
	if (rc < 0)
		explicit_bzero(buf, size);
	return rc;
}

int
cli_read_secret(char *buf, size_t size, int from_stdin, const char *what,
    int confirm)
{
	char	prompt[64];
	int	fd, rc;

	snprintf(prompt, sizeof(prompt), "%c%s: ", toupper((unsigned char)
	    what[0]), what + 1);
	if (from_stdin) {
		if (isatty(STDIN_FILENO))
			return cli__from_tty(buf, size, STDIN_FILENO, prompt,
			    confirm);
		return cli__read_line(buf, size, STDIN_FILENO);
	}
	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)) < 0) {
		err_set(ERR_INVAL, "no terminal to ask for the %s on; give "
		    "it on stdin with --%s-stdin", what, what);
		return ERR_INVAL;
	}
	rc = cli__from_tty(buf, size, fd, prompt, confirm);
	close(fd);
	return rc;
}

static void *
cli__json_malloc(size_t n)
{
	return malloc(n);
}

static void
cli__json_free(void *p)
{
	if (p == NULL)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

void
cli_json_wiping_alloc(void)
{
	json_set_alloc_funcs(cli__json_malloc, cli__json_free);
}
