from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from lti_proctor.lti.service_tokens import PlatformCredentials, build_client_assertion

NOW = 1_900_000_000


@pytest.fixture(scope="module")
def key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_client_assertion_is_a_short_single_use_rs256_jwt(key: RSAPrivateKey) -> None:
    creds = PlatformCredentials(
        id="canvas",
        client_id="10000000000001",
        token_url="https://school.instructure.com/login/oauth2/token",
    )
    first = build_client_assertion(creds, kid="k1", key=key, now=NOW)
    second = build_client_assertion(creds, kid="k1", key=key, now=NOW)

    claims = jwt.decode(
        first,
        key.public_key(),
        algorithms=["RS256"],
        audience=creds.token_url,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == claims["sub"] == "10000000000001"
    assert (claims["iat"], claims["exp"]) == (NOW, NOW + 60)
    assert jwt.get_unverified_header(first) == {"alg": "RS256", "typ": "JWT", "kid": "k1"}
    assert jwt.decode(second, options={"verify_signature": False})["jti"] != claims["jti"]


def test_assertion_audience_is_the_auth_audience_when_the_platform_sets_one(
    key: RSAPrivateKey,
) -> None:
    creds = PlatformCredentials(
        id="p", client_id="abc", token_url="https://lms.example/token", auth_audience="lms-aud"
    )

    assertion = build_client_assertion(creds, kid="k1", key=key)

    claims = jwt.decode(assertion, key.public_key(), algorithms=["RS256"], audience="lms-aud")
    assert claims["aud"] == "lms-aud"
