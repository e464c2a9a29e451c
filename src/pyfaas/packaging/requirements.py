"""A bundle's requirements.txt: normalized, and kept away from the server's own files.

A requirement may name a package (with extras, a version specifier, markers, --hash) or a
remote URL. Everything that would make the installer read the server's file system, switch
package index or expand the server's environment variables is refused.
"""

from __future__ import annotations

import re

from pyfaas.model import InvalidBundle

# pip's rule: '#' starts a comment at the start of a line or after whitespace (not in URLs).
_COMMENT = re.compile(r"(^|\s+)#.*$")
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
# Not ssh: it would authenticate with the server's own keys.
_REMOTE = re.compile(r"(?:https?|(?:git|hg|bzr|svn)\+https?)://", re.IGNORECASE)
_DRIVE = re.compile(r"^[A-Za-z]:")
_ARCHIVES = (".whl", ".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def normalize_requirements(text: str) -> str:
    """Requirement lines without comments or blank lines, unique and sorted.

    Raises InvalidBundle (``requirements_unsupported``) naming the first line that is an
    option (-r, -e, -c, --index-url, ...), a local path or ``file:`` URL, or that uses
    ``${VARIABLES}``. Pure function: does not block.
    """
    kept: set[str] = set()
    for line in _logical_lines(text):
        line = _COMMENT.sub("", line).strip()
        if line:
            _check(line)
            kept.add(line)
    return "\n".join(sorted(kept))


def _logical_lines(text: str) -> list[str]:
    """Physical lines with backslash continuations joined, as installers read them."""
    return re.sub(r"\\\r?\n", "", text).splitlines()


def _check(line: str) -> None:
    spec, *options = line.split(" -", 1)  # per-requirement options follow " -"/" --"
    spec = spec.strip()
    if options and not re.fullmatch(r"(\s*--hash[= ]\S+)+\s*", "-" + options[0]):
        _refuse(line, "only --hash may follow a requirement")
    if "${" in line:
        _refuse(line, "environment variables are not expanded on the server")
    if "file:" in line.lower() or line.startswith(("-", ".", "/", "~", "\\")):
        _refuse(line, "list packages, not options, other files or local paths")
    if _DRIVE.match(line):
        _refuse(line, "list packages, not local paths")
    if _REMOTE.match(spec):
        return  # a bare remote URL: fetched over the network, like an index would be
    if not _NAME.match(spec):
        _refuse(line, "a requirement starts with a package name")
    name_and_version = spec.split(";", 1)[0]
    if "@" in name_and_version:
        url = name_and_version.split("@", 1)[1].strip()
        if not _REMOTE.match(url):
            _refuse(line, "'name @ URL' needs an https:// or git+https:// URL")
    elif "/" in name_and_version or "\\" in name_and_version:
        _refuse(line, "that is a local path")
    elif name_and_version.lower().rstrip().endswith(_ARCHIVES):
        _refuse(line, "that is a local archive; use 'name @ https://...' for a remote one")


def _refuse(line: str, why: str) -> None:
    raise InvalidBundle(
        f"requirements.txt line {line!r} is not supported: {why}. Use package names with "
        "optional version specifiers (e.g. 'requests==2.32.3'), or 'name @ https://...'",
        code="requirements_unsupported",
    )
