"""Verifying AWS Signature Version 4 on requests to the Lambda-compatible API.

The server recomputes the signature from the request as received (method, the path as sent,
query, the headers the client signed, the SHA-256 of the body) with the secret of the access
key the client names, and compares. The canonical form is AWS's: the path is URI-encoded once
more (what the client sent is already encoded), query pairs are decoded, re-encoded and sorted,
header values are trimmed and their inner runs of spaces collapsed.

It runs on every call of the Lambda API, invoke's hot path included, so the work that repeats
from call to call is remembered: the signing key (it changes once a day per key, region and
service) and the canonical form of a path.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote, unquote

from pyfaas.api.lambda_api.errors import LambdaApiError

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_S = 15 * 60  # AWS refuses signatures more than 15 minutes off the server's clock
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,"
    r"\s*Signature=([0-9a-f]{64})\s*$"
)
_AMZ_DATE = re.compile(r"^([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z$")
_UNSIGNED = frozenset({"UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"})


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What an ``Authorization`` header claims: who signed, when, and what."""

    access_key: str
    scope: str  # date/region/service/aws4_request
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    signed_names: frozenset[bytes]  # signed_headers as the ASGI scope holds header names


def _forbidden(error_type: str, message: str, code: str) -> LambdaApiError:
    return LambdaApiError(403, error_type, message, code=code)


def _incomplete(message: str) -> LambdaApiError:
    return LambdaApiError(400, "IncompleteSignatureException", message, code="incomplete_signature")


class SigV4Verifier:
    """Checks requests against the server's access keys (id -> secret).

    With no keys and ``dev_mode`` (the server allows it only when bound to loopback), any
    request is accepted, signed or not, with any access key.
    """

    def __init__(self, keys: Mapping[str, str], *, dev_mode: bool = False) -> None:
        self._keys = dict(keys)
        self.dev_mode = dev_mode and not self._keys

    def parse(self, headers: Mapping[str, str]) -> SignedRequest | None:
        """Check the ``Authorization`` header without the body: the key is known, the date is
        near. Returns None in dev mode (nothing to verify). Raises LambdaApiError (403, or
        400 IncompleteSignatureException for a malformed header)."""
        if self.dev_mode:
            # Only a loopback-bound server runs in dev mode: every caller is on this machine.
            return None
        header = headers.get("authorization", "")
        if not header:
            raise _forbidden(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token: sign the request with AWS Signature Version 4 "
                "using an access key configured on this pyfaas server (access_keys)",
                "missing_authentication",
            )
        found = _AUTHORIZATION.match(header)
        if found is None:
            raise _incomplete(
                "the Authorization header is not AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/"
                "SERVICE/aws4_request, SignedHeaders=..., Signature=<64 hex digits>"
            )
        credential, signed, signature = found.groups()
        key, _, scope = credential.partition("/")
        parts = scope.split("/")
        if len(parts) != 4 or parts[3] != "aws4_request":
            raise _incomplete(f"credential scope {scope!r} is not DATE/REGION/SERVICE/aws4_request")
        if key not in self._keys:
            raise _forbidden(
                "UnrecognizedClientException",
                f"The security token included in the request is invalid: access key id {key!r} "
                "is not configured on this pyfaas server",
                "unrecognized_client",
            )
        amz_date = headers.get("x-amz-date", "")
        signed_at = _timestamp(amz_date)
        if abs(time.time() - signed_at) > MAX_SKEW_S:
            raise _forbidden(
                "InvalidSignatureException",
                f"Signature expired: {amz_date} is more than 15 minutes from the server's time; "
                "check the client's clock",
                "invalid_signature",
            )
        if parts[0] != amz_date[:8]:
            raise _incomplete(f"the credential's date {parts[0]} is not X-Amz-Date's {amz_date}")
        names = tuple(signed.split(";"))
        if "host" not in names:
            raise _incomplete("SignedHeaders must include host")
        return SignedRequest(
            key, scope, names, signature, amz_date, frozenset(n.encode("latin-1") for n in names)
        )

    def verify(
        self,
        signed: SignedRequest,
        *,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Iterable[tuple[bytes, bytes]],
        body: bytes,
    ) -> None:
        """Raise LambdaApiError (403 InvalidSignatureException) unless the signature holds.
        ``headers`` are the raw pairs of the ASGI scope (names in lower case); only the
        signed ones are decoded."""
        body_hash = hashlib.sha256(body).hexdigest()
        wanted = signed.signed_names
        values: dict[str, list[str]] = {}
        for raw_name, raw_value in headers:
            if raw_name in wanted:
                name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
                values.setdefault(name, []).append(" ".join(value.split()))
        declared = values.get("x-amz-content-sha256", [body_hash])[0]
        if declared in _UNSIGNED or declared != body_hash:
            raise _forbidden(
                "InvalidSignatureException",
                "X-Amz-Content-SHA256 does not match the body (unsigned payloads are refused)",
                "invalid_signature",
            )
        canonical_headers = "".join(
            f"{name}:{','.join(values.get(name, []))}\n" for name in signed.signed_headers
        )
        canonical_request = "\n".join(
            (
                method,
                canonical_path(raw_path),
                canonical_query(raw_query),
                canonical_headers,
                ";".join(signed.signed_headers),
                body_hash,
            )
        )
        string_to_sign = "\n".join(
            (
                ALGORITHM,
                signed.amz_date,
                signed.scope,
                hashlib.sha256(canonical_request.encode()).hexdigest(),
            )
        )
        date, region, service, _ = signed.scope.split("/")
        mac = _signing_mac(self._keys[signed.access_key], date, region, service).copy()
        mac.update(string_to_sign.encode())
        expected = mac.hexdigest()
        if not hmac.compare_digest(expected, signed.signature):
            raise _forbidden(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you "
                "provided. Check your AWS Secret Access Key and signing method.",
                "invalid_signature",
            )


@lru_cache(maxsize=64)
def _signing_mac(secret: str, date: str, region: str, service: str) -> hmac.HMAC:
    """An HMAC-SHA256 keyed with SigV4's key for one day, region and service (four chained
    HMACs), nothing fed yet; callers ``copy()`` it. Remembered: the key is the same for every
    request of that day, and copying a keyed HMAC costs half of keying a new one."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return hmac.new(key, digestmod=hashlib.sha256)


def _timestamp(amz_date: str) -> float:
    """``X-Amz-Date`` (YYYYMMDDTHHMMSSZ) as a Unix time; raises IncompleteSignatureException."""
    found = _AMZ_DATE.match(amz_date)
    try:
        if found is None:
            raise ValueError(amz_date)
        year, month, day, hour, minute, second = map(int, found.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()
    except ValueError:
        raise _incomplete("X-Amz-Date is missing or not YYYYMMDDTHHMMSSZ") from None


@lru_cache(maxsize=256)
def canonical_path(raw_path: str) -> str:
    """The path as SigV4 signs it: dot and empty segments removed, URI-encoded once more.
    Remembered: a client calls the same few paths over and over."""
    return quote(_remove_dot_segments(raw_path), safe="/~")


def canonical_query(raw_query: str) -> str:
    """The query as SigV4 signs it: each key and value URI-encoded, pairs sorted."""
    if not raw_query:
        return ""
    pairs = []
    for item in raw_query.split("&"):
        key, _, value = item.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _remove_dot_segments(path: str) -> str:
    """RFC 3986's removal of ``.`` and ``..`` segments; AWS also drops empty segments
    (``//``). A leading slash stays, and a trailing one unless nothing is left."""
    if not path:
        return "/"
    out: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if out:
                out.pop()
        elif segment and segment != ".":
            out.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and out else ""
    return first + "/".join(out) + last
