"""
imap_util.py -- helpers for the IMAP end-to-end tests (test_imap_*.py).

Standard library only.  Four parts:

1. A small IMAP client (Client) on a raw socket: implicit TLS ("imaps"),
   STARTTLS ("starttls") or plaintext ("plain"); synchronizing and
   non-synchronizing literals, pipelining, IDLE, COMPRESS=DEFLATE (raw
   deflate on the wire after "COMPRESS DEFLATE" succeeds).
2. An IMAP response parser (tokenize / Resp): atoms, numbers, quoted
   strings, literals and literal8, NIL, nested lists, bracketed section
   names (BODY[HEADER.FIELDS (A B)]<0>) and response codes.  Values:
   Atom (a str subclass) for atoms, int for numbers, bytes for strings,
   None for NIL, list for lists.  Tests compare these structures, never
   the server's text, so quoting choices do not matter.
3. An independent model of a message (Part): the raw MIME tree split by
   this file, header parameters read with Python's email package, and
   from it RFC 3501 7.4.2 BODY/BODYSTRUCTURE, ENVELOPE, every BODY[...]
   section, BINARY[...] and BINARY.SIZE[...] (RFC 3516).  Where RFC 3501
   leaves a choice the model follows Dovecot (documented at each place).
4. The test corpus, modified UTF-7, sequence-set helpers, node start-up.
"""
import base64
import binascii
import datetime
import os
import random
import re
import socket
import ssl
import time
import zlib
from email import policy as email_policy
from email.parser import BytesParser

import pytest

from smtp_util import (ALICE, BOB, CAROL,  # noqa: F401 (re-exported)
                       password, start_mail_node)

TIMEOUT = 30.0
HOST = "127.0.0.1"
# IMAP_DEBUG=1 prints every command sent and response read (to stderr,
# shown by pytest for failing tests).
DEBUG = bool(os.environ.get("IMAP_DEBUG"))

# Failed logins are part of several tests: keep the guessing throttle out
# of the way (it is tested by the keyservice suite).
IMAP_FAST = {"keyservice": {"login_free_failures": "100"}}

SPECIAL_USE = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash",
               "Junk": "\\Junk", "Archive": "\\Archive"}
DEFAULT_MAILBOXES = ["INBOX"] + list(SPECIAL_USE)

# Capabilities the server must announce once a user is logged in (the
# SASL ones, AUTH=PLAIN and SASL-IR, are checked before login: see
# test_imap_sessions.py).  LITERAL+ or LITERAL- is checked separately;
# APPENDLIMIT=<n> and COMPRESS=DEFLATE too.
POSTAUTH_CAPS = ["IMAP4REV1", "IMAP4REV2", "IDLE", "UIDPLUS", "MOVE",
                 "NAMESPACE", "ID", "ENABLE", "UNSELECT", "CHILDREN",
                 "SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS", "CONDSTORE",
                 "QRESYNC", "ESEARCH", "SEARCHRES", "STATUS=SIZE",
                 "MULTIAPPEND", "UTF8=ACCEPT", "COMPRESS=DEFLATE", "QUOTA"]


# ================================================================ node

def find_knob(section, word, path=None):
    """The first key of [section] in conf/amanat.conf whose name contains
    word (e.g. a quota knob added later), or None."""
    from amanat_node import REPO
    path = path or os.path.join(REPO, "conf", "amanat.conf")
    sec = None
    try:
        with open(path) as f:
            for line in f:
                m = re.match(r"\s*\[([a-z0-9_]+)\]", line)
                if m:
                    sec = m.group(1)
                    continue
                m = re.match(r"\s*#?\s*([a-z0-9_]+)\s*[=(]", line)
                if sec == section and m and word in m.group(1):
                    return m.group(1)
    except FileNotFoundError:
        pass
    return None


def imap_overrides(*more):
    out = {s: dict(k) for s, k in IMAP_FAST.items()}
    for o in more:
        for sec, knobs in (o or {}).items():
            out.setdefault(sec, {}).update(knobs)
    return out


def start_imap_node(tmpdir, extra=None):
    """A demo node (template copy) running keyservice and mailsrv; the
    demo users' passwords are in node.users."""
    return start_mail_node(tmpdir, imap_overrides(extra))


def pw(node, user):
    return password(node, user)


# ================================================================ parser

class Atom(str):
    """An IMAP atom (flags, keywords, response names, section names)."""

    def __repr__(self):
        return "Atom(%s)" % str.__repr__(self)


class ParseError(ValueError):
    pass


_ATOM_STOP = b" ()\"{\r\n"


def tokenize(data, pos=0, code=False):
    """Parse IMAP values from data[pos:] until the end, a CRLF at top
    level, or (code=True) a "]"; returns (values, pos)."""
    stack = [[]]
    n = len(data)
    while pos < n:
        c = data[pos:pos + 1]
        if c == b" ":
            pos += 1
        elif c == b"\r" or c == b"\n":
            if len(stack) > 1:
                raise ParseError("line ends inside a list at %d: %r" %
                                 (pos, data[:200]))
            break
        elif c == b"(":
            stack.append([])
            pos += 1
        elif c == b")":
            if len(stack) == 1:
                raise ParseError("unbalanced ) at %d: %r" % (pos, data[:200]))
            lst = stack.pop()
            stack[-1].append(lst)
            pos += 1
        elif c == b"]" and code:
            if len(stack) > 1:
                raise ParseError("] inside a list at %d" % pos)
            break
        elif c == b'"':
            pos += 1
            out = bytearray()
            while True:
                if pos >= n:
                    raise ParseError("unterminated quoted string")
                ch = data[pos:pos + 1]
                if ch == b"\\":
                    out += data[pos + 1:pos + 2]
                    pos += 2
                elif ch == b'"':
                    pos += 1
                    break
                elif ch in (b"\r", b"\n"):
                    raise ParseError("CR/LF in quoted string")
                else:
                    out += ch
                    pos += 1
            stack[-1].append(bytes(out))
        elif c == b"{" or data[pos:pos + 2] == b"~{":
            m = re.compile(rb"~?\{(\d+)\+?\}\r\n").match(data, pos)
            if not m:
                raise ParseError("bad literal at %d: %r" %
                                 (pos, data[pos:pos + 30]))
            ln = int(m.group(1))
            start = m.end()
            if start + ln > n:
                raise ParseError("literal runs past the data")
            stack[-1].append(bytes(data[start:start + ln]))
            pos = start + ln
        else:
            start = pos
            depth = 0
            while pos < n:
                ch = data[pos:pos + 1]
                if depth:
                    if ch == b"[":
                        depth += 1
                    elif ch == b"]":
                        depth -= 1
                    elif ch in (b"\r", b"\n"):
                        raise ParseError("line ends inside [ ]")
                    pos += 1
                    continue
                if ch in _ATOM_STOP or (code and ch == b"]"):
                    break
                if ch == b"[" and not code:
                    depth = 1
                pos += 1
            word = data[start:pos]
            if not word:
                raise ParseError("unexpected byte %r at %d" % (c, pos))
            if word.isdigit():
                stack[-1].append(int(word))
            elif word.upper() == b"NIL":
                stack[-1].append(None)
            else:
                stack[-1].append(Atom(word.decode("latin-1")))
    if len(stack) != 1:
        raise ParseError("unbalanced ( in %r" % data[:300])
    return stack[0], pos


def parse_values(data):
    vals, _ = tokenize(data)
    return vals


STATUS_KINDS = ("OK", "NO", "BAD", "BYE", "PREAUTH")


class Resp:
    """One server response (a line with its literals, CRLF stripped).

    tag   b"*", b"+" or the command tag
    kind  "OK"/"NO"/"BAD"/"BYE"/"PREAUTH", a data name ("FETCH",
          "EXISTS", "LIST", ...) upper-cased, or "+" for a continuation
    num   the number of "* n EXISTS|EXPUNGE|FETCH|RECENT", else None
    code  [name, args...] of a "[...]" response code, else None
    text  the human-readable text of status/continuation responses
    data  the parsed values after the name (data responses)
    """

    def __init__(self, raw):
        self.raw = raw
        self.num = None
        self.code = None
        self.text = b""
        self.data = []
        sp = raw.find(b" ")
        self.tag = raw if sp < 0 else raw[:sp]
        rest = b"" if sp < 0 else raw[sp + 1:]
        if self.tag == b"+":
            self.kind = "+"
            self.text = rest
            return
        m = re.match(rb"(\d+) ", rest)
        if m and self.tag == b"*":
            self.num = int(m.group(1))
            rest = rest[m.end():]
        sp = rest.find(b" ")
        name = rest if sp < 0 else rest[:sp]
        rest = b"" if sp < 0 else rest[sp + 1:]
        self.kind = name.decode("latin-1").upper()
        if self.kind in STATUS_KINDS and self.num is None:
            if rest.startswith(b"["):
                vals, end = tokenize(rest, 1, code=True)
                if end >= len(rest) or rest[end:end + 1] != b"]":
                    raise ParseError("unterminated response code: %r" % raw)
                self.code = vals
                rest = rest[end + 1:].lstrip(b" ")
            self.text = rest
        else:
            self.data, _ = tokenize(rest)

    @property
    def code_name(self):
        if not self.code:
            return None
        return str(self.code[0]).upper()

    def fetch(self):
        """The attribute dict of a FETCH response (normalized keys)."""
        assert self.kind == "FETCH", self.raw[:200]
        assert len(self.data) == 1 and isinstance(self.data[0], list), \
            self.raw[:300]
        items = self.data[0]
        assert len(items) % 2 == 0, self.raw[:300]
        out = {}
        for i in range(0, len(items), 2):
            out[fetch_key(items[i])] = items[i + 1]
        return out

    def __repr__(self):
        return "<Resp %r>" % self.raw[:300]


def fetch_key(name):
    """A FETCH attribute name in one spelling: upper case, single
    spaces, no space inside parentheses or brackets."""
    s = str(name).upper()
    s = re.sub(r"\s+", " ", s)
    s = re.sub(r"\(\s+", "(", s)
    s = re.sub(r"\s+\)", ")", s)
    s = re.sub(r"\[\s+", "[", s)
    s = re.sub(r"\s+\]", "]", s)
    return s


def response_key(item):
    """The key a FETCH response uses for a requested item: BODY.PEEK ->
    BODY, BINARY.PEEK -> BINARY, <start.len> -> <start>."""
    k = fetch_key(item)
    k = re.sub(r"^BODY\.PEEK\[", "BODY[", k)
    k = re.sub(r"^BINARY\.PEEK\[", "BINARY[", k)
    k = re.sub(r"<(\d+)\.\d+>$", r"<\1>", k)
    return k


class Result:
    """The responses to one command: its untagged responses and
    continuations, and the tagged completion."""

    def __init__(self, tag, untagged, tagged):
        self.tag = tag
        self.untagged = untagged
        self.tagged = tagged
        self.status = tagged.kind
        self.code = tagged.code
        self.text = tagged.text

    def __repr__(self):
        lines = [r.raw[:400] for r in self.untagged] + [self.tagged.raw]
        return "<Result %s>" % b"\n".join(lines).decode("latin-1")

    @property
    def code_name(self):
        return self.tagged.code_name

    def all(self, kind):
        return [r for r in self.untagged if r.kind == kind]

    def one(self, kind):
        rs = self.all(kind)
        assert len(rs) == 1, "want one %s in %r" % (kind, self)
        return rs[0]

    def fetches(self):
        """[(seq, {key: value})] of the FETCH responses."""
        return [(r.num, r.fetch()) for r in self.all("FETCH")]

    def by_uid(self):
        """{uid: attrs} of the FETCH responses (that carry a UID); the
        attributes of several responses for one message are merged."""
        out = {}
        for seq, a in self.fetches():
            if "UID" in a:
                out.setdefault(a["UID"], {}).update(a)
        return out

    def codes(self):
        """Every response code, untagged OK/NO/BAD and tagged."""
        return [r.code for r in self.untagged + [self.tagged] if r.code]

    def code_of(self, name):
        for c in self.codes():
            if str(c[0]).upper() == name:
                return c
        return None


class ImapError(AssertionError):
    pass


# ================================================================ client

class Lit:
    """A literal argument: sync (wait for "+"), nonsync ({n+}), and
    binary (literal8, ~{n})."""

    def __init__(self, data, sync=True, binary=False):
        self.data = data
        self.sync = sync
        self.binary = binary

    def head(self):
        return ("%s{%d%s}\r\n" % ("~" if self.binary else "",
                                  len(self.data),
                                  "" if self.sync else "+")).encode()


class Client:
    """
    One IMAP connection.  mode: "imaps" (implicit TLS), "starttls"
    (plain port, STARTTLS done here) or "plain".  Every read has a
    timeout (a hung server fails the test instead of hanging it).
    """

    def __init__(self, node, mode="imaps", timeout=TIMEOUT, port=None):
        self.node = node
        self.mode = mode
        self.timeout = timeout
        self.buf = bytearray()
        self.ntag = 0
        self.inflate = None
        self.deflate = None
        self.wire_in = 0          # bytes read from the socket
        self.wire_out = 0
        pname = "imaps" if mode == "imaps" else "imap"
        self.port = port or node.port(pname)
        sock = socket.create_connection((HOST, self.port), timeout=timeout)
        if mode == "imaps":
            sock = node.ssl_context().wrap_socket(sock, server_hostname=HOST)
        self.sock = sock
        self.greeting = self.read()
        if self.greeting.tag != b"*" or self.greeting.kind not in (
                "OK", "PREAUTH"):
            raise ImapError("bad greeting %r" % self.greeting.raw)
        self.caps = caps_of(self.greeting.code)
        if mode == "starttls":
            self.starttls()

    # -------------------------------------------------------- transport
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        if DEBUG:
            import sys
            print("C%d> %r" % (id(self) % 1000, data[:300]), file=sys.stderr)
        if self.deflate is not None:
            data = self.deflate.compress(data) + \
                self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.wire_out += len(data)
        self.sock.sendall(data)

    def _fill(self, timeout=None):
        """Read more bytes into buf; False on EOF."""
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return False
            self.wire_in += len(chunk)
            if self.inflate is not None:
                chunk = self.inflate.decompress(chunk)
                if not chunk:
                    continue
            self.buf += chunk
            return True

    def readline(self, timeout=None):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i + 2])
                del self.buf[:i + 2]
                return line
            if not self._fill(timeout):
                raise EOFError("server closed the connection; pending %r" %
                               bytes(self.buf[:300]))

    def read_exact(self, n, timeout=None):
        while len(self.buf) < n:
            if not self._fill(timeout):
                raise EOFError("EOF inside a %d-byte literal" % n)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_raw(self, timeout=None):
        """One response, with its literals, CRLF stripped."""
        out = bytearray()
        while True:
            line = self.readline(timeout)
            out += line
            m = re.search(rb"~?\{(\d+)\}\r\n$", line)
            if not m:
                return bytes(out[:-2])
            out += self.read_exact(int(m.group(1)), timeout)

    def read(self, timeout=None):
        raw = self.read_raw(timeout)
        if DEBUG:
            import sys
            print("S%d< %r" % (id(self) % 1000, raw[:300]), file=sys.stderr)
        return Resp(raw)

    def poll(self, timeout):
        """A response if one arrives within timeout seconds, else None."""
        if b"\r\n" in self.buf:
            return self.read()
        try:
            if not self._fill(timeout):
                raise EOFError("server closed the connection")
        except (socket.timeout, TimeoutError, ssl.SSLWantReadError):
            return None
        return self.read()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def eof(self, timeout=5.0):
        """True if the server closes the connection within timeout."""
        try:
            while True:
                if not self._fill(timeout):
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True

    # -------------------------------------------------------- commands
    def tag(self):
        self.ntag += 1
        return "t%d" % self.ntag

    def until_tagged(self, tag, untagged=None, timeout=None):
        untagged = [] if untagged is None else untagged
        tag = tag.encode() if isinstance(tag, str) else tag
        while True:
            r = self.read(timeout)
            if r.tag == tag:
                return Result(tag, untagged, r)
            if r.tag not in (b"*", b"+"):
                raise ImapError("response for another tag %r while waiting "
                                "for %r" % (r.raw[:200], tag))
            untagged.append(r)

    def cmd(self, *parts, tag=None, timeout=None):
        """Send one command (parts: str/bytes pieces and Lit literals,
        joined as given; the tag and the final CRLF are added) and return
        its Result.  A synchronizing literal is sent after the server's
        "+"; if the server answers with the tagged completion instead (a
        refused literal), the rest of the command is not sent."""
        tag = tag or self.tag()
        untagged = []
        out = tag.encode() + b" "
        for p in parts:
            if isinstance(p, Lit):
                out += p.head()
                if p.sync:
                    self.send(out)
                    out = b""
                    while True:
                        r = self.read(timeout)
                        if r.tag == b"+":
                            break
                        if r.tag == tag.encode():
                            return Result(tag.encode(), untagged, r)
                        untagged.append(r)
                out += p.data
            else:
                out += p.encode() if isinstance(p, str) else p
        self.send(out + b"\r\n")
        return self.until_tagged(tag, untagged, timeout)

    def ok(self, *parts, **kw):
        r = self.cmd(*parts, **kw)
        if r.status != "OK":
            raise ImapError("%s: %r" % (parts[0] if parts else "", r))
        return r

    def starttls(self):
        r = self.ok("STARTTLS")
        if self.buf:
            raise ImapError("data after the STARTTLS OK: %r" % self.buf)
        self.sock = self.node.ssl_context().wrap_socket(
            self.sock, server_hostname=HOST)
        return r

    def capability(self):
        r = self.ok("CAPABILITY")
        self.caps = caps_of(r.one("CAPABILITY").data)
        return self.caps

    def login(self, user, secret=None):
        secret = pw(self.node, user) if secret is None else secret
        r = self.cmd("LOGIN ", quote(user), " ", quote(secret))
        if r.status == "OK":
            if r.code_name == "CAPABILITY":
                self.caps = caps_of(r.code)
            else:
                self.capability()
        return r

    def authenticate_plain(self, user, secret=None, authz="", ir=True):
        secret = pw(self.node, user) if secret is None else secret
        token = base64.b64encode(("%s\0%s\0%s" % (authz, user, secret))
                                 .encode()).decode()
        if ir:
            return self.cmd("AUTHENTICATE PLAIN " + token)
        tag = self.tag()
        self.send(tag + " AUTHENTICATE PLAIN\r\n")
        untagged = []
        while True:
            r = self.read()
            if r.tag == b"+":
                break
            if r.tag == tag.encode():
                return Result(tag.encode(), untagged, r)
            untagged.append(r)
        self.send(token + "\r\n")
        return self.until_tagged(tag, untagged)

    def select(self, mailbox, examine=False, extra=""):
        return self.ok("EXAMINE " if examine else "SELECT ",
                       mbox(mailbox), extra)

    def logout(self):
        try:
            r = self.cmd("LOGOUT")
            assert r.status == "OK", r
            assert any(u.kind == "BYE" for u in r.untagged), r
        finally:
            self.close()

    def compress(self):
        """COMPRESS DEFLATE, then raw deflate both ways (RFC 4978)."""
        r = self.cmd("COMPRESS DEFLATE")
        if r.status != "OK":
            return r
        self.deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION,
                                        zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)
        if self.buf:
            pending = bytes(self.buf)
            self.buf = bytearray(self.inflate.decompress(pending))
        return r

    # -------------------------------------------------------- IDLE
    def idle_start(self):
        tag = self.tag()
        self.send(tag + " IDLE\r\n")
        seen = []
        while True:
            r = self.read()
            if r.tag == b"+":
                return tag, seen
            if r.tag == tag.encode():
                raise ImapError("IDLE refused: %r" % r.raw)
            seen.append(r)

    def idle_done(self, tag):
        self.send(b"DONE\r\n")
        return self.until_tagged(tag)

    def fetch(self, seqset, items, uid=False, extra=""):
        return self.ok("UID " if uid else "", "FETCH %s %s%s" % (
            seqset, items, extra))


def caps_of(vals):
    """The upper-cased capability names of a CAPABILITY response or
    code (its first value "CAPABILITY" dropped)."""
    if not vals:
        return set()
    vals = list(vals)
    if str(vals[0]).upper() == "CAPABILITY":
        vals = vals[1:]
    return {str(v).upper() for v in vals}


def connect(node, user=None, mode="imaps", secret=None, **kw):
    """A Client logged in as user (if given)."""
    c = Client(node, mode, **kw)
    if user is not None:
        r = c.login(user, secret)
        if r.status != "OK":
            c.close()
            raise ImapError("LOGIN %s failed: %r" % (user, r))
    return c


def quote(s):
    """A quoted string (for ASCII/UTF-8 text without CR/LF)."""
    if isinstance(s, bytes):
        s = s.decode("utf-8")
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mbox(name):
    """A mailbox name argument (quoted string)."""
    return quote(name)


def appendlimit(caps):
    for c in caps:
        if c.startswith("APPENDLIMIT="):
            return int(c.split("=", 1)[1])
    return None


def literal_plus(caps, size):
    """True if a {n+} literal of size bytes may be sent."""
    return "LITERAL+" in caps or ("LITERAL-" in caps and size <= 4096)


def append_many(c, mailbox, msgs, flags=None, batch=200):
    """APPEND each message (pipelined, non-synchronizing literals when
    allowed); returns the APPENDUID uids in order (None where the server
    gave none)."""
    uids = []
    for s in range(0, len(msgs), batch):
        chunk = msgs[s:s + batch]
        if not all(literal_plus(c.caps, len(m)) for m in chunk):
            for m in chunk:
                r = c.cmd("APPEND ", mbox(mailbox), " ",
                          "(%s) " % flags if flags else "", Lit(m))
                if r.status != "OK":
                    raise ImapError("APPEND: %r" % r)
                uids.append(appenduid(r))
            continue
        tags = []
        out = bytearray()
        for m in chunk:
            t = c.tag()
            tags.append(t)
            out += ("%s APPEND %s %s" % (t, mbox(mailbox),
                                         "(%s) " % flags if flags else "")
                    ).encode()
            out += Lit(m, sync=False).head() + m + b"\r\n"
        c.send(bytes(out))
        for t in tags:
            r = c.until_tagged(t)
            if r.status != "OK":
                raise ImapError("APPEND: %r" % r)
            uids.append(appenduid(r))
    return uids


def appenduid(r):
    """The UIDs of the [APPENDUID v uidset] code of a Result, or None."""
    code = r.code_of("APPENDUID")
    if code is None:
        return None
    got = uidset_list(code[2])
    return got[0] if len(got) == 1 else got


# ================================================================ sets

def uidset_list(s):
    """"1:3,7" (or an int) -> [1, 2, 3, 7] (ascending; "*" refused)."""
    if isinstance(s, int):
        return [s]
    out = []
    for piece in str(s).split(","):
        if ":" in piece:
            a, b = piece.split(":")
            a, b = int(a), int(b)
            out.extend(range(min(a, b), max(a, b) + 1))
        else:
            out.append(int(piece))
    return sorted(set(out))


def seqset(nums):
    """[1, 2, 3, 7] -> "1:3,7"."""
    nums = sorted(set(nums))
    out, i = [], 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else "%d:%d" % (nums[i], nums[j]))
        i = j + 1
    return ",".join(out)


def astr(v):
    """A mailbox name or other astring value as bytes."""
    if isinstance(v, bytes):
        return v
    if isinstance(v, (int, str)):
        return str(v).encode("utf-8")
    raise TypeError("not an astring: %r" % (v,))


def listing(r):
    """{name (str, as sent): (attributes upper-cased, delimiter)} of the
    LIST/LSUB responses of a Result."""
    out = {}
    for x in r.untagged:
        if x.kind not in ("LIST", "LSUB"):
            continue
        attrs, delim, name = x.data[0], x.data[1], x.data[2]
        out[astr(name).decode("utf-8", "surrogateescape")] = (
            {str(a).upper() for a in attrs},
            None if delim is None else astr(delim).decode())
    return out


def status_items(r):
    """{mailbox (str): {ITEM: value}} of the STATUS responses."""
    out = {}
    for x in r.all("STATUS"):
        name, items = x.data[0], x.data[1]
        d = {}
        for i in range(0, len(items), 2):
            d[str(items[i]).upper()] = items[i + 1]
        out[astr(name).decode("utf-8", "surrogateescape")] = d
    return out


def flagset(v):
    return {str(f).upper() for f in (v or [])}


# ================================================================ mUTF-7

def mutf7_encode(s):
    """RFC 3501 5.1.3 modified UTF-7."""
    out, run = [], []

    def flush():
        if run:
            b = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(b).decode().rstrip("=")
                       .replace("/", ",") + "-")
            run.clear()
    for ch in s:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(s):
    out, i = [], 0
    while i < len(s):
        if s[i] != "&":
            out.append(s[i])
            i += 1
            continue
        j = s.index("-", i)
        if j == i + 1:
            out.append("&")
        else:
            b64 = s[i + 1:j].replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            out.append(base64.b64decode(b64).decode("utf-16-be"))
        i = j + 1
    return "".join(out)


# ================================================================ model

def split_header(raw):
    """(header incl. the blank line, body) of a message or MIME part."""
    if raw.startswith(b"\r\n"):
        return b"\r\n", raw[2:]
    i = raw.find(b"\r\n\r\n")
    if i < 0:
        return raw, b""
    return raw[:i + 4], raw[i + 4:]


class Field:
    def __init__(self, name, raw):
        self.name = name            # bytes, as written
        self.raw = raw              # the field's lines, CRLFs included
        self.value = raw[len(name) + 1:]
        if self.value.endswith(b"\r\n"):
            self.value = self.value[:-2]


def header_fields(header):
    """The fields of a header section, in order (continuation lines
    belong to the field above them)."""
    fields = []
    for line in re.findall(rb"[^\r\n]*\r\n", header):
        if line == b"\r\n":
            break
        if line[:1] in (b" ", b"\t") and fields:
            f = fields[-1]
            fields[-1] = Field(f.name, f.raw + line)
            continue
        i = line.find(b":")
        if i <= 0:
            continue            # not a field (never in the corpus)
        fields.append(Field(line[:i].rstrip(b" \t"), line))
    return fields


def header_value(fields, name):
    """The raw value of the first field named name (bytes), or None."""
    for f in fields:
        if f.name.lower() == name.lower().encode():
            return f.value
    return None


def split_multipart(body, boundary):
    """The raw parts of a multipart body (RFC 2046 5.1.1): a part ends at
    the CRLF before the next delimiter line, which belongs to the
    delimiter."""
    delim = b"--" + boundary
    parts, start, pos = [], None, 0
    while pos <= len(body):
        eol = body.find(b"\r\n", pos)
        line = body[pos:] if eol < 0 else body[pos:eol]
        nxt = len(body) + 1 if eol < 0 else eol + 2
        if line.startswith(delim):
            tail = line[len(delim):]
            close = tail.startswith(b"--")
            if close:
                tail = tail[2:]
            if tail.strip(b" \t") == b"":
                if start is not None:
                    parts.append(body[start:max(start, pos - 2)])
                if close:
                    return parts
                start = nxt
        pos = nxt
    if start is not None:           # no close delimiter: to the end
        parts.append(body[start:])
    return parts


def _b(s):
    """A str of the email package (surrogate-escaped bytes) -> bytes."""
    if s is None:
        return None
    return s.encode("utf-8", "surrogateescape")


class Part:
    """
    One node of the MIME tree of a raw message (CRLF line ends).

    raw/header/body   bytes; header includes the blank line
    fields            [Field] of the header
    msg               email.message.Message of the header alone
                      (Python's parser reads Content-Type and
                      Content-Disposition with their parameters)
    maintype/subtype  lower-case str
    children          [Part] of a multipart, else None
    enclosed          the Part of a message/rfc822 body, else None
    """

    def __init__(self, raw, is_message=True):
        self.raw = raw
        self.is_message = is_message
        self.header, self.body = split_header(raw)
        self.fields = header_fields(self.header)
        self.msg = BytesParser(policy=email_policy.compat32).parsebytes(
            self.header, headersonly=True)
        ctype = self.msg.get_content_type()
        self.maintype, self.subtype = ctype.split("/", 1)
        self.children = None
        self.enclosed = None
        if self.maintype == "multipart":
            boundary = self.msg.get_boundary()
            assert boundary, "multipart without boundary"
            self.children = [Part(p, is_message=False) for p in
                             split_multipart(self.body, _b(boundary))]
        elif ctype == "message/rfc822":
            self.enclosed = Part(self.body, is_message=True)

    # ---------------------------------------------------- fields
    def value(self, name):
        return header_value(self.fields, name)

    def encoding(self):
        v = self.value("Content-Transfer-Encoding")
        return b"7bit" if v is None else v.strip().lower()

    def params(self):
        """[name, value, ...] of Content-Type, or None; text/* gets
        charset us-ascii when it names no charset (RFC 2045 5.2; Dovecot
        adds it also when Content-Type is present without charset)."""
        out = []
        if self.value("Content-Type") is not None:
            for k, v in self.msg.get_params()[1:]:
                if isinstance(v, tuple):
                    raise ValueError("RFC 2231 parameter in the corpus")
                out += [_b(k), _b(v)]
        if self.maintype == "text" and b"charset" not in [
                k.lower() for k in out[::2]]:
            out += [b"charset", b"us-ascii"]
        return out or None

    def disposition(self):
        if self.value("Content-Disposition") is None:
            return None
        kind = self.msg.get_content_disposition()
        ps = []
        for k, v in self.msg.get_params(header="content-disposition")[1:]:
            ps += [_b(k), _b(v)]
        return [_b(kind), ps or None]

    def language(self):
        v = self.value("Content-Language")
        if v is None:
            return None
        return [x.strip() for x in v.replace(b"\r\n", b"").split(b",")
                if x.strip()]

    def location(self):
        v = self.value("Content-Location")
        return None if v is None else v.replace(b"\r\n", b"").strip()

    def plain(self, name):
        v = self.value(name)
        return None if v is None else v.replace(b"\r\n", b"").strip()

    def lines(self, data=None):
        """Text lines of a body: its line ends (every corpus body ends
        with CRLF, so this is also the count with a last partial line)."""
        return (self.body if data is None else data).count(b"\n")

    # ---------------------------------------------------- structures
    def bodystructure(self, extended=True):
        """RFC 3501 7.4.2 BODYSTRUCTURE (extended) or BODY as values."""
        if self.children is not None:
            out = [c.bodystructure(extended) for c in self.children]
            out.append(self.subtype.encode())
            if extended:
                out += [self.params(), self.disposition(), self.language(),
                        self.location()]
            return out
        out = [self.maintype.encode(), self.subtype.encode(), self.params(),
               self.plain("Content-ID"), self.plain("Content-Description"),
               self.encoding(), len(self.body)]
        if self.enclosed is not None:
            out += [self.enclosed.envelope(),
                    self.enclosed.bodystructure(extended), self.lines()]
        elif self.maintype == "text":
            out.append(self.lines())
        if extended:
            out += [self.plain("Content-MD5"), self.disposition(),
                    self.language(), self.location()]
        return out

    def envelope(self):
        """RFC 3501 7.4.2 ENVELOPE from the raw header values (encoded
        words stay encoded).  Sender and Reply-To default to From."""
        def s(name):
            return self.plain(name)

        def a(name):
            v = self.value(name)
            if v is None:
                return None
            return parse_addresses(v) or None
        frm = a("From")
        return [s("Date"), s("Subject"), frm, a("Sender") or frm,
                a("Reply-To") or frm, a("To"), a("Cc"), a("Bcc"),
                s("In-Reply-To"), s("Message-ID")]

    # ---------------------------------------------------- sections
    def locate(self, nums):
        """The Part named by a part number list (RFC 3501 6.4.5)."""
        node = None
        for i, k in enumerate(nums):
            if i == 0:
                base = self
                if base.children is None:
                    if k != 1:
                        raise KeyError(nums)
                    node = base
                    continue
            else:
                base = node.enclosed if node.enclosed is not None else node
                if base.children is None:
                    if k != 1 or base is node:
                        raise KeyError(nums)
                    node = base
                    continue
            if not 1 <= k <= len(base.children):
                raise KeyError(nums)
            node = base.children[k - 1]
        return node

    def section(self, spec):
        """The bytes of BODY[spec] (spec without brackets or partial)."""
        spec = spec.strip()
        m = re.match(r"^((?:\d+\.)*\d+)?\.?(.*)$", spec)
        nums = [int(x) for x in m.group(1).split(".")] if m.group(1) else []
        rest = m.group(2).strip()
        word = rest.split(" ", 1)[0].upper()
        if not nums:
            msg = self
            if rest == "":
                return self.raw
        else:
            node = self.locate(nums)
            if rest == "":
                return node.body
            if word == "MIME":
                return node.header
            if node.enclosed is None:
                raise KeyError(spec)
            msg = node.enclosed
        if word == "HEADER":
            return msg.header
        if word == "TEXT":
            return msg.body
        if word in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            names = {n.upper().encode() for n in
                     re.findall(r"[^\s()]+", rest[len(word):])}
            neg = word.endswith(".NOT")
            sel = [f.raw for f in header_fields(msg.header)
                   if (f.name.upper() in names) != neg]
            return b"".join(sel) + b"\r\n"
        raise KeyError(spec)

    def binary(self, spec):
        """The decoded content of BINARY[spec] (a leaf part)."""
        node = self.locate([int(x) for x in spec.split(".")]) if spec \
            else self
        if node.children is not None:
            raise KeyError(spec)
        enc = node.encoding()
        if enc == b"base64":
            return base64.b64decode(re.sub(rb"\s+", b"", node.body))
        if enc == b"quoted-printable":
            return binascii.a2b_qp(node.body)
        return node.body

    def part_numbers(self):
        """[(number, Part, kind)] of every part, depth first: kind "part"
        for a MIME part (it has a MIME header: n.MIME), "body" for the
        body of a single-part message (the top level, or the message of
        a message/rfc822 part: its part "n.1")."""
        out = []

        def walk(container, prefix):
            if container.children is None:
                out.append((prefix + "1", container, "body"))
                return
            for i, c in enumerate(container.children, 1):
                num = prefix + str(i)
                out.append((num, c, "part"))
                if c.children is not None:
                    walk(c, num + ".")
                elif c.enclosed is not None:
                    walk(c.enclosed, num + ".")
        walk(self, "")
        return out


# ---------------------------------------------------------------- addresses

_ADDR_TOKEN = re.compile(rb"""
    (?P<ws>[ \t\r\n]+)
  | (?P<quoted>"(?:[^"\\]|\\.)*")
  | (?P<literal>\[(?:[^\]\\]|\\.)*\])
  | (?P<special>[<>@,;:.])
  | (?P<atom>[^ \t\r\n"()<>@,;:.\[\]]+)
  | (?P<open>\()
""", re.X | re.S)


def _addr_tokens(value):
    toks, pos = [], 0
    while pos < len(value):
        m = _ADDR_TOKEN.match(value, pos)
        if not m:
            raise ValueError("cannot tokenize address %r" % value)
        if m.lastgroup == "open":         # a comment: skipped
            depth, pos = 0, m.start()
            while pos < len(value):
                ch = value[pos:pos + 1]
                if ch == b"\\":
                    pos += 2
                    continue
                depth += ch == b"("
                depth -= ch == b")"
                pos += 1
                if depth == 0:
                    break
            continue
        pos = m.end()
        if m.lastgroup == "ws":
            continue
        t = m.group(0)
        if m.lastgroup == "quoted":
            toks.append(("q", re.sub(rb"\\(.)", rb"\1", t[1:-1])))
        elif m.lastgroup == "special":
            toks.append(("s", t))
        else:
            toks.append(("a", t))
    return toks


def parse_addresses(value):
    """RFC 5322 address list -> RFC 3501 address structures
    [name, adl, mailbox, host]; a group is [None, None, name, None], its
    members, then [None, None, None, None].  Display names keep encoded
    words as written; words are joined by single spaces, "." sticks to
    the word before it."""
    toks = _addr_tokens(value)
    out, i = [], 0

    def phrase(i):
        words = []
        while i < len(toks) and (toks[i][0] in ("a", "q") or
                                 toks[i][1] == b"."):
            if toks[i][1] == b"." and toks[i][0] == "s" and words:
                words[-1] += b"."
            else:
                words.append(toks[i][1])
            i += 1
        return words, i

    def addr_spec(i):
        local = b""
        while i < len(toks) and toks[i][1] not in (b"@", b">", b",", b";"):
            local += toks[i][1]
            i += 1
        host = None
        if i < len(toks) and toks[i][1] == b"@":
            i += 1
            host = b""
            while i < len(toks) and toks[i][1] not in (b">", b",", b";"):
                host += toks[i][1]
                i += 1
        return local, host, i

    def mailbox(i, words_i):
        words, j = phrase(i)
        if j < len(toks) and toks[j][1] == b"<":
            j += 1
            adl = None
            if j < len(toks) and toks[j][1] == b"@":       # source route
                route = b""
                while toks[j][1] != b":":
                    route += toks[j][1]
                    j += 1
                adl = route
                j += 1
            local, host, j = addr_spec(j)
            assert toks[j][1] == b">", value
            j += 1
            return [b" ".join(words) or None, adl, local, host], j
        local, host, j = addr_spec(i)
        return [None, None, local, host], j

    while i < len(toks):
        if toks[i][1] == b",":
            i += 1
            continue
        words, j = phrase(i)
        if j < len(toks) and toks[j][1] == b":" and words:
            out.append([None, None, b" ".join(words), None])
            j += 1
            while j < len(toks) and toks[j][1] != b";":
                if toks[j][1] == b",":
                    j += 1
                    continue
                a, j = mailbox(j, None)
                out.append(a)
            out.append([None, None, None, None])
            i = j + 1
            continue
        a, i = mailbox(i, None)
        out.append(a)
    return out


# ---------------------------------------------------------------- compare

def _lower(v):
    return v.lower() if isinstance(v, (bytes, str)) else v


def _norm_text(v):
    """Envelope strings: folding removed (CRLF dropped, TAB as SP, runs
    of blanks as one), outer blanks stripped."""
    if not isinstance(v, bytes):
        return v
    v = v.replace(b"\r", b"").replace(b"\n", b"").replace(b"\t", b" ")
    return re.sub(rb"  +", b" ", v).strip(b" ")


def _norm_params(p):
    """Parameter names and the charset value are case-insensitive; the
    order of the pairs carries no meaning."""
    if p is None or p == []:
        return None
    if not isinstance(p, list) or len(p) % 2:
        return ("BAD-PARAMS", p)
    pairs = []
    for i in range(0, len(p), 2):
        k, v = _lower(p[i]), p[i + 1]
        if k == b"charset":
            v = _lower(v)
        pairs.append((k, v))
    return sorted(pairs, key=repr)


def _norm_dsp(d):
    if d is None:
        return None
    if not isinstance(d, list) or len(d) != 2:
        return ("BAD-DSP", d)
    return [_lower(d[0]), _norm_params(d[1])]


def _norm_lang(v):
    if v is None:
        return None
    if isinstance(v, bytes):
        v = [v]
    return [_lower(x) for x in v]


def norm_envelope(e):
    if not isinstance(e, list) or len(e) != 10:
        return ("BAD-ENVELOPE", e)
    out = [_norm_text(e[0]), _norm_text(e[1])]
    for addrs in e[2:8]:
        if addrs is None or addrs == []:
            out.append(None)
            continue
        out.append([[_norm_text(a[0]), a[1], a[2], a[3]]
                    if isinstance(a, list) and len(a) == 4 else
                    ("BAD-ADDRESS", a) for a in addrs])
    out += [_norm_text(e[8]), _norm_text(e[9])]
    return out


def norm_body(b, extended=True):
    """A BODY/BODYSTRUCTURE value in one spelling: media types,
    subtypes, encodings, parameter names, disposition types and
    languages lower-cased (RFC 2045: case-insensitive), parameter pairs
    sorted, trailing extension fields the server left out padded with
    NIL (RFC 3501 body-ext-1part/mpart make them optional)."""
    if not isinstance(b, list) or not b:
        return ("BAD-BODY", b)
    if isinstance(b[0], list):
        n = 0
        while n < len(b) and isinstance(b[n], list):
            n += 1
        out = [norm_body(c, extended) for c in b[:n]]
        rest = b[n:]
        if not rest:
            return ("BAD-MULTIPART-NO-SUBTYPE", b)
        out.append(_lower(rest[0]))
        if extended:
            ext = list(rest[1:]) + [None] * max(0, 4 - len(rest[1:]))
            out += [_norm_params(ext[0]), _norm_dsp(ext[1]),
                    _norm_lang(ext[2]), ext[3]] + ext[4:]
        elif len(rest) > 1:
            out += rest[1:]
        return out
    if len(b) < 7:
        return ("BAD-1PART", b)
    out = [_lower(b[0]), _lower(b[1]), _norm_params(b[2]), b[3], b[4],
           _lower(b[5]), b[6]]
    rest = b[7:]
    if out[0] == b"message" and out[1] == b"rfc822":
        if len(rest) < 3:
            return ("BAD-MESSAGE-RFC822", b)
        out += [norm_envelope(rest[0]), norm_body(rest[1], extended),
                rest[2]]
        rest = rest[3:]
    elif out[0] == b"text":
        if not rest:
            return ("BAD-TEXT-NO-LINES", b)
        out.append(rest[0])
        rest = rest[1:]
    if extended:
        ext = list(rest) + [None] * max(0, 4 - len(rest))
        out += [ext[0], _norm_dsp(ext[1]), _norm_lang(ext[2]), ext[3]] + \
            ext[4:]
    else:
        out += rest
    return out


def body_diff(want, got, path="BODY"):
    """A list of readable differences between two normalized values."""
    if isinstance(want, list) and isinstance(got, list):
        out = []
        if len(want) != len(got):
            out.append("%s: %d fields, want %d: got %r want %r" % (
                path, len(got), len(want), got, want))
            return out
        for i, (w, g) in enumerate(zip(want, got)):
            out += body_diff(w, g, "%s[%d]" % (path, i))
        return out
    if want != got or type(want) is not type(got):
        return ["%s: got %r, want %r" % (path, got, want)]
    return []


# ================================================================ corpus

def crlf(text):
    """str/bytes with LF line ends -> bytes with CRLF."""
    if isinstance(text, str):
        text = text.encode("utf-8")
    return re.sub(rb"\r?\n", b"\r\n", text)


def b64lines(data, width=76):
    s = base64.b64encode(data)
    return b"".join(s[i:i + width] + b"\r\n" for i in range(0, len(s), width))


def rand_bytes(n, seed):
    r = random.Random(seed)
    return bytes(r.getrandbits(8) for _ in range(n))


def corpus(mk):
    """[(name, raw bytes)] of varied messages, every one naming the
    marker mk in its Subject (where it has one) and in a text body."""
    pdf = rand_bytes(3000, 1)
    png = rand_bytes(700, 2)
    gif = rand_bytes(333, 3)
    blob = rand_bytes(1025, 4)
    out = []

    out.append(("simple", crlf(
        "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\n"
        "From: Fred Foobar <foobar@Blurdybloop.example>\n"
        "Subject: afternoon meeting %s\n"
        " folded onto a second line\n"
        "To: mooch@owatagu.siam.edu.example\n"
        "Cc: \"Doe, John\" <jdoe@example.org>, plain@example.net\n"
        "Message-Id: <B27397-0100000-%s@Blurdybloop.example>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n"
        "\n"
        "Hello Joe, do you think we can meet at 3:30 tomorrow? %s\n"
        "\n"
        "-- \nFred\n" % (mk, mk, mk))))

    out.append(("alternative", crlf(
        "Date: Tue, 01 Aug 2023 10:00:00 +0200\n"
        "From: Alice <alice@finance.amanat.test>\n"
        "To: Bob <bob@finance.amanat.test>\n"
        "Subject: alternative %s\n"
        "Message-ID: <alt-%s@example.org>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/alternative; boundary=\"alt-1\"\n"
        "\n"
        "This is the preamble.\n"
        "--alt-1\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "Gr=C3=BC=C3=9Fe %s, this line is long enough to need a soft line"
        " break=\n here.\n"
        "\n"
        "--alt-1\n"
        "Content-Type: text/html; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        "<html><body><p>Grüße %s</p></body></html>\n"
        "\n"
        "--alt-1--\n"
        "This is the epilogue.\n" % (mk, mk, mk, mk))))

    mixed = crlf(
        "Date: Wed, 02 Aug 2023 11:00:00 +0000\n"
        "From: Bob <bob@finance.amanat.test>\n"
        "To: Alice <alice@finance.amanat.test>\n"
        "Subject: report with attachments %s\n"
        "Message-ID: <mixed-%s@example.org>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/mixed;\n"
        " boundary=\"=_mixed (2)\"\n"
        "\n"
        "--=_mixed (2)\n"
        "Content-Type: text/plain; charset=us-ascii; format=flowed\n"
        "\n"
        "The report is attached. %s\n"
        "\n"
        "--=_mixed (2)\n"
        "Content-Type: application/pdf; name=\"report q3.pdf\"\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-Disposition: attachment; filename=\"report q3.pdf\";"
        " size=3000\n"
        "\n" % (mk, mk, mk)) + b64lines(pdf) + crlf(
        "\n"
        "--=_mixed (2)\n"
        "Content-Type: image/png; name=dot.png\n"
        "Content-Transfer-Encoding: BASE64\n"
        "Content-ID: <img1.%s@example.org>\n"
        "Content-Description: A tiny image\n"
        "Content-Disposition: inline\n"
        "\n" % mk) + b64lines(png, 64) + crlf("\n--=_mixed (2)--\n")
    out.append(("mixed", mixed))

    inner_alt = crlf(
        "Date: Thu, 03 Aug 2023 09:15:00 -0400\n"
        "From: \"Carol C.\" <carol@health.amanat.test>\n"
        "To: team@example.org\n"
        "Subject: the enclosed one %s\n"
        "Message-ID: <inner-%s@example.org>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/alternative; boundary=in-alt\n"
        "\n"
        "--in-alt\n"
        "Content-Type: text/plain\n"
        "\n"
        "inner plain %s\n"
        "\n"
        "--in-alt\n"
        "Content-Type: text/enriched\n"
        "\n"
        "<bold>inner</bold> enriched\n"
        "\n"
        "--in-alt--\n" % (mk, mk, mk))
    inner_plain = crlf(
        "From: old@example.org\n"
        "To: older@example.org\n"
        "Subject: a plain old message %s\n"
        "\n"
        "no MIME at all %s\n" % (mk, mk))
    out.append(("rfc822", crlf(
        "Date: Fri, 04 Aug 2023 12:00:00 +0100\n"
        "From: Dave <dave@health.amanat.test>\n"
        "To: Alice <alice@finance.amanat.test>\n"
        "Subject: Fwd: two enclosed messages %s\n"
        "Message-ID: <fwd-%s@example.org>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=outer\n"
        "\n"
        "--outer\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        "See the two messages below. %s\n"
        "\n"
        "--outer\n"
        "Content-Type: message/rfc822\n"
        "Content-Description: forwarded message\n"
        "\n" % (mk, mk, mk)) + inner_alt + crlf(
        "\n"
        "--outer\n"
        "Content-Type: message/rfc822; name=old.eml\n"
        "Content-Disposition: attachment; filename=old.eml\n"
        "\n") + inner_plain + crlf("\n--outer--\n")))

    out.append(("rfc2047", crlf(
        "Date: Sat, 05 Aug 2023 08:00:00 +0000\n"
        "From: =?ISO-8859-1?Q?Andr=E9?= Pirard"
        " <PIRARD@vm1.ulg.ac.be.example>\n"
        "Sender: Secretary <secretary@example.org>\n"
        "Reply-To: replies@example.org\n"
        "To: Team: anna@example.org, \"Ben B.\" <ben@example.org>;,"
        " solo@example.org\n"
        "Cc: undisclosed-recipients:;\n"
        "Bcc: hidden@example.org\n"
        "Subject: =?UTF-8?B?w6TDtsO8IEdyw7zDn2U=?= %s\n"
        "In-Reply-To: <parent-%s@example.org>\n"
        "Message-ID: <2047-%s@example.org>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        "Grüße aus Köln, %s\n"
        "Ünïcödé everywhere.\n" % (mk, mk, mk, mk))))

    out.append(("deep", crlf(
        "Date: Sun, 06 Aug 2023 07:00:00 +0000\n"
        "From: deep@example.org\n"
        "To: Alice <alice@finance.amanat.test>\n"
        "Subject: deep nesting %s\n"
        "Message-ID: <deep-%s@example.org>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=L1\n"
        "\n"
        "--L1\n"
        "Content-Type: text/plain\n"
        "\n"
        "level one text %s\n"
        "\n"
        "--L1\n"
        "Content-Type: multipart/related; boundary=L2;"
        " type=\"multipart/alternative\"\n"
        "Content-Language: de\n"
        "\n"
        "--L2\n"
        "Content-Type: multipart/alternative; boundary=L3\n"
        "\n"
        "--L3\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "\n"
        "level three plain %s\n"
        "\n"
        "--L3\n"
        "Content-Type: text/html; charset=utf-8\n"
        "\n"
        "<p>level three html</p>\n"
        "\n"
        "--L3\n"
        "Content-Type: multipart/mixed; boundary=L4\n"
        "Content-Disposition: inline\n"
        "\n"
        "--L4\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "Content-Language: en, fr\n"
        "Content-Location: http://example.org/level4.txt\n"
        "\n"
        "level four %s\n"
        "second line\n"
        "\n"
        "--L4\n"
        "Content-Type: application/octet-stream\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-Disposition: attachment; filename=blob.bin\n"
        "\n" % (mk, mk, mk, mk, mk)) + b64lines(blob) + crlf(
        "\n"
        "--L4--\n"
        "\n"
        "--L3--\n"
        "\n"
        "--L2\n"
        "Content-Type: image/gif\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-ID: <gif.%s@example.org>\n"
        "\n" % mk) + b64lines(gif) + crlf(
        "\n"
        "--L2--\n"
        "\n"
        "--L1\n"
        "Content-Type: message/rfc822\n"
        "\n"
        "From: nested@example.org\n"
        "Subject: nested message %s\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=N1\n"
        "\n"
        "--N1\n"
        "Content-Type: text/plain\n"
        "\n"
        "nested text %s\n"
        "\n"
        "--N1\n"
        "Content-Type: message/rfc822\n"
        "\n"
        "From: innermost@example.org\n"
        "Subject: innermost %s\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=iso-8859-1\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "caf=E9 innermost %s\n"
        "\n"
        "--N1--\n"
        "\n"
        "--L1--\n" % (mk, mk, mk, mk))))

    out.append(("nodate-nosubject", crlf(
        "From: Anonymous <anon@example.org>\n"
        "To: alice@finance.amanat.test\n"
        "\n"
        "A message without Date and Subject, and no MIME. %s\n" % mk)))

    out.append(("qp-latin1", crlf(
        "Date: Mon, 07 Aug 2023 06:00:00 +0000\n"
        "From: latin@example.org\n"
        "To: alice@finance.amanat.test\n"
        "Subject: quoted-printable %s\n"
        "Message-ID: <qp-%s@example.org>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=ISO-8859-1\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "Caf=E9 cr=E8me br=FBl=E9e %s: a long line that goes on and on and"
        " =\n"
        "on, with a soft break, an =3D sign and trailing space=20\n"
        "\n" % (mk, mk, mk))))

    return out


def submitted(mk, n):
    """Messages sent over SMTP submission (they get a Received header;
    their Date and Message-ID are their own)."""
    return [crlf(
        "Date: Tue, 08 Aug 2023 10:00:00 +0000\n"
        "From: Bob <%s>\n"
        "To: Alice <%s>\n"
        "Subject: delivered %d %s\n"
        "Message-ID: <smtp-%d-%s@example.org>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=smtp%d\n"
        "\n"
        "--smtp%d\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        "Delivered body %s — ünïcode\n"
        "\n"
        "--smtp%d\n"
        "Content-Type: application/octet-stream; name=\"d%d.bin\"\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-Disposition: attachment; filename=\"d%d.bin\"\n"
        "\n" % (BOB, ALICE, i, mk, i, mk, i, i, mk, i, i, i)) +
        b64lines(rand_bytes(500 + i, 10 + i)) + crlf("\n--smtp%d--\n" % i)
        for i in range(n)]


def small_message(i, mk="", size=0, extra_headers=""):
    """A small RFC 5322 message, with Message-ID <i.mk@e2e.test>."""
    body = "message %d %s\n" % (i, mk)
    if size:
        body += ("x" * 70 + "\n") * max(0, (size - len(body)) // 71)
    return crlf("From: Alice <%s>\nTo: Bob <%s>\nSubject: msg %d %s\n"
                "Date: Wed, 09 Aug 2023 10:00:00 +0000\n"
                "Message-ID: <%d.%s@e2e.test>\n%s\n%s" % (
                    ALICE, BOB, i, mk, i, mk or "x", extra_headers, body))


def sized_message(n, mk="", line=b"y" * 70):
    """A message of exactly n bytes (n >= 300): a small header, then
    CRLF lines of line until n."""
    base = small_message(0, mk)
    need = n - len(base)
    assert need >= 2, n
    unit = line + b"\r\n"
    k, rest = divmod(need, len(unit))
    if rest == 0:
        body = unit * k
    elif rest >= 2:
        body = unit * k + line[:1] * (rest - 2) + b"\r\n"
    else:                                   # one byte over: a longer line
        body = unit * (k - 1) + line[:1] * (len(line) + 1) + b"\r\n"
    out = base + body
    assert len(out) == n, (len(out), n)
    return out


def internaldate(v):
    """An INTERNALDATE string -> aware datetime."""
    s = astr(v).decode().strip()
    return datetime.datetime.strptime(s, "%d-%b-%Y %H:%M:%S %z")


def wait_until(fn, timeout=30.0, step=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail("%s not met after %.0fs" % (what, timeout),
                        pytrace=False)
        time.sleep(step)

