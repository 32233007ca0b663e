/*
 * wakeup.c -- cross-thread wake-up of an event loop (see wakeup.h).
 *
 * Runs in: wakeup_post on any thread; the callback on the loop thread.
 * Failure policy: setup errors are returned; a failed eventfd read or
 * write other than EAGAIN is a bug (fatal).
 * SECURITY: no data crosses the eventfd, only a counter.
 */
#include <sys/eventfd.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/wakeup.h"

static void
wakeup_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wakeup	*w = arg;
	uint64_t	 cnt;
	ssize_t		 n;

	do {
		n = read(fd, &cnt, sizeof(cnt));
	} while (n == -1 && errno == EINTR);
	if (n == -1 && errno != EAGAIN)
		fatal("wakeup: eventfd read");
	w->fn(w->arg);
}

int
wakeup_init(struct wakeup *w, struct event_base *base, void (*fn)(void *),
    void *arg)
{
	w->fn = fn;
	w->arg = arg;
	w->ev = NULL;
	if ((w->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		err_set(ERR_IO, "eventfd: %s", strerror(errno));
		return ERR_IO;
	}
	w->ev = event_new(base, w->fd, EV_READ | EV_PERSIST, wakeup_cb, w);
	if (w->ev == NULL || event_add(w->ev, NULL) == -1) {
		err_set(ERR_GENERIC, "cannot watch eventfd");
		return ERR_GENERIC;
	}
	return 0;
}

void
wakeup_post(struct wakeup *w)
{
	uint64_t	one = 1;
	ssize_t		n;

	do {
		n = write(w->fd, &one, sizeof(one));
	} while (n == -1 && errno == EINTR);
	/* EAGAIN: the counter is full, so the loop is awake anyway */
	if (n == -1 && errno != EAGAIN)
		fatal("wakeup: eventfd write");
}

void
wakeup_free(struct wakeup *w)
{
	if (w->ev != NULL)
		event_free(w->ev);
	if (w->fd != -1)
		close(w->fd);
	w->ev = NULL;
	w->fd = -1;
}
