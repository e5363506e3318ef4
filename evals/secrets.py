"""Secrets out of everything we keep or show: keys echoed by servers, credentials inside URLs and store
addresses.

A key can come back from a server anywhere: in an error body, in the reply's ``model`` field, in the
answer text itself; whole, without its ``sk-`` prefix, or encoded (base64 as in a Basic auth header,
URL-encoded, hex). ``scrub`` replaces every such form of each known secret. ``safe_url`` drops the
``user:password@`` part of a URL, which must never reach a snapshot, a message or a report.
``parse_address`` checks a store address (``store:``, ``EVALS_STORE``) and refuses one holding a password.
"""

from __future__ import annotations

import base64
import dataclasses
import difflib
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator

from evals.records import Completion

REDACTED = "[redacted]"
"""What a secret is replaced with."""
MIN_SECRET = 6
"""Shorter strings are not scrubbed: replacing them would mangle ordinary text, and they protect nothing."""

_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@?#]*@")
# In free text only ``user:password@`` is a credential; ``ssh://git@host`` is an address, left alone.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@?#:]*:[^/\s@?#]*@")


def safe_url(url: str | None) -> str | None:
    """``url`` without credentials: ``http://user:pass@host/v1`` becomes ``http://host/v1``."""
    if url is None:
        return None
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return _URL_USERINFO.sub(r"\1", url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def url_secrets(url: str | None) -> list[str]:
    """The password (and user name, when long enough to be a token) held in ``url``, to scrub."""
    if not url:
        return []
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return []
    found = [urllib.parse.unquote(part) for part in (parts.password, parts.username) if part]
    return [secret for secret in found if len(secret) >= MIN_SECRET]


def _forms(secret: str) -> set[str]:
    """Every form in which ``secret`` may be echoed: as is, prefix-less, URL-encoded, hex and base64."""
    forms = {secret}
    # Prefix-less: "sk-proj-abc..." echoed as "proj-abc..." or "abc...". Long tails only, so that a
    # short fragment common in ordinary text is left alone.
    for match in re.finditer(r"[-_]", secret):
        tail = secret[match.end() :]
        if len(tail) >= max(MIN_SECRET, len(secret) // 2):
            forms.add(tail)
    for form in list(forms):
        forms.add(urllib.parse.quote(form, safe=""))
        forms.add(urllib.parse.quote_plus(form, safe=""))
        raw = form.encode()
        forms.add(raw.hex())
        forms.add(raw.hex().upper())
        forms.update(_base64_cores(raw))
    return {form for form in forms if len(form) >= MIN_SECRET}


def _base64_cores(raw: bytes) -> set[str]:
    """The part of the base64 text of ``raw`` that is the same wherever it sits in a longer string.

    base64 turns 3 bytes into 4 characters, so the characters depend on where ``raw`` starts modulo 3:
    for each of the 3 offsets, the characters that mix in neighbouring bytes are dropped at both ends.
    """
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start = 4 if offset else 0
        end = len(encoded) - (4 if (offset + len(raw)) % 3 else 0)
        core = encoded[start:end]
        cores.add(core)
        cores.add(core.translate(str.maketrans("+/", "-_")))  # the URL-safe alphabet
    return cores


class Scrubber:
    """Replaces every form of a set of secrets; built once per endpoint, applied to each reply."""

    def __init__(self, secrets: Iterable[str | None]):
        forms: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET:
                forms |= _forms(secret)
        # Longest first, so that a whole key is replaced before its tail is looked for.
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        """``text`` with every form of the secrets replaced, and any URL's ``user:password@`` removed."""
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        return _URL_PASSWORD.sub(r"\1" + REDACTED + "@", text) if "@" in text else text

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string in it scrubbed (keys too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def completion(self, completion: Completion) -> Completion:
        """``completion`` with every text a server sent scrubbed: the reply, its structured data, the
        reported model id, the finish reason and the reasoning."""
        return dataclasses.replace(
            completion,
            text=self.text(completion.text),
            data=self.value(completion.data) if completion.data is not None else None,
            model_id=self.text(completion.model_id) if completion.model_id else completion.model_id,
            finish_reason=(
                self.text(completion.finish_reason) if completion.finish_reason else completion.finish_reason
            ),
            reasoning=self.text(completion.reasoning) if completion.reasoning else completion.reasoning,
        )


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every form of each secret (whole, prefix-less, URL-encoded, hex, base64) redacted."""
    return Scrubber(secrets).text(text)


# -- store addresses -------------------------------------------------------------------------------------
# What ``store:`` in evals.yaml, ``EVALS_STORE`` and ``evals store copy FROM TO`` may name.
#
# Three forms, nothing else:
#
# - a PostgreSQL URL: ``postgresql://user@host:5432/db?sslmode=require`` (``postgres://`` too);
# - a libpq keyword string: ``host=db.internal dbname=evals user=evals`` (values may be quoted:
#   ``options='-c search_path=evals'``), parsed as libpq parses it (``psycopg.conninfo.conninfo_to_dict``
#   when psycopg is installed, this module's own reading of the same grammar otherwise);
# - a SQLite file (or a folder holding ``evals.db``): a plain path.
#
# A password in either PostgreSQL form (a URL's ``user:password@``, a ``password=`` or ``sslpassword=``
# parameter or keyword, quoted or not; or hidden in another value, where libpq takes it for part of a
# host, database or user name that the server's errors then show: ``dbname='x password=...'``, an encoded
# ``%20password%3D``, a user name with ``:``) is refused: it belongs in ``PGPASSWORD``, ``~/.pgpass`` or the
# variable ``store_password_env`` names. Refused too: other URL schemes (``sqlite://``, ``mysql://``,
# ``file:``), a string that looks like a keyword string but is not one (an unknown keyword, an unclosed
# quote), control characters (NUL, newlines) and blanks around a path. No message ever repeats the address
# it refuses (it may hold a password): it names the form and the keyword at fault.

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
"""URL prefixes that name a PostgreSQL database."""
SECRET_KEYWORDS = frozenset({"password", "sslpassword"})
"""libpq parameters that hold a secret: never in an address."""
LIBPQ_KEYWORDS = frozenset({
    "host", "hostaddr", "port", "dbname", "user", "passfile", "require_auth", "channel_binding",
    "connect_timeout", "client_encoding", "options", "application_name", "fallback_application_name",
    "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
    "replication", "gssencmode", "sslmode", "sslnegotiation", "requiressl", "sslcompression", "sslcert",
    "sslkey", "sslcertmode", "sslrootcert", "sslcrl", "sslcrldir", "sslsni", "requirepeer",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "krbsrvname", "gsslib", "gssdelegation",
    "service", "target_session_attrs", "load_balance_hosts",
}) | SECRET_KEYWORDS  # fmt: skip
"""libpq's connection keywords (PostgreSQL 17), for when psycopg is not installed to say which it knows."""

WHERE_PASSWORD = "set PGPASSWORD, use ~/.pgpass, or name the variable that holds it with store_password_env"
STORE_FORMS = (
    "a store is a PostgreSQL URL (postgresql://user@host/db), a libpq keyword string "
    "(host=... dbname=... user=...) or the path of a SQLite file"
)

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]+:")
"""A URL scheme (two letters or more: ``C:`` is a Windows drive)."""
_KEYWORD_START = re.compile(r"(?:^|\s)[A-Za-z_][A-Za-z0-9_]*\s*=")
"""A ``keyword=`` at the start of a word: what makes a string read as a keyword string."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BLANKS = " \t\n\r\f\v"
"""What separates keywords for libpq (C's isspace in the C locale)."""
_PASSWORD_INSIDE = re.compile(r"(?i)(?<![a-z0-9_])(?:ssl)?password\s*=")
"""``password=`` inside a value, which libpq takes as part of the value (a host, a database, a user name)."""


class AddressError(ValueError):
    """A store address that cannot be used; the message never holds the address (it may hold a password)."""


@dataclass(frozen=True)
class Address:
    """A store address, checked."""

    kind: Literal["postgresql", "sqlite"]
    target: str
    """What to connect to (the URL or keyword string as given) or the SQLite path."""
    shown: str
    """How messages show it: no user information, no secret."""


def parse_address(value: str) -> Address:
    """The store ``value`` names; ``AddressError`` (which never repeats ``value``) when it names none."""
    if _CONTROL.search(value):
        raise AddressError(f"holds a control character (NUL, newline, tab); {STORE_FORMS}")
    text = value.strip()
    if not text:
        raise AddressError(f"is empty; {STORE_FORMS} (leave it unset for the reports folder's evals.db)")
    if text.lower().startswith(POSTGRES_SCHEMES):
        return _postgres_url(text)
    if _KEYWORD_START.search(text):
        return _keyword_string(text)
    scheme = _SCHEME.match(text)
    if scheme:
        name = scheme.group(0)[:-1].lower()
        if name in ("postgresql", "postgres"):
            raise AddressError(f"is not a PostgreSQL URL: write it {name}://user@host/db (two slashes)")
        raise AddressError(
            f"is a {name}: address, which the store cannot use; {STORE_FORMS} (a file whose name has a colon: "
            "write it as ./NAME)"
        )
    if text != value:
        raise AddressError("starts or ends with blanks; remove them (a SQLite path is used as written)")
    return Address("sqlite", value, value)


def is_postgres(value: str | None) -> bool:
    """Whether ``value`` is a usable PostgreSQL address (a URL or a keyword string without a password)."""
    if not value:
        return False
    try:
        return parse_address(value).kind == "postgresql"
    except AddressError:
        return False


def _postgres_url(text: str) -> Address:
    try:
        parts = urllib.parse.urlsplit(text)
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        has_password = parts.password is not None
    except ValueError:
        raise AddressError("is not a valid PostgreSQL URL (postgresql://user@host:5432/db)") from None
    if has_password:
        raise AddressError(
            f"the PostgreSQL URL holds a password; remove it from the URL and {WHERE_PASSWORD}"
        )
    secret = sorted(SECRET_KEYWORDS & {k.lower() for k in query})
    if secret:
        raise AddressError(
            f"the PostgreSQL URL holds a password (its {secret[0]} parameter); remove it and {WHERE_PASSWORD}"
        )
    unknown = sorted(k for k in query if k not in LIBPQ_KEYWORDS)
    if unknown:
        raise AddressError(f"the PostgreSQL URL has a parameter libpq does not know{_hint(unknown[0])}")
    parsed = _libpq(text, keywords=False)
    if parsed is not None and SECRET_KEYWORDS & set(parsed):
        raise AddressError(f"the PostgreSQL URL holds a password; remove it and {WHERE_PASSWORD}")
    if parsed is not None:
        values = list(parsed.items())
    else:  # what libpq would read: the parameters, the user, the database (the path; libpq has no '#')
        values = [(k, v) for k, each in query.items() for v in each]
        database = parts.path[1:] + (f"#{parts.fragment}" if "#" in text else "")
        values += [
            ("dbname", urllib.parse.unquote(database)),
            ("user", urllib.parse.unquote(parts.username or "")),
        ]
    _refuse_hidden_password(values, "URL")
    host = parts.netloc.rpartition("@")[2]
    shown = urllib.parse.urlencode(query, doseq=True, safe="/")
    return Address(
        "postgresql", text, f"{parts.scheme}://{host}{parts.path}" + (f"?{shown}" if shown else "")
    )


def _keyword_string(text: str) -> Address:
    parsed = _libpq(text, keywords=True)
    if parsed is None:
        parsed = read_keywords(text)
    else:
        try:  # libpq accepted it: shown in the order it was written
            parsed = {k: parsed[k] for k in read_keywords(text) if k in parsed} | parsed
        except AddressError:
            pass
    secret = sorted(SECRET_KEYWORDS & set(parsed))
    if secret:
        raise AddressError(
            f"the PostgreSQL keyword string holds a password ({secret[0]}=); remove it and {WHERE_PASSWORD}"
        )
    _refuse_hidden_password(list(parsed.items()), "keyword string")
    shown = " ".join(f"{k}={_libpq_quoted(v)}" for k, v in parsed.items())
    return Address("postgresql", text, shown)


def _refuse_hidden_password(values: list[tuple[str, str]], form: str) -> None:
    """Refuse a password hidden in the value of another keyword, where libpq does not take it for one but
    the server's error message (``database "x password=..." does not exist``) and every message naming the
    store would show it: a ``password=`` inside a value (a misquoted keyword string, an encoded URL
    parameter), a URL with ``user:password@`` as a value, or a user name holding ``:`` (``user:password``
    with the colon percent-encoded)."""
    for keyword, value in values:
        if _PASSWORD_INSIDE.search(value) or _URL_PASSWORD.search(value):
            raise AddressError(
                f"the PostgreSQL {form} holds a password inside the value of {keyword} (check its quotes "
                f"and encoding); remove it and {WHERE_PASSWORD}"
            )
        if keyword == "user" and ":" in value:
            raise AddressError(
                f"the PostgreSQL {form} has a user name with ':', which reads as user:password; remove the "
                f"password and {WHERE_PASSWORD} (a role whose name has ':': set PGUSER instead)"
            )


def _libpq(text: str, keywords: bool) -> dict[str, str] | None:
    """``text`` as libpq reads it (psycopg's ``conninfo_to_dict``); None when psycopg is not installed."""
    try:
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return None
    try:
        return {k: str(v) for k, v in conninfo_to_dict(text).items()}
    except ProgrammingError:
        pass  # libpq's message may quote the string, and a password in it: say what is wrong in our words
    if keywords:
        read_keywords(text)  # names an unknown keyword or an unclosed quote, when that is what is wrong
        raise AddressError(_not_keywords("libpq cannot read it"))
    raise AddressError(
        "is not a PostgreSQL URL libpq can read (postgresql://user@host:5432/db?sslmode=require: "
        "check the parameters after '?')"
    )


def read_keywords(text: str) -> dict[str, str]:
    """A libpq keyword string as libpq reads it: ``keyword = value`` pairs separated by blanks, a value
    single-quoted to hold blanks, ``\\'`` and ``\\\\`` escaped; ``AddressError`` when it is not one. Blanks are
    ASCII ones, as libpq's: a no-break space is part of a value."""
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _BLANKS:
            i += 1
        if i == n:
            return out
        start = i
        while i < n and text[i] != "=" and text[i] not in _BLANKS:
            i += 1
        keyword = text[start:i]
        while i < n and text[i] in _BLANKS:
            i += 1
        if i == n or text[i] != "=":
            raise AddressError(_not_keywords(f"{_known(keyword)} has no '=' after it"))
        i += 1
        while i < n and text[i] in _BLANKS:
            i += 1
        value: list[str] = []
        quoted = i < n and text[i] == "'"
        i += quoted
        while i < n and (quoted or text[i] not in _BLANKS):
            if quoted and text[i] == "'":
                break
            if text[i] == "\\" and i + 1 < n:
                i += 1
            value.append(text[i])
            i += 1
        if quoted:
            if i == n:
                raise AddressError(
                    _not_keywords(f"the value of {_known(keyword)} opens a quote it never closes")
                )
            i += 1
        if keyword not in LIBPQ_KEYWORDS and keyword.lower() in SECRET_KEYWORDS:  # PASSWORD=: meant as one
            raise AddressError(
                f"the PostgreSQL keyword string holds a password ({keyword.lower()}=); remove it and {WHERE_PASSWORD}"
            )
        if keyword not in LIBPQ_KEYWORDS:
            raise AddressError(_not_keywords(f"a word before '=' is not a libpq keyword{_hint(keyword)}"))
        out[keyword] = "".join(value)


def _known(keyword: str) -> str:
    # Only a keyword libpq knows is shown: an unknown word may well be a password typed in the wrong place.
    return repr(keyword) if keyword in LIBPQ_KEYWORDS else "a word"


def _hint(word: str) -> str:
    """The known keyword ``word`` was likely meant to be (never ``word`` itself: it may be a password)."""
    close = difflib.get_close_matches(word.lower(), sorted(LIBPQ_KEYWORDS - SECRET_KEYWORDS), n=1)
    return f" (did you mean {close[0]!r}?)" if close else " (host, port, dbname, user, sslmode, ...)"


def _not_keywords(what: str) -> str:
    return (
        f"reads as a PostgreSQL keyword string (host=... dbname=...), but {what} (a SQLite file whose "
        "name has '=': write it as ./NAME)"
    )


def _libpq_quoted(value: str) -> str:
    if value and not any(c.isspace() or c in "'\\" for c in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _store_setting(value: str) -> str:
    parse_address(value)  # its error never repeats the value: it may hold a password
    return value


StoreSetting = Annotated[str, AfterValidator(_store_setting)]
"""A config field holding a store address, checked by ``parse_address`` (evals.yaml's ``store:``)."""
