"""Launch errors: why an LTI login or launch was refused, as a reason code and a plain sentence.

Owns the wording and HTTP status of the launch.* codes of lti_proctor.reasons.Reason, and the one
mapping of pylti1p3's free-text exceptions to a reason. Renders nothing: web/ turns a
LaunchError into a page.

```
Exception
  LaunchError(reason, detail)     -> errors/launch.html, 400 (403 for policy refusals)
      reason: Reason              launch.state_missing, launch.nonce_replayed, ...
      detail: str | None          which claim, kid or parameter; never a token or a secret
      next_step, return_url       a refusal after validation: what to ask for, the way back
  RegisterError(reason, detail)   -> errors/register.html, 400 (403 no invite, 409 duplicate)
      reason: Reason      register.invite_invalid, register.config_unreachable, ...
```

pylti1p3 raises one LtiException (and OIDCException at login) with free text;
classify_lti_exception() maps that text to a LaunchError, with launch.invalid as the catch-all.
"""

from __future__ import annotations

from dataclasses import dataclass

from lti_proctor.i18n import N_
from lti_proctor.reasons import Reason

_MAX_DETAIL = 120


# The codes are lti_proctor.reasons.Reason, the one enum of every reason; this module owns the
# launch.* members' wording. The old name stays an alias so callers of either name meet one enum.
LaunchReason = Reason
LAUNCH_REASONS: frozenset[Reason] = frozenset(r for r in Reason if r.value.startswith("launch."))


@dataclass(frozen=True)
class ReasonText:
    """What a page says about a reason: what happened, and what the reader can do next."""

    what: str
    next_step: str
    status: int = 400


# Each next step is one whole catalog entry (N_: translated where it is shown), never glued from
# parts, so a translator sees the full sentence.
_RETRY = N_("Go back to the course and open the activity again.")
_RETRY_ADMIN = N_(
    "Go back to the course and open the activity again. If it happens again, give your LMS "
    "administrator the reason code and request id below."
)
_CONFIG = N_(
    "This is a configuration problem: your LMS administrator needs to check the tool's "
    "registration, using the reason code below."
)

REASON_TEXT: dict[LaunchReason, ReasonText] = {
    LaunchReason.LOGIN_INVALID: ReasonText(
        N_("The LMS started the login without the issuer or login hint the tool needs."), _CONFIG
    ),
    LaunchReason.PLATFORM_REFUSED: ReasonText(
        N_("The LMS refused to complete the login and sent an error back instead of a launch."),
        _RETRY_ADMIN,
    ),
    LaunchReason.STATE_MISSING: ReasonText(
        N_(
            "Your browser did not send back the cookie the tool set when the launch began; "
            "browsers that block third-party cookies in frames do this."
        ),
        N_(
            "Open the activity in a new window or tab, or allow cookies for this tool, and try "
            "again."
        ),
    ),
    LaunchReason.STATE_MISMATCH: ReasonText(
        N_("The launch did not match the login your browser started, so it was refused."),
        _RETRY_ADMIN,
    ),
    LaunchReason.NONCE_INVALID: ReasonText(
        N_("The launch was not started by this tool's login, or it waited too long."),
        _RETRY,
    ),
    LaunchReason.NONCE_REPLAYED: ReasonText(
        N_("This launch was already used once, and a launch can be used only once."),
        N_(
            "Go back to the course and open the activity again. Do not reload or resubmit the "
            "launch page."
        ),
    ),
    LaunchReason.TOKEN_INVALID: ReasonText(
        N_("The LMS sent a launch the tool could not read."), _RETRY_ADMIN
    ),
    LaunchReason.ALGORITHM_NOT_ALLOWED: ReasonText(
        N_("The launch was signed with an algorithm the tool does not accept (only RS256)."),
        _CONFIG,
    ),
    LaunchReason.KID_UNKNOWN: ReasonText(
        N_("The launch was signed with a key the LMS does not publish."), _CONFIG
    ),
    LaunchReason.JWKS_UNAVAILABLE: ReasonText(
        N_("The tool could not fetch the LMS's public keys to check the launch."),
        N_(
            "Try again in a few minutes. If it happens again, give your LMS administrator the "
            "reason code and request id below."
        ),
    ),
    LaunchReason.SIGNATURE_INVALID: ReasonText(
        N_("The launch's signature does not match the LMS's keys."), _CONFIG
    ),
    LaunchReason.TOKEN_EXPIRED: ReasonText(
        N_("The launch expired before it reached the tool."),
        N_(
            "Go back to the course and open the activity again. If it keeps happening, the LMS "
            "server's clock may be wrong."
        ),
    ),
    LaunchReason.TOKEN_NOT_YET_VALID: ReasonText(
        N_(
            "The launch says it was issued in the future, so the LMS's clock and the tool's "
            "disagree."
        ),
        N_(
            "Your LMS administrator should check the LMS server's clock. If it happens again, "
            "give your LMS administrator the reason code and request id below."
        ),
    ),
    LaunchReason.TOKEN_TOO_OLD: ReasonText(
        N_("The launch was issued too long ago to be accepted, even though it has not expired."),
        N_(
            "Go back to the course and open the activity again. If it keeps happening, the LMS "
            "server's clock may be wrong."
        ),
    ),
    LaunchReason.TARGET_LINK_INVALID: ReasonText(
        N_(
            "The LMS asked to open an address that is not this tool's, so the tool did not "
            "follow it."
        ),
        _CONFIG,
    ),
    LaunchReason.AUDIENCE_INVALID: ReasonText(
        N_("The launch was meant for a different tool registration than the one that logged in."),
        _CONFIG,
    ),
    LaunchReason.REGISTRATION_UNKNOWN: ReasonText(
        N_("This LMS (issuer and client id) is not registered with the tool."), _CONFIG
    ),
    LaunchReason.DEPLOYMENT_UNKNOWN: ReasonText(
        N_("This deployment of the tool is not registered with the tool."), _CONFIG
    ),
    LaunchReason.DEPLOYMENT_INACTIVE: ReasonText(
        N_("This deployment of the tool has been switched off by an administrator."),
        N_("Ask your instructor or LMS administrator; the tool is not available for this course."),
        status=403,
    ),
    LaunchReason.MESSAGE_UNSUPPORTED: ReasonText(
        N_("The LMS sent a kind of LTI message this tool does not handle."), _CONFIG
    ),
    LaunchReason.VERSION_UNSUPPORTED: ReasonText(
        N_("The LMS sent a launch for an LTI version other than 1.3.0."), _CONFIG
    ),
    LaunchReason.CLAIM_MISSING: ReasonText(
        N_("The launch lacks information the tool needs."), _CONFIG
    ),
    LaunchReason.CLAIM_INVALID: ReasonText(
        N_("The launch carries information in a shape the tool cannot use."), _CONFIG
    ),
    LaunchReason.ROLE_NOT_ALLOWED: ReasonText(
        N_("Your role in this course does not give access to this page."),
        N_("Ask your instructor if you think you should have access."),
        status=403,
    ),
    LaunchReason.PROFILE_UNKNOWN: ReasonText(
        N_("This exam asks for a proctoring profile this tool does not have."),
        N_("Ask your instructor or administrator to fix the exam's proctoring_profile setting."),
    ),
    LaunchReason.EXAM_NOT_FOUND: ReasonText(
        N_("This link names an exam that does not belong to this course, or no longer exists."),
        N_(
            "Ask your instructor to add the exam to this course again (Add an activity, then "
            "choose the proctoring tool); a link copied from another course does not work here."
        ),
        status=404,
    ),
    LaunchReason.EXAM_NOT_OPEN: ReasonText(
        N_("This exam is not open right now."),
        N_("Come back when the exam opens, or ask your instructor about the exam's dates."),
        status=403,
    ),
    LaunchReason.ACCESS_CODE_EXPOSED: ReasonText(
        N_(
            "This exam's access code is set in the link itself, where students can read it, so "
            "the tool does not start it."
        ),
        N_(
            "Please tell your instructor: opening the exam link as a teacher shows how to keep "
            "the code in the tool instead."
        ),
        status=403,
    ),
    LaunchReason.DEEP_LINK_UNSUPPORTED: ReasonText(
        N_(
            "The LMS asked to add content that this tool cannot provide here (it adds LTI links "
            "to proctored exams)."
        ),
        N_(
            "Add the tool from the LMS's activity chooser or an assignment's external tool "
            "submission instead. If that is not offered, your LMS administrator needs to check "
            "the tool's registration, using the reason code below."
        ),
    ),
    LaunchReason.INVALID: ReasonText(N_("The launch could not be accepted."), _RETRY_ADMIN),
}


class LaunchError(Exception):
    """The LTI login or launch was refused."""

    def __init__(
        self,
        reason: Reason,
        detail: str | None = None,
        *,
        next_step: str | None = None,
        return_url: str | None = None,
    ) -> None:
        self.reason = reason
        self.detail = _clip(detail)
        # A refusal after validation may say more than the reason's default next step (which
        # role was seen, what to ask for) and offer the way back to the course.
        self.next_step = next_step or REASON_TEXT[reason].next_step
        self.return_url = return_url
        super().__init__(f"{reason.value}: {self.detail}" if self.detail else reason.value)

    @property
    def text(self) -> ReasonText:
        """The page wording and HTTP status of this refusal."""
        return REASON_TEXT[self.reason]

    @property
    def status(self) -> int:
        """HTTP status: 403 for policy refusals, 400 otherwise."""
        return self.text.status


def claim_missing(name: str) -> LaunchError:
    """A LaunchError naming the claim the launch lacks."""
    return LaunchError(LaunchReason.CLAIM_MISSING, f"missing claim: {name}")


def claim_invalid(name: str) -> LaunchError:
    """A LaunchError naming the claim whose value has the wrong shape."""
    return LaunchError(LaunchReason.CLAIM_INVALID, f"invalid claim: {name}")


def _clip(detail: str | None) -> str | None:
    """Details can echo request values: keep them short and on one line."""
    if detail is None:
        return None
    flat = " ".join(detail.split())
    return flat if len(flat) <= _MAX_DETAIL else flat[: _MAX_DETAIL - 1] + "…"


# pylti1p3 message text (a substring, matched in order) -> reason and what to show as detail.
_LTI_TEXT: tuple[tuple[str, Reason, str | None], ...] = (
    ("Could not find issuer", LaunchReason.LOGIN_INVALID, "missing login parameter: iss"),
    (
        "Could not find login hint",
        LaunchReason.LOGIN_INVALID,
        "missing login parameter: login_hint",
    ),
    ("Could not find registration details", LaunchReason.REGISTRATION_UNKNOWN, None),
    ("Registration not found", LaunchReason.REGISTRATION_UNKNOWN, None),
    ("Client id not registered", LaunchReason.REGISTRATION_UNKNOWN, None),
    ("Missing state param", LaunchReason.STATE_MISMATCH, "no state in the launch"),
    ("State not found", LaunchReason.STATE_MISSING, None),
    ("Invalid Nonce", LaunchReason.NONCE_INVALID, None),
    ('"nonce" is empty', LaunchReason.CLAIM_MISSING, "missing claim: nonce"),
    ('"iss" is empty', LaunchReason.CLAIM_MISSING, "missing claim: iss"),
    ("Missing id_token", LaunchReason.TOKEN_INVALID, "no id_token in the launch"),
    ("JWT must contain 3 parts", LaunchReason.TOKEN_INVALID, "id_token is not a JWT"),
    ("Invalid JWT format", LaunchReason.TOKEN_INVALID, "id_token cannot be decoded"),
    ("JWT KID not found", LaunchReason.KID_UNKNOWN, "no kid in the token header"),
    ("Unable to find public key", LaunchReason.KID_UNKNOWN, None),
    ("JWT ALG not found", LaunchReason.ALGORITHM_NOT_ALLOWED, "no alg in the token header"),
    ("Signature has expired", LaunchReason.TOKEN_EXPIRED, None),
    ("not yet valid", LaunchReason.TOKEN_NOT_YET_VALID, None),
    ("Signature verification failed", LaunchReason.SIGNATURE_INVALID, None),
    ("Invalid audience", LaunchReason.AUDIENCE_INVALID, None),
    ("Can't decode id_token", LaunchReason.TOKEN_INVALID, None),
    ("Error during fetch URL", LaunchReason.JWKS_UNAVAILABLE, None),
    ("Invalid response from", LaunchReason.JWKS_UNAVAILABLE, None),
    ("Unable to find deployment", LaunchReason.DEPLOYMENT_UNKNOWN, None),
    ("deployment_id is not set", LaunchReason.CLAIM_MISSING, "missing claim: deployment_id"),
    ("Invalid message type", LaunchReason.CLAIM_MISSING, "missing claim: message_type"),
    ("Unrecognized message type", LaunchReason.MESSAGE_UNSUPPORTED, None),
    ("Must have a user (sub)", LaunchReason.CLAIM_MISSING, "missing claim: sub"),
    ("Incorrect version", LaunchReason.VERSION_UNSUPPORTED, None),
    ("Missing Roles Claim", LaunchReason.CLAIM_MISSING, "missing claim: roles"),
    ("Missing Resource Link Id", LaunchReason.CLAIM_MISSING, "missing claim: resource_link.id"),
    (
        "Missing Deep Linking",
        LaunchReason.CLAIM_MISSING,
        "missing claim: deep_linking_settings",
    ),
    (
        "Must support resource link placement types",
        LaunchReason.CLAIM_INVALID,
        "invalid claim: deep_linking_settings.accept_types",
    ),
    (
        "Must support a presentation type",
        LaunchReason.CLAIM_INVALID,
        "invalid claim: deep_linking_settings.accept_presentation_document_targets",
    ),
)


def classify_lti_exception(exc: Exception) -> LaunchError:
    """Map a pylti1p3 LtiException/OIDCException to a LaunchError; launch.invalid if unknown."""
    text = str(exc)
    for needle, reason, detail in _LTI_TEXT:
        if needle in text:
            return LaunchError(reason, detail)
    return LaunchError(LaunchReason.INVALID, f"{type(exc).__name__}")


# --- registration refusals (LTI Dynamic Registration at /lti/register) ---------------------------
# Kept next to LaunchReason in the same style; the lead folds both into one reason-code enum.


_ASK_FOR_INVITE = N_(
    "Ask whoever runs the proctoring tool for a new registration URL "
    "(`lti-proctor platform invite`) and paste that one."
)
_CHECK_LMS = N_(
    "Check that the LMS's address is reachable from the tool over https, then paste the "
    "registration URL again; nothing was registered."
)

REGISTER_TEXT: dict[Reason, ReasonText] = {
    Reason.REGISTER_INVITE_INVALID: ReasonText(
        N_(
            "This registration URL has no valid invite: it is missing, already used, expired or "
            "revoked, so the tool registered nothing."
        ),
        _ASK_FOR_INVITE,
        status=403,
    ),
    Reason.REGISTER_CONFIG_UNREACHABLE: ReasonText(
        N_("The tool could not fetch the LMS's registration details (its OpenID configuration)."),
        _CHECK_LMS,
    ),
    Reason.REGISTER_CONFIG_INVALID: ReasonText(
        N_("The LMS's registration details are not a usable LTI 1.3 platform configuration."),
        N_(
            "The LMS must support LTI Dynamic Registration with RS256 and id_token launches; "
            "register the tool by hand (`lti-proctor platform add`) if it does not. "
            "Nothing was registered."
        ),
    ),
    Reason.REGISTER_PLATFORM_REFUSED: ReasonText(
        N_("The LMS refused the tool's registration request."),
        N_(
            "Start the registration again from the LMS (its registration token may have expired); "
            "nothing was registered in the tool."
        ),
    ),
    Reason.REGISTER_ALREADY_REGISTERED: ReasonText(
        N_("The tool already has a registration with this issuer and client id."),
        N_(
            "Nothing changed. Use the existing registration, or remove it first "
            "(`lti-proctor platform remove`)."
        ),
        status=409,
    ),
}


class RegisterError(Exception):
    """The registration was refused; nothing was stored."""

    def __init__(self, reason: Reason, detail: str | None = None) -> None:
        self.reason = reason
        self.detail = _clip(detail)
        super().__init__(f"{reason.value}: {self.detail}" if self.detail else reason.value)

    @property
    def text(self) -> ReasonText:
        """The page wording and HTTP status of this refusal."""
        return REGISTER_TEXT[self.reason]

    @property
    def status(self) -> int:
        """HTTP status: 403 without a valid invite, 409 for a duplicate, 400 otherwise."""
        return self.text.status
