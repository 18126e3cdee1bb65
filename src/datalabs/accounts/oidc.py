"""Single sign-on with OpenID Connect providers (issue 19): the authorization code flow with PKCE.

The browser leaves for the provider with a fresh state, nonce and PKCE verifier. They travel in a
cookie signed with the platform's secret (short-lived, bound to this browser) and the state's hash is
stored in `oidc_states`, deleted when the browser comes back: a state is used once, whichever replica
answers. The ID token is verified here (signature with the provider's JWKS, alg in the provider's
advertised list and never `none` or an HMAC, iss, aud, azp, exp/iat with a small leeway, nonce).
Discovery documents and JWKS are fetched with bounded time and size and cached; an unknown `kid`
refreshes the JWKS once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete
from sqlalchemy.orm import Session

from datalabs.accounts.oidc_settings import OidcProvider
from datalabs.config import Settings
from datalabs.db.models import OidcState
from datalabs.db.types import utcnow
from datalabs.errors import Unauthorized

FLOW_TTL = 600  # seconds a login may spend at the provider
LEEWAY = 60  # seconds of clock skew accepted on exp/iat
MAX_DOCUMENT = 256 * 1024  # bytes of a discovery document or JWKS
FETCH_TIMEOUT = httpx.Timeout(5.0, connect=3.0)
DEADLINE = 8.0  # seconds for a whole fetch, however slowly the bytes trickle in
CACHE_TTL = 3600
JWKS_REFRESH_MIN = 30  # seconds between JWKS refreshes forced by unknown kids (a stranger's tokens)
ASYMMETRIC = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}


SSO_COOKIE = "datalabs_sso"  # "<provider>:<ID token>", path /logout: the hint for RP-initiated logout


class OidcError(Unauthorized):
    def __init__(self, message: str, code: str = "oidc_refused"):
        super().__init__(message, code=code)


# ---- bounded fetches --------------------------------------------------------------------------------


def fetch_json(url: str, *, method: str = "GET", **kwargs) -> dict:
    """A JSON object from `url`, at most MAX_DOCUMENT bytes, within DEADLINE seconds, else OidcError."""
    started = time.monotonic()
    try:
        with (
            httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=False) as client,
            client.stream(method, url, **kwargs) as response,
        ):
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT:
                    raise OidcError(f"{url}: answer larger than {MAX_DOCUMENT} bytes", "oidc_unavailable")
                if time.monotonic() - started > DEADLINE:
                    raise OidcError(f"{url}: answer too slow", "oidc_unavailable")
            status = response.status_code
    except httpx.HTTPError as exc:
        raise OidcError(f"{url}: {type(exc).__name__}", "oidc_unavailable") from exc
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise OidcError(f"{url}: answer is not JSON (HTTP {status})", "oidc_unavailable") from exc
    if not isinstance(data, dict):
        raise OidcError(f"{url}: answer is not a JSON object", "oidc_unavailable")
    if status != 200:
        raise OidcError(f"{url}: HTTP {status} {str(data.get('error', ''))[:100]}", "oidc_unavailable")
    return data


@dataclass
class ProviderInfo:
    """A provider's discovery document and keys, as cached."""

    config: OidcProvider
    document: dict
    keys: KeySet
    fetched: float
    keys_fetched: float
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def algorithms(self) -> list[str]:
        advertised = self.document.get("id_token_signing_alg_values_supported") or ["RS256"]
        return [a for a in advertised if a in ASYMMETRIC]

    def endpoint(self, key: str) -> str:
        value = self.document.get(key)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise OidcError(f"provider '{self.config.name}' has no {key}", "oidc_unavailable")
        return value


class Registry:
    """The configured providers' discovery and JWKS, fetched on first use and cached (per process)."""

    def __init__(self, settings: Settings):
        self.providers = {p.name: p for p in settings.oidc.providers}
        self._info: dict[str, ProviderInfo] = {}
        self._lock = threading.Lock()

    def provider(self, name: str) -> OidcProvider:
        if name not in self.providers:
            raise OidcError(f"no sign-in provider '{name}'", "oidc_unknown_provider")
        return self.providers[name]

    def info(self, name: str) -> ProviderInfo:
        config = self.provider(name)
        with self._lock:
            cached = self._info.get(name)
        if cached is not None and time.monotonic() - cached.fetched < CACHE_TTL:
            return cached
        issuer = config.issuer.rstrip("/")
        document = fetch_json(issuer + "/.well-known/openid-configuration")
        if document.get("issuer") != config.issuer:
            raise OidcError(f"provider '{name}': discovery names another issuer", "oidc_unavailable")
        info = ProviderInfo(config, document, KeySet([]), time.monotonic(), 0.0)
        info.keys = _keys(info)
        info.keys_fetched = time.monotonic()
        with self._lock:
            self._info[name] = info
        return info

    def by_issuer(self, issuer: str) -> OidcProvider | None:
        return next((p for p in self.providers.values() if p.issuer == issuer), None)


def _keys(info: ProviderInfo) -> KeySet:
    data = fetch_json(info.endpoint("jwks_uri"))
    try:
        keys = KeySet.import_key_set(
            {"keys": [k for k in data.get("keys", []) if k.get("kty") in ("RSA", "EC", "OKP")]}
        )
    except (JoseError, ValueError, TypeError, AttributeError) as exc:
        raise OidcError(f"provider '{info.config.name}': unreadable JWKS", "oidc_unavailable") from exc
    return keys


def decode_jwt(info: ProviderInfo, token: str) -> dict:
    """The claims of `token` once its signature checks out with the provider's keys (refreshed once
    on an unknown kid, at most every JWKS_REFRESH_MIN s) and its alg is one the provider advertises;
    OidcError else."""
    algorithms = info.algorithms
    if not algorithms:
        raise OidcError(f"provider '{info.config.name}' advertises no usable signing algorithm")
    try:
        header = json.loads(_b64(token.split(".")[0]))
        alg = header.get("alg")
    except (ValueError, IndexError, AttributeError) as exc:
        raise OidcError("token is not a JWT") from exc
    if alg not in algorithms:
        raise OidcError(f"token signed with alg {str(alg)[:20]!r}, not one the provider uses")
    for attempt in (1, 2):
        try:
            return jwt.decode(token, info.keys, algorithms=algorithms).claims
        except InvalidKeyIdError as exc:
            with info.lock:
                if attempt == 2 or time.monotonic() - info.keys_fetched < JWKS_REFRESH_MIN:
                    raise OidcError("token signed with an unknown key") from exc
                info.keys = _keys(info)
                info.keys_fetched = time.monotonic()
        except JoseError as exc:
            raise OidcError(f"token refused: {exc.error}") from exc
    raise OidcError("token signed with an unknown key")  # pragma: no cover (loop always returns/raises)


def check_claims(claims: dict, *, issuer: str, audience: str, nonce: str | None = None) -> dict:
    """iss, aud (and azp when there are several audiences), exp, iat, sub and the nonce; OidcError else."""
    options = {
        "iss": {"essential": True, "value": issuer},
        "aud": {"essential": True, "value": audience},
        "exp": {"essential": True},
        "sub": {"essential": True},
    }
    if nonce is not None:
        options["nonce"] = {"essential": True, "value": nonce}
        options["iat"] = {"essential": True}
    try:
        jwt.JWTClaimsRegistry(leeway=LEEWAY, **options).validate(claims)
    except JoseError as exc:
        raise OidcError(f"token refused: {exc.description or exc.error}") from exc
    aud = claims["aud"]
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != audience:
        raise OidcError("token refused: several audiences and azp is not this platform")
    if "iat" in claims and isinstance(claims["iat"], int | float) and claims["iat"] > time.time() + LEEWAY:
        raise OidcError("token refused: issued in the future")
    if not isinstance(claims["sub"], str) or not 0 < len(claims["sub"]) <= 255:
        raise OidcError("token refused: bad subject")
    return claims


# ---- the login flow ---------------------------------------------------------------------------------


def _b64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _sign(settings: Settings, payload: dict) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
    mac = hmac.new(settings.secret_key.encode(), f"oidc-flow:{body}".encode(), "sha256").hexdigest()
    return f"{body}.{mac}"


def _unsign(settings: Settings, value: str) -> dict:
    body, _, mac = (value or "").partition(".")
    good = hmac.new(settings.secret_key.encode(), f"oidc-flow:{body}".encode(), "sha256").hexdigest()
    if not body or not hmac.compare_digest(good, mac):
        raise OidcError("this sign-in was not started in this browser; please start again", "oidc_state")
    payload = json.loads(_b64(body))
    if payload.get("exp", 0) < time.time():
        raise OidcError("this sign-in took too long; please start again", "oidc_state")
    return payload


def _state_id(state: str) -> str:
    return hashlib.sha256(f"oidc-state:{state}".encode()).hexdigest()


def begin(
    db: Session, settings: Settings, info: ProviderInfo, redirect_uri: str, next_url: str
) -> tuple[str, str]:
    """(URL of the provider's authorization endpoint, value of the flow cookie) for a new sign-in."""
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    db.execute(delete(OidcState).where(OidcState.expires_at < utcnow()))
    db.add(OidcState(id=_state_id(state), expires_at=utcnow() + timedelta(seconds=FLOW_TTL)))
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code",
        "client_id": info.config.client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(info.config.scopes),
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    cookie = {"p": info.config.name, "s": state, "n": nonce, "v": verifier, "next": next_url}
    cookie["exp"] = int(time.time()) + FLOW_TTL
    endpoint = info.endpoint("authorization_endpoint")
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params), _sign(settings, cookie)


def finish(
    db: Session, settings: Settings, info: ProviderInfo, cookie: str, state: str, code: str, redirect_uri: str
) -> tuple[dict, str, str]:
    """(verified ID token claims, the raw ID token, the next URL) for the browser that came back with
    `state` and `code`; the state is spent whatever happens next."""
    flow = _unsign(settings, cookie)
    if flow.get("p") != info.config.name or not hmac.compare_digest(str(flow.get("s", "")), state or ""):
        raise OidcError("this sign-in was not started in this browser; please start again", "oidc_state")
    spent = db.execute(delete(OidcState).where(OidcState.id == _state_id(state)))
    db.commit()  # spent even if the rest fails
    if spent.rowcount != 1:
        raise OidcError("this sign-in was already used; please start again", "oidc_state")
    tokens = fetch_json(
        info.endpoint("token_endpoint"),
        method="POST",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": flow["v"],
        },
        auth=(info.config.client_id, info.config.secret()),
    )
    raw = tokens.get("id_token")
    if not isinstance(raw, str):
        raise OidcError("the provider sent no ID token")
    claims = decode_jwt(info, raw)
    check_claims(claims, issuer=info.config.issuer, audience=info.config.client_id, nonce=flow["n"])
    return claims, raw, flow.get("next", "")


def origin(url: str) -> str:
    """scheme://host[:port] of a URL (a provider's issuer), as a CSP source."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def registry_for(state) -> Registry:
    """The app's registry (`app.state.oidc`), made on first use."""
    if getattr(state, "oidc", None) is None:
        state.oidc = Registry(state.settings)
    return state.oidc


def end_session_url(registry: Registry, cookie: str, after: str) -> str | None:
    """The provider's end_session_endpoint for the sign-in remembered in SSO_COOKIE (RP-initiated
    logout with id_token_hint and post_logout_redirect_uri), or None: no such sign-in or endpoint."""
    name, _, id_token = (cookie or "").partition(":")
    if name not in registry.providers or not id_token:
        return None
    try:
        info = registry.info(name)
        endpoint = info.endpoint("end_session_endpoint")
    except OidcError:
        return None
    params = {
        "id_token_hint": id_token,
        "post_logout_redirect_uri": after,
        "client_id": info.config.client_id,
    }
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)
