"""Secrets sealed at rest: the operator's encryption keys and SealedText, an encrypted column type.

Tool private keys, per-attempt webhook secrets and SDK session tokens are stored as
`sealed:` + a Fernet token (AES-128-CBC with HMAC-SHA256) under ENCRYPTION_KEY. Older keys
(ENCRYPTION_KEY_OLD, or the rest of a comma list) still open what they sealed, so the key can
be changed first and `lti-proctor keys rotate-encryption` re-seals every row afterwards. With
no key configured, the key is derived from SECRET_KEY with HKDF (the embedded default).
A value stored before sealing existed (no `sealed:` prefix) is read as it is and sealed the
next time it is written or rotated. Bottom floor: imports nothing of ours but extensions.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, current_app
from sqlalchemy import Text, select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.types import TypeDecorator

from lti_proctor.extensions import Base, db

PREFIX = "sealed:"
EXTENSION = "lti_proctor_crypto"
_HKDF_INFO = b"lti-proctor sealed columns v1"


class SealError(RuntimeError):
    """A sealed value cannot be opened with any configured key (was ENCRYPTION_KEY changed
    without putting the previous key in ENCRYPTION_KEY_OLD?)."""


def derive_key(material: str) -> bytes:
    """A Fernet key: material itself when it is one, else HKDF-SHA256 of material."""
    try:
        raw = base64.urlsafe_b64decode(material.encode("ascii"))
        if len(raw) == 32 and len(material.strip()) == 44:
            return material.strip().encode("ascii")
    except (binascii.Error, UnicodeEncodeError, ValueError):
        pass
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(material.encode("utf-8")))


def _split(value: object) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


@dataclass(frozen=True)
class Sealer:
    """Seals with the first key, opens with any of them."""

    keys: tuple[bytes, ...]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Sealer:
        """The sealer ENCRYPTION_KEY (+ ENCRYPTION_KEY_OLD) describe, else one from SECRET_KEY."""
        materials = _split(config.get("ENCRYPTION_KEY")) + _split(config.get("ENCRYPTION_KEY_OLD"))
        if not materials:
            materials = [str(config["SECRET_KEY"])]
        return cls(tuple(dict.fromkeys(derive_key(m) for m in materials)))

    @functools.cached_property
    def _fernet(self) -> MultiFernet:
        # Built once per sealer: every launch and webhook opens or seals a value.
        return MultiFernet([Fernet(k) for k in self.keys])

    def seal(self, plaintext: str) -> str:
        """plaintext sealed under the current key, as stored."""
        # MultiFernet encrypts with its first key: the current one.
        return PREFIX + self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def unseal(self, stored: str) -> str:
        """The plaintext of a stored value; a legacy unsealed value comes back unchanged."""
        if not stored.startswith(PREFIX):
            return stored
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise SealError(SealError.__doc__) from exc


def get_sealer() -> Sealer:
    """The current app's sealer."""
    sealer = current_app.extensions.get(EXTENSION)
    if sealer is None:
        sealer = current_app.extensions[EXTENSION] = Sealer.from_config(current_app.config)
    assert isinstance(sealer, Sealer)
    return sealer


class SealedText(TypeDecorator[str]):
    """A text column whose values are sealed on the way in and opened on the way out."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        """Seal a value being written."""
        return None if value is None else get_sealer().seal(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        """Open a value being read."""
        return None if value is None else get_sealer().unseal(value)


def sealed_columns() -> Iterator[tuple[Any, Sequence[str]]]:
    """Every mapped model with SealedText columns, and those columns' attribute names."""
    for mapper in Base.registry.mappers:
        names = [
            attr.key
            for attr in mapper.column_attrs
            if any(isinstance(col.type, SealedText) for col in attr.columns)
        ]
        if names:
            yield mapper.class_, names


def reseal_all(batch: int = 500) -> dict[str, int]:
    """Write every sealed value again under the current key (flushes; the caller commits).

    Values sealed under an older key, and legacy plaintext, come out sealed under the current
    one. Returns the number of rows rewritten per table.
    """
    counts: dict[str, int] = {}
    for model, names in sealed_columns():
        count = 0
        for row in db.session.scalars(select(model)).yield_per(batch):
            for name in names:
                if getattr(row, name) is not None:
                    flag_modified(row, name)
            count += 1
            if count % batch == 0:
                db.session.flush()
        db.session.flush()
        counts[model.__tablename__] = count
    return counts


def init_app(app: Flask) -> None:
    """Build the app's sealer from its config (a bad key stops start-up here)."""
    app.extensions[EXTENSION] = Sealer.from_config(app.config)
