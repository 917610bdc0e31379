import pytest

from techbridge_shared.errors import Unauthorized
from techbridge_shared.identity import IDENTITY_HEADER, SIGNATURE_HEADER, Identity, identity_headers, verify_identity

SECRET = "s3cret"
ALICE = Identity(sub="user-1", org="org-1", roles=frozenset({"enterprise"}), kind="user")


def test_signed_identity_round_trips():
    headers = identity_headers(ALICE, SECRET, "POST", "/api/v1/vouchers/redemptions", now=1000)
    assert verify_identity(headers, SECRET, "POST", "/api/v1/vouchers/redemptions", now=1010) == ALICE


@pytest.mark.parametrize("change", ["secret", "method", "path", "late", "tampered", "missing"])
def test_forged_or_replayed_identities_are_refused(change):
    headers = identity_headers(ALICE, SECRET, "GET", "/api/v1/catalog/achievements", now=1000)
    secret, method, path, now = SECRET, "GET", "/api/v1/catalog/achievements", 1000
    if change == "secret":
        secret = "guess"
    elif change == "method":
        method = "DELETE"
    elif change == "path":
        path = "/api/v1/vouchers/vouchers"
    elif change == "late":
        now = 1000 + 61
    elif change == "tampered":
        admin = identity_headers(ALICE.model_copy(update={"roles": frozenset({"admin"})}), "guess", "GET", path, now=1000)
        headers = {**headers, IDENTITY_HEADER: admin[IDENTITY_HEADER]}
    elif change == "missing":
        headers = {k: v for k, v in headers.items() if k != SIGNATURE_HEADER}
    with pytest.raises(Unauthorized):
        verify_identity(headers, secret, method, path, now=now)
