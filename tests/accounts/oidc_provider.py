"""A real OpenID provider for the tests: Flask + authlib's authorization server and OpenID Connect code flow.

It serves discovery, JWKS, a login form, the authorization and token endpoints (PKCE S256 required),
userinfo and an end_session endpoint that ends its own session. ID tokens and access tokens (RFC 9068
JWTs, audience `api_audience`) are signed RS256 with a key generated at start. `sign()` builds tokens
with that key (or any other) so tests can forge wrong-audience, expired, alg-none ... tokens.
Started on loopback in a thread: `with OidcProvider(...) as op: op.issuer`.
"""

from __future__ import annotations

import base64
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, redirect, request, session
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from werkzeug.serving import make_server


@dataclass
class Person:
    name: str
    password: str
    sub: str
    groups: list[str] = field(default_factory=list)
    email: str = ""

    def get_user_id(self) -> str:
        return self.sub


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)  # empty: any http://127.0.0.1 / localhost URL
    post_logout_uris: list[str] = field(default_factory=list)

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope):
        return " ".join(s for s in (scope or "").split() if s in {"openid", "profile", "email", "groups"})

    def check_redirect_uri(self, redirect_uri):
        if self.redirect_uris:
            return redirect_uri in self.redirect_uris
        return redirect_uri.startswith(("http://127.0.0.1:", "http://localhost:"))

    def check_client_secret(self, client_secret):
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method, endpoint):
        return endpoint != "token" or method in {"client_secret_basic", "client_secret_post"}

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: Person
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.auth_time

    def get_acr(self):
        return None

    def get_amr(self):
        return None


class OidcProvider:
    """The provider; `people` sign in with name/password, `clients` are the relying parties."""

    def __init__(self, people: list[Person], clients: list[Client], api_audience: str = "datalabs-api"):
        self.people = {p.name: p for p in people}
        self.clients = {c.client_id: c for c in clients}
        self.api_audience = api_audience
        self.key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(4), "use": "sig"})
        self.codes: dict[str, Code] = {}
        self.logins = 0  # passwords accepted on the form (an automatic login does not count)
        self.ended_sessions = 0
        self.forge = None  # set by a test: claims of the genuine ID token -> the ID token sent instead
        self.issuer = ""  # set by start()
        self.app = self._build_app()
        self._server = None
        self._thread: threading.Thread | None = None

    # ---- tokens built by tests ----------------------------------------------------------------------

    def sign(self, claims: dict, *, key=None, alg: str = "RS256", header: dict | None = None) -> str:
        """A JWT with these claims signed by the provider's key (or `key`); alg "none": unsigned."""
        if alg == "none":
            head = {"alg": "none", "typ": "JWT", **(header or {})}
            part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
            return f"{part(head)}.{part(claims)}."
        key = key or self.key
        head = {"alg": alg, "kid": key.kid, **(header or {})}
        return jwt.encode(head, claims, key, algorithms=[alg])

    def id_claims(self, person: Person, client_id: str, nonce: str, **over) -> dict:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": person.sub,
            "aud": client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "preferred_username": person.name,
            "groups": person.groups,
        }
        claims.update(over)
        return claims

    # ---- the Flask app ------------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        op = self
        app = Flask("oidc_provider")
        app.secret_key = secrets.token_hex(16)
        app.config["SESSION_COOKIE_NAME"] = "op_session"  # never the platform's cookie names

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def save_authorization_code(self, code, req):
                data = req.payload.data
                op.codes[code] = Code(
                    code=code,
                    client_id=req.client.client_id,
                    redirect_uri=req.payload.redirect_uri,
                    scope=req.scope,
                    user=req.user,
                    nonce=data.get("nonce"),
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                )

            def query_authorization_code(self, code, client):
                item = op.codes.get(code)
                return item if item and item.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code):
                op.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code):
                return authorization_code.user

        class IdToken(OpenIDCode):
            def exists_nonce(self, nonce, req):
                return any(
                    c.nonce == nonce and c.client_id == req.payload.client_id for c in op.codes.values()
                )

            def resolve_client_private_key(self, client):
                return op.key

            def get_client_claims(self, client):
                return {"iss": op.issuer, "aud": [client.get_client_id()], "exp": int(time.time()) + 300}

            def get_encode_header(self, client):
                return {"alg": "RS256", "kid": op.key.kid}

            def encode_id_token(self, token, req):
                raw = super().encode_id_token(token, req)
                if op.forge is None:
                    return raw
                return op.forge(jwt.decode(raw, op.key, algorithms=["RS256"]).claims)

            def generate_user_info(self, user, scope):
                return UserInfo(
                    sub=user.sub, preferred_username=user.name, email=user.email, groups=user.groups
                )

        class AccessTokens(JWTBearerTokenGenerator):
            def get_jwks(self):
                return KeySet([op.key])

            def get_audiences(self, client, user, scope):
                return op.api_audience

            def get_extra_claims(self, client, grant_type, user, scope):
                return {"preferred_username": user.name} if user else {}

        server = AuthorizationServer(app, query_client=self.clients.get, save_token=lambda token, req: None)
        server.register_grant(CodeGrant, [CodeChallenge(required=True), IdToken(require_nonce=True)])
        self._access_tokens = AccessTokens(issuer="")  # its issuer is set by start()
        server.register_token_generator("default", self._access_tokens)

        @app.get("/.well-known/openid-configuration")
        def discovery():
            iss = op.issuer
            return {
                "issuer": iss,
                "authorization_endpoint": iss + "/authorize",
                "token_endpoint": iss + "/token",
                "userinfo_endpoint": iss + "/userinfo",
                "jwks_uri": iss + "/jwks",
                "end_session_endpoint": iss + "/logout",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "scopes_supported": ["openid", "profile", "email", "groups"],
            }

        @app.get("/jwks")
        def jwks():
            return KeySet([op.key]).as_dict(private=False)

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize():
            person = op.people.get(session.get("user", ""))
            if request.method == "POST":
                person = op.people.get(request.form.get("username", ""))
                if person is None or not secrets.compare_digest(
                    person.password, request.form.get("password", "")
                ):
                    return _form("wrong user name or password"), 401
                session["user"] = person.name
                op.logins += 1
            if person is None:
                return _form("")
            return server.create_authorization_response(grant_user=person)

        def _form(error: str) -> str:
            action = "/authorize?" + request.query_string.decode()
            return (
                "<!doctype html><title>Test provider: sign in</title><h1>Sign in to the test provider</h1>"
                f"<p class=error>{html.escape(error)}</p>"
                f'<form method=post action="{html.escape(action)}">'
                "<label>User <input name=username id=op-username></label>"
                "<label>Password <input name=password id=op-password type=password></label>"
                "<button id=op-submit>Sign in</button></form>"
            )

        @app.post("/token")
        def token():
            return server.create_token_response()

        @app.get("/logout")
        def end_session():
            session.clear()
            op.ended_sessions += 1
            target = request.args.get("post_logout_redirect_uri", "")
            hint = request.args.get("id_token_hint", "")
            if target and hint:
                claims = jwt.decode(hint, op.key, algorithms=["RS256"]).claims
                client = op.clients.get(
                    claims["aud"][0] if isinstance(claims["aud"], list) else claims["aud"]
                )
                if client and target in client.post_logout_uris:
                    return redirect(target)
            return "<!doctype html><title>Signed out</title><p>You are signed out of the test provider."

        return app

    # ---- running ------------------------------------------------------------------------------------

    def start(self) -> OidcProvider:
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.issuer = f"http://127.0.0.1:{self._server.server_port}"
        self._access_tokens.issuer = self.issuer
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def authorize_url(self, **params) -> str:
        return f"{self.issuer}/authorize?{urlencode(params)}"
