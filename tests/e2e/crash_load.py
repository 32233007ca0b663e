"""
Load under SIGKILL, for the crash-safety tests (test_smtp_durability,
test_imap_durability): client threads that send numbered items, each
retried until acknowledged, and a driver that kills mailsrv with SIGKILL
at random moments of the run and starts it again.
"""
import random
import threading
import time


def new_progress(seconds):
    """The shared progress of a run that must end within seconds."""
    return {"lock": threading.Lock(), "acked": 0,
            "deadline": time.monotonic() + seconds}


class LoadClient(threading.Thread):
    """Sends items 0..per_thread-1, each retried (attempt(i, a) returns
    True once item i is acknowledged) until acknowledged; gives up after
    more than max_errors unexpected answers, recorded in self.errors."""

    max_errors = 10

    def __init__(self, name, per_thread, progress):
        super().__init__(name=name, daemon=True)
        self.per_thread = per_thread
        self.progress = progress
        self.errors = []

    def attempt(self, i, a):
        raise NotImplementedError

    def close(self):
        """The end of the run (a clean logout)."""

    def run(self):
        try:
            for i in range(self.per_thread):
                a = 0
                while not self.attempt(i, a):
                    a += 1
                    if len(self.errors) > self.max_errors:
                        return
                with self.progress["lock"]:
                    self.progress["acked"] += 1
        except Exception as e:      # reported by the test
            self.errors.append(("exception", repr(e)))
        finally:
            self.close()


def kill_during(node, clients, progress, total, kills, restart):
    """Start the clients; kill mailsrv (SIGKILL) `kills` times, at random
    moments between 10% and 90% of `total` acknowledgements, and
    restart(node) it each time; wait for the clients.  Returns a line
    naming the seed and when the kills came, for failure messages."""
    rnd = random.Random()
    seed = rnd.randrange(1 << 30)
    rnd.seed(seed)
    kill_at = sorted(rnd.sample(range(total // 10, total * 9 // 10), kills))
    for c in clients:
        c.start()
    done = []
    for k in kill_at:
        while progress["acked"] < k and any(c.is_alive() for c in clients):
            time.sleep(0.005)
        time.sleep(rnd.random() * 0.05)
        done.append(progress["acked"])
        rc = node.kill9("mailsrv")
        assert rc == -9, rc
        restart(node)
    for c in clients:
        c.join(max(1.0, progress["deadline"] - time.monotonic() + 5))
    return "seed=%d kills at acked=%s" % (seed, done)
