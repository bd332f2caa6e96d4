"""Which HTTP proxy a run goes through: ``--proxy``, else the environment, as curl reads it.

Decided once, in the coordinator, for the run's one target; the answer (a
``config.Proxy`` or None) travels in every worker's plan, so worker processes
and cluster nodes never consult an environment of their own.

The rules, in order:

- ``--proxy URL`` is used whatever the environment says (``--proxy ''``: no
  proxy, as ``curl -x ''``).  ``--no-proxy`` ignores the variables below.
- Else ``http_proxy`` for an http target, ``https_proxy`` for an https one;
  the lower-case name first, then ``HTTP_PROXY`` / ``HTTPS_PROXY``, as Python's
  ``urllib.request.getproxies_environment`` and curl do.  Upper-case
  ``HTTP_PROXY`` is ignored when ``REQUEST_METHOD`` is set (a CGI process: the
  client's ``Proxy:`` header becomes HTTP_PROXY there, CVE-2016-1000110).
  ``ALL_PROXY`` is not read: it is mostly set for SOCKS, which loadgen does
  not speak, and Go and k6 do not read it either.
- ``no_proxy`` / ``NO_PROXY`` (same order) turns the environment's proxy off
  for a matching target: ``*`` (everything), a host name that matches itself
  and its subdomains (a leading dot is optional), ``name:port``, an IP address,
  or a CIDR range such as ``127.0.0.0/8`` or ``fd00::/8`` (curl 7.86+).  Names
  and addresses are compared as written, never resolved: ``127.0.0.1`` in
  NO_PROXY does not cover ``localhost``.
- Unlike Go's net/http (and so k6), ``localhost`` and loopback addresses are
  proxied like any other host when a variable says so; that is what curl does.

Only ``http://`` proxies (curl's default port 1080 when none is given); user
and password in the URL become ``Proxy-Authorization: Basic``.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from typing import Literal
from urllib.parse import unquote, urlsplit
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]

from loadgen.config.model import ConfigError, Proxy, Target

DEFAULT_PORT = 1080   # curl's (CURLOPT_PROXYPORT); Python and Go would take 80
OPTION = "--proxy"


def proxy_option(text: str) -> Proxy | Literal[False]:
    """``--proxy URL`` (or a scenario's ``proxy``) parsed; ``''`` is False: no proxy at all."""
    return parse_proxy_url(text, OPTION) if text.strip() else False


def resolve_proxy(target: Target, given: Proxy | Literal[False] | None, ignore_environment: bool,
                  environ: Mapping[str, str]) -> Proxy | None:
    """The proxy for ``target``, or None for a direct connection; ConfigError if unusable.

    ``given`` is ``--proxy`` parsed (``proxy_option``; None when not given);
    ``environ`` is os.environ in the CLI, a plain dict in tests.
    """
    if given is not None:
        return given or None
    if ignore_environment:
        return None
    found = _variable(environ, target.scheme)
    if found is None:
        return None
    name, value = found
    no_proxy = _variable(environ, "no")
    if no_proxy is not None and bypassed(target.host, target.port, no_proxy[1]):
        return None
    return parse_proxy_url(value, name)


def _variable(environ: Mapping[str, str], scheme: str) -> tuple[str, str] | None:
    """(name, value) of the ``<scheme>_proxy`` variable in force, lower case first.

    Reads the mapping itself rather than calling getproxies_environment(): that
    reads only os.environ and does not say which variable a value came from.
    A lower-case variable that is set but empty means "none" (as in Python).
    """
    names = [f"{scheme}_proxy", f"{scheme.upper()}_PROXY"]
    if scheme == "http" and "REQUEST_METHOD" in environ:
        names.pop()
    for name in names:
        if name in environ:
            value = environ[name]
            return (name, value) if value.strip() else None
    return None


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether NO_PROXY's list names ``host`` (as the target URL spells it).

    Host names go to the standard library's matcher one entry at a time
    (suffix match on dot boundaries, ``name:port``); IP addresses are compared
    with ``ipaddress`` instead, so that CIDR ranges work and ``::1`` is not
    mistaken for a host and a port.
    """
    entries = [entry.strip() for entry in no_proxy.split(",") if entry.strip()]
    if "*" in entries:
        return True
    address = _address(host)
    for entry in entries:
        if address is None:
            if proxy_bypass_environment(f"{host}:{port}", {"no": entry}):
                return True
            continue
        network = _network(entry)
        if network is not None and network.version == address.version and address in network:
            return True
    return False


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """An address or CIDR range from NO_PROXY; None for a host name."""
    try:
        return ipaddress.ip_network(entry.strip("[]"), strict=False)
    except ValueError:
        return None


def parse_proxy_url(text: str, source: str) -> Proxy:
    """``[http://][user:password@]host[:port][/]`` -> Proxy; ConfigError naming ``source``.

    No scheme means http, as in curl.  Messages never show the password: the
    URL is echoed with everything before its ``@`` hidden.
    """
    where, hint = source, avoid_hint(source)
    shown = redact(text)
    given = text.strip()
    if any(c.isspace() or not c.isprintable() for c in given):
        raise ConfigError(f"{where}: {shown!r} contains white space or control characters{hint}")
    if "://" not in given:
        given = "http://" + given
    try:
        parts = urlsplit(given)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{where}: {shown!r} is not a valid proxy URL ({exc}){hint}") from None
    scheme = parts.scheme.lower()
    if scheme.startswith("socks"):
        raise ConfigError(f"{where}: {shown!r} is a SOCKS proxy; loadgen speaks only to "
                          f"HTTP proxies (http://host:port){hint}")
    if scheme == "https":
        raise ConfigError(f"{where}: {shown!r}: TLS to the proxy (https://) is not supported; "
                          f"use an http:// proxy (https targets still go through CONNECT){hint}")
    if scheme != "http":
        raise ConfigError(f"{where}: {shown!r}: the proxy's scheme must be http{hint}")
    if not parts.hostname:
        raise ConfigError(f"{where}: {shown!r} has no host{hint}")
    if port == 0:
        raise ConfigError(f"{where}: port 0 is not a valid proxy port in {shown!r}{hint}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or given.endswith(("?", "#")):
        raise ConfigError(f"{where}: {shown!r}: a proxy URL is only "
                          f"http://[user:password@]host:port{hint}")
    authorization = ""
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
    return Proxy(parts.hostname, port or DEFAULT_PORT, source, authorization)


def avoid_hint(source: str) -> str:
    """For a problem with a proxy the environment chose: how to go around it."""
    return " (--no-proxy or NO_PROXY avoids it)" if source.lower().endswith("_proxy") else ""


def redact(text: str) -> str:
    """``text`` with any ``user:password@`` replaced by ``***@`` (for error messages)."""
    text = text.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    if "@" not in rest:
        return text
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"
