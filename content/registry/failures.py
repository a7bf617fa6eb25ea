"""Network failures said in one short phrase for an err line.

requests and urllib3 describe a refused connection as `HTTPConnectionPool(host=...,
port=1): Max retries exceeded with url: /v2/ (Caused by NewConnectionError("...
[Errno 111] Connection refused"))`: the phrase a user needs is at the end.
"""

import re

import requests
import urllib3

_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
_UNRESOLVED = re.compile(r"Failed to resolve '([^']+)'")


def describe(exc: BaseException) -> str:
    """What failed, in one phrase: `connection refused`, `cannot resolve host x`…"""
    text = str(exc)
    unresolved = _UNRESOLVED.search(text)
    if unresolved:
        return f"cannot resolve host {unresolved.group(1)}"
    if isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError):
        return "timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake failed (certificate or protocol)"
    if isinstance(exc, requests.TooManyRedirects):
        return "too many redirects"
    causes = _ERRNO.findall(text)
    if causes:
        cause = causes[-1].strip()
        return cause[:1].lower() + cause[1:]
    if isinstance(exc, requests.exceptions.ChunkedEncodingError
                  | urllib3.exceptions.ProtocolError):
        return "connection broken in the middle of a response"
    first = " ".join(text.split())[:200]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
