"""Names and Role Provisioning Services 2.0: a course's members, page by page.

Pure protocol over requests: follows the answer's `Link: rel="next"` header (parsed by requests,
Moodle's typographic quotes included, see service_http.next_page) with the tool's access token,
shared through the store like AGS's. Spec: https://www.imsglobal.org/spec/lti-nrps/v2p0
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import requests

from lti_proctor.lti.service_http import (
    AgsRejectedError,
    json_object,
    next_page,
    raise_for_status,
    send,
)
from lti_proctor.lti.service_tokens import (
    PlatformCredentials,
    ServiceTokens,
    SigningKeyProvider,
    TokenStore,
    TolerantStore,
)

log = logging.getLogger(__name__)

SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
CT_MEMBERSHIPS = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
MAX_PAGES = 100  # 100 pages of Canvas's default 10 (or Moodle's whole list): a large course
_LIS = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
LEARNER_ROLES = frozenset({_LIS + "Learner", "Learner"})


@dataclass(frozen=True)
class Member:
    """One member of the course as the platform lists them."""

    user_id: str
    name: str | None
    given_name: str | None
    family_name: str | None
    email: str | None
    roles: tuple[str, ...]
    status: str

    @property
    def is_learner(self) -> bool:
        """True for an active member holding a learner role."""
        return self.status.lower() == "active" and bool(LEARNER_ROLES & set(self.roles))

    @property
    def display_name(self) -> str:
        """The member's name, as the pages show it."""
        joined = " ".join(p for p in (self.given_name, self.family_name) if p)
        return self.name or joined or self.email or self.user_id


def _opt(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_member(raw: dict[str, object]) -> Member | None:
    """A member of the answer, or None when it has no user_id."""
    user_id = raw.get("user_id")
    if not isinstance(user_id, str | int) or user_id == "":
        return None
    roles = raw.get("roles")
    return Member(
        user_id=str(user_id),
        name=_opt(raw.get("name")),
        given_name=_opt(raw.get("given_name")),
        family_name=_opt(raw.get("family_name")),
        email=_opt(raw.get("email")),
        roles=tuple(str(r) for r in roles) if isinstance(roles, list) else (),
        status=_opt(raw.get("status")) or "Active",  # the spec's default
    )


class NrpsClient:
    """Reads context memberships of one platform, with its service tokens shared via the store."""

    def __init__(
        self,
        credentials: PlatformCredentials,
        *,
        store: TokenStore,
        signer: SigningKeyProvider,
        session: requests.Session | None = None,
        timeout: float = 10,
    ) -> None:
        self._session = session or requests.Session()
        self._timeout = timeout
        self.tokens = ServiceTokens(
            credentials,
            [SCOPE],
            store=TolerantStore(store),
            signer=signer,
            session=self._session,
            timeout=timeout,
        )

    def members(self, memberships_url: str) -> list[Member]:
        """Every member of the course, following rel=next pages (at most MAX_PAGES)."""
        found: list[Member] = []
        url: str | None = memberships_url
        for _ in range(MAX_PAGES):
            if url is None:
                return found
            page, url = self._page(url)
            found.extend(page)
        log.warning("NRPS roster at %s has more than %s pages; showing the first", url, MAX_PAGES)
        return found

    def _page(self, url: str) -> tuple[list[Member], str | None]:
        """One page of members and the next page's URL."""
        resp = self.tokens.send_authorized(
            lambda signed: send(
                self._session, "GET", url, headers=signed, data=None, timeout=self._timeout
            ),
            {"Accept": CT_MEMBERSHIPS},
            what=f"NRPS GET {url}",
        )
        raise_for_status(resp, what="course roster")
        members = json_object(resp, what="course roster").get("members")
        if not isinstance(members, list):
            raise AgsRejectedError("The LMS answered the roster request without a members list.")
        parsed = (parse_member(m) for m in members if isinstance(m, dict))
        return [m for m in parsed if m is not None], next_page(resp)
