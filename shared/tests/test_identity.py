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


# --- rotating the internal secret -------------------------------------------------------------
def test_previous_secrets_are_accepted_during_a_rotation():
    old, new = "old-internal-secret", "new-internal-secret"
    signed_old = identity_headers(ALICE, old, "GET", "/api/v1/catalog/x", now=1000)
    signed_new = identity_headers(ALICE, new, "GET", "/api/v1/catalog/x", now=1000)
    for headers in (signed_old, signed_new):
        assert verify_identity(headers, [new, old], "GET", "/api/v1/catalog/x", now=1000) == ALICE
    with pytest.raises(Unauthorized):  # once the old secret is dropped it is refused
        verify_identity(signed_old, new, "GET", "/api/v1/catalog/x", now=1000)
    with pytest.raises(Unauthorized):  # a previous secret is no master key for other paths
        verify_identity(signed_old, [new, old], "GET", "/api/v1/vouchers/x", now=1000)
    with pytest.raises(Unauthorized):  # an empty entry never matches a signature made with ""
        verify_identity(identity_headers(ALICE, "", "GET", "/p", now=1000), [new, ""], "GET", "/p", now=1000)


def test_accepted_secrets_come_from_the_settings(monkeypatch):
    from types import SimpleNamespace

    from pydantic_settings import SettingsConfigDict

    from techbridge_shared.identity import accepted_secrets
    from techbridge_shared.service import Settings
    from techbridge_shared.settings import load_settings

    class RotatingSettings(Settings):
        model_config = SettingsConfigDict(env_prefix="ROTATING_", extra="forbid", frozen=True)

    monkeypatch.setenv("ROTATING_INTERNAL_AUTH_SECRET", "new")
    monkeypatch.setenv("ROTATING_INTERNAL_AUTH_PREVIOUS_SECRETS", " old-1 , old-2,,new ")
    assert accepted_secrets(load_settings(RotatingSettings)) == ("new", "old-1", "old-2")
    monkeypatch.delenv("ROTATING_INTERNAL_AUTH_PREVIOUS_SECRETS")
    assert accepted_secrets(load_settings(RotatingSettings)) == ("new",)
    # Settings stand-ins without the field (as in some tests) accept only the current secret.
    assert accepted_secrets(SimpleNamespace(internal_auth_secret="only")) == ("only",)


def test_require_identity_accepts_current_and_previous_secrets():
    from types import SimpleNamespace

    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    from techbridge_shared.errors import install_problem_handlers
    from techbridge_shared.identity import require_identity

    app = FastAPI()
    install_problem_handlers(app)
    app.state.runtime = SimpleNamespace(settings=SimpleNamespace(
        internal_auth_secret="new-secret", internal_auth_previous_secrets="old-secret"))

    @app.get("/api/v1/who")
    def who(identity: Identity = Depends(require_identity)):
        return {"sub": identity.sub}

    with TestClient(app) as client:
        for secret, status in (("new-secret", 200), ("old-secret", 200), ("other", 401)):
            r = client.get("/api/v1/who", headers=identity_headers(ALICE, secret, "GET", "/api/v1/who"))
            assert r.status_code == status, secret
