/*
 * wakeup.h -- wake an event loop from another thread (an eventfd watched
 * by a persistent EV_READ event).  Used by the worker pool and the audit
 * log writer to hand finished work back to the loop.
 */
#ifndef COMMON_WAKEUP_H
#define COMMON_WAKEUP_H

#include <event2/event.h>

struct wakeup {
	int		 fd;		/* eventfd, -1 when not set up */
	struct event	*ev;
	void		(*fn)(void *);
	void		*arg;
};

/* fn(arg) runs on base's loop after each wakeup_post().  0 or ERR_*. */
int	wakeup_init(struct wakeup *, struct event_base *, void (*)(void *),
	    void *);
/* Any thread; several posts before the loop runs give one call. */
void	wakeup_post(struct wakeup *);
/* NULL-safe on a wakeup that was never set up (fd -1). */
void	wakeup_free(struct wakeup *);

#endif
