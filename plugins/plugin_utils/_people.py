# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""People of the inventory (``mtls_people``) as certificate items and PKCS#12 bundles.

A person is issued a client certificate on the people host through the ``certificate``
role's ``certificate_items``, then given a passphrase-protected PKCS#12 bundle. This is the
one place that turns a person into those, for site.yml, the report and the revocation
playbooks. Controller-side only.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from ansible.errors import AnsibleFilterError

PERSON_KEYS = (
    "name",
    "email",
    "id",
    "passphrase",
    "key_type",
    "key_size",
    "duration",
    "renew_before",
    "owner",
    "group",
    "bundle",
)
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_KEY_TYPES = ("ec", "rsa", "ed25519")
_KEY_SIZES = (2048, 3072, 4096)


def person_id(name: str) -> str:
    """A file stem for a person: ``John Doe`` -> ``john-doe``, ``Zoë Müller`` -> ``zoe-muller``."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")


def _person(raw: Any, index: int, folder: str) -> dict[str, Any]:
    where = f"mtls_people entry {index}"
    if not isinstance(raw, dict):
        raise AnsibleFilterError(f"{where} must be a mapping with at least a name")
    unknown = sorted(str(key) for key in raw if key not in PERSON_KEYS)
    if unknown:
        raise AnsibleFilterError(
            f"{where} has unknown keys {', '.join(unknown)}; known: {', '.join(PERSON_KEYS)}"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise AnsibleFilterError(f"{where} needs a name (the certificate's common name)")
    name = name.strip()
    where = f"mtls_people entry {index} ({name})"
    # The email is the certificate's one SAN. Without SANs step-ca would copy the common
    # name into a DNS name, which is wrong for a person (and impossible for "Zoë").
    email = raw.get("email")
    if not isinstance(email, str) or not _EMAIL.match(email):
        raise AnsibleFilterError(
            f"{where}: email {email!r} is not an e-mail address; every person needs one, it is"
            " the certificate's subject alternative name"
        )
    ident = raw.get("id") or person_id(name)
    if not isinstance(ident, str) or not _ID.match(ident):
        raise AnsibleFilterError(
            f"{where}: id {ident!r} must be lower-case letters, digits, dots, dashes or"
            " underscores (it names the files); set id for a name without such letters"
        )
    key_type = raw.get("key_type", "rsa")
    if key_type not in _KEY_TYPES:
        raise AnsibleFilterError(f"{where}: key_type must be one of {', '.join(_KEY_TYPES)}")
    key_size = raw.get("key_size", 2048)
    if isinstance(key_size, str) and key_size.isdigit():
        key_size = int(key_size)
    if key_size not in _KEY_SIZES:
        raise AnsibleFilterError(f"{where}: key_size must be one of 2048, 3072, 4096")
    bundle = raw.get("bundle", True)
    if not isinstance(bundle, bool):
        raise AnsibleFilterError(f"{where}: bundle must be true or false")
    base = f"{folder.rstrip('/')}/{ident}"
    item: dict[str, Any] = {
        "name": ident,
        "common_name": name,
        "subject_alt_names": [f"email:{email}"],
        "profile": "client",
        "key_type": key_type,
        "key_path": f"{base}.key",
        "cert_path": f"{base}.crt",
    }
    if key_type == "rsa":
        item["key_size"] = key_size
    for optional in ("duration", "renew_before"):
        if raw.get(optional) not in (None, ""):
            item[optional] = str(raw[optional])
    return {
        "id": ident,
        "name": name,
        "email": email,
        "certificate_item": item,
        "bundle": {
            "path": f"{base}.p12",
            "state": "present" if bundle else "absent",
            "owner": raw.get("owner") or "root",
            "group": raw.get("group") or "root",
        },
        "has_passphrase": bool(raw.get("passphrase")),
    }


def people(raw: Any, folder: str = "/etc/ssl/mtls/people") -> list[dict[str, Any]]:
    """``mtls_people`` validated, each person with its certificate item and bundle.

    The result holds no passphrase: tasks that need it read it from ``mtls_people`` by
    position, under ``no_log``.
    """
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise AnsibleFilterError("mtls_people must be a list of people")
    if not isinstance(folder, str) or not folder.startswith("/"):
        raise AnsibleFilterError(f"the people folder must be an absolute path, got {folder!r}")
    result = [_person(entry, index, folder) for index, entry in enumerate(raw, start=1)]
    for key, what in (("id", "id"), ("name", "name")):
        seen: set[str] = set()
        for person in result:
            if person[key] in seen:
                raise AnsibleFilterError(
                    f"mtls_people: two people have the {what} {person[key]!r}; give each an id"
                    " of its own"
                    if key == "id"
                    else f"mtls_people: two people are called {person[key]!r}; a common name"
                    " must name one person"
                )
            seen.add(person[key])
    return result
