"""The TLS client settings of a run, turned into one ``ssl.SSLContext``.

Building a context is expensive: loading the system CA bundle alone takes
25-37 ms, which is why each worker builds its context once (loadgen.engine.client)
and why the coordinator builds one first, only to check the files: a CA file
with no certificate, a key that does not match its certificate, or an
unreadable file is one line and exit 2 before any load, not a run of
``connect`` failures.  The preflight check and the login use the same
context, so they verify exactly as the load does.

Only the standard library's ssl: the coordinator never imports gevent, and a
worker calls this after gevent has patched ssl (``context_class`` is then its
own subclass of the patched ``ssl.SSLContext``).

Trust follows curl: without ``--cacert`` the system's default verify paths
(which OpenSSL takes from ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set);
with ``--cacert FILE`` only the certificates in FILE.
"""

from __future__ import annotations

import ssl
from typing import Any

from loadgen.config.model import ConfigError, TlsFiles


class _EncryptedKey(Exception):
    """Raised from the password callback: loadgen never prompts for a key's passphrase."""


def _no_password() -> str:
    raise _EncryptedKey()


def build_context(files: TlsFiles, insecure: bool,
                  context_class: type[ssl.SSLContext] | None = None) -> ssl.SSLContext:
    """A client context: verification on (unless ``insecure``), CA bundle, client certificate.

    Raises ConfigError with the line to show for every bad file.  ``context_class``
    lets the worker build its session-resuming subclass.
    """
    context = (context_class or ssl.SSLContext)(ssl.PROTOCOL_TLS_CLIENT)
    if insecure:   # the CA file is still checked below: a typo is a typo
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if files.cacert:
        _load(context.load_verify_locations, "--cacert", files.cacert, cafile=files.cacert)
        if not context.get_ca_certs() and not _has_certificate(files.cacert):
            raise ConfigError(f"--cacert: {files.cacert} holds no certificate")
    elif not insecure:
        context.load_default_certs()   # honours SSL_CERT_FILE and SSL_CERT_DIR
    if files.key and not files.cert:
        raise ConfigError("--key needs --cert (the client certificate it belongs to)")
    if files.cert:
        _read("--cert", files.cert)
        if files.key:
            _read("--key", files.key)
        _load(context.load_cert_chain, "--cert", files.cert, certfile=files.cert,
              keyfile=files.key, password=_no_password, key=files.key)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _read(option: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:   # a NUL byte in the name
        raise ConfigError(f"{option}: {path!r} is not a file name") from None


def _has_certificate(path: str) -> bool:
    return b"-----BEGIN CERTIFICATE-----" in _read("--cacert", path)


def _load(method: Any, option: str, path: str, key: str | None = None, **kwargs: Any) -> None:
    """Call an SSLContext loader; OpenSSL's reasons become one line naming the file."""
    try:
        method(**kwargs)
    except _EncryptedKey:
        raise ConfigError(f"--key: the private key in {key or path} is encrypted; "
                          "decrypt it first (openssl pkey -in KEY -out PLAIN)") from None
    except ssl.SSLError as exc:
        raise ConfigError(_explain(option, path, key, exc)) from None
    except OSError as exc:
        raise ConfigError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise ConfigError(f"{option}: {path!r} is not a file name") from None


def _explain(option: str, path: str, key: str | None, exc: ssl.SSLError) -> str:
    reason = (exc.reason or "").upper()
    if option == "--cacert":
        if "NO_CERTIFICATE" in reason or "NO_START_LINE" in reason or "PEM" in reason:
            return f"--cacert: {path} holds no PEM certificate"
        return f"--cacert: {path} is not a usable CA bundle ({exc.reason or exc})"
    if "KEY_VALUES_MISMATCH" in reason:
        return f"--key: the private key in {key or path} does not match the certificate {path}"
    if key is None and reason in ("PEM LIB", "PEM_LIB", "NO_START_LINE", ""):
        # load_cert_chain says "PEM lib" for both a bad certificate and a missing key
        if b"-----BEGIN CERTIFICATE-----" not in _read("--cert", path):
            return f"--cert: {path} holds no PEM certificate"
        return f"--cert: {path} holds no private key (give it with --key)"
    if reason in ("PEM LIB", "PEM_LIB", "NO_START_LINE", ""):
        if b"-----BEGIN CERTIFICATE-----" not in _read("--cert", path):
            return f"--cert: {path} holds no PEM certificate"
        return f"--key: {key} holds no PEM private key"
    return f"--cert: cannot use {path}" + (f" with {key}" if key else "") + \
        f": {exc.reason or exc}"
