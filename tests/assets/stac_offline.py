"""STAC validation without the internet: the JSON Schemas the validators ask for, served from this machine.

Validators (pystac, stac-validator inside stac-api-validator) fetch schemas by their official URLs
(schemas.stacspec.org, geojson.org, stac-extensions.github.io). These machines reach none of them, so:
- `schemas(base)` gathers the documents: the STAC 1.1.0 and GeoJSON schemas pystac ships, the File Info
  extension (`stac_schemas/`, an offline stand-in), and the Datalabs extension from the platform itself;
- `pystac_validator(...)` preloads pystac's own schema cache with them (pystac's supported hook), and
  checks each schema and builds its validator once, not for every document (pystac does both per call:
  20,000 items took minutes, the test's whole budget on a busy machine); what is checked is the same;
- `SchemaProxy` is an HTTPS proxy for processes we do not control (the stac-api-validator CLI): it
  answers CONNECT to those hosts with a certificate of a throwaway CA and serves the documents by URL,
  so the tool runs unmodified with HTTPS_PROXY and REQUESTS_CA_BUNDLE / SSL_CERT_FILE set. Any URL it
  does not hold is a 404 and is recorded in `misses`, so a test can show nothing was left to the network.
"""

from __future__ import annotations

import datetime as dt
import json
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jsonschema
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pystac.errors import STACValidationError
from pystac.validation import JsonSchemaSTACValidator
from pystac.validation.local_validator import get_local_schema_cache

from datalabs.assets import stac

HERE = Path(__file__).parent / "stac_schemas"
HOSTS = ("schemas.stacspec.org", "geojson.org", "stac-extensions.github.io")


def schemas(base_url: str, get=httpx.get) -> dict[str, dict]:
    """Every schema a validator needs for the platform's STAC documents, by official URL (`get` fetches
    the Datalabs extension's schema from the platform: public, like any schema)."""
    found = dict(get_local_schema_cache())
    found[stac.FILE_EXTENSION] = json.loads((HERE / "file-v2.1.0.json").read_text())
    extension = get(stac.extension_url(base_url))
    assert extension.status_code == 200, extension.text
    found[stac.extension_url(base_url)] = extension.json()
    return found


class _ReusingValidator(JsonSchemaSTACValidator):
    """pystac's validator with one jsonschema validator per schema, checked once (the schemas and the
    registry do not change here); errors are raised as pystac raises them."""

    def __init__(self) -> None:
        super().__init__()
        self._validators: dict[str, jsonschema.protocols.Validator] = {}

    def _validate_from_uri(self, stac_dict, stac_object_type, schema_uri, href=None) -> None:
        if schema_uri not in self._validators:
            schema = self._get_schema(schema_uri)
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            self._validators[schema_uri] = cls(schema, registry=self.registry)
        errors = list(self._validators[schema_uri].iter_errors(stac_dict))
        if errors:
            best = jsonschema.exceptions.best_match(errors)
            message = (
                f"Validation failed for {stac_object_type} with ID {stac_dict.get('id')} against {schema_uri}"
            )
            raise STACValidationError(f"{message}\n{best}", source=errors) from best


def pystac_validator(documents: dict[str, dict]) -> JsonSchemaSTACValidator:
    validator = _ReusingValidator()
    validator.schema_cache.update(documents)
    return validator


class SchemaProxy:
    """An HTTPS-intercepting proxy serving `documents` (URL -> JSON); see the module docstring."""

    def __init__(self, documents: dict[str, dict], workdir: Path):
        self.documents = {url.split("#")[0]: json.dumps(doc).encode() for url, doc in documents.items()}
        self.misses: list[str] = []
        self.ca_file = workdir / "proxy-ca.pem"
        self._tls = _tls_context(self.ca_file, workdir)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def env(self) -> dict[str, str]:
        """The environment that sends a process's HTTPS through this proxy, trusting its CA."""
        proxy = f"http://127.0.0.1:{self._server.server_address[1]}"
        ca = str(self.ca_file)
        return {
            "HTTPS_PROXY": proxy,
            "https_proxy": proxy,
            "HTTP_PROXY": proxy,
            "http_proxy": proxy,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "REQUESTS_CA_BUNDLE": ca,
            "SSL_CERT_FILE": ca,
            "CURL_CA_BUNDLE": ca,
        }

    def __enter__(self) -> SchemaProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, url: str) -> bytes | None:
        body = self.documents.get(url.split("#")[0])
        if body is None:
            self.misses.append(url)
        return body


def _handler(proxy: SchemaProxy):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        tunnel_host = ""

        def do_CONNECT(self) -> None:  # noqa: N802 (http.server's naming)
            host = self.path.rsplit(":", 1)[0]
            self.send_response(200, "Connection established")
            self.end_headers()
            if host not in HOSTS:
                self.close_connection = True
                return
            conn = proxy._tls.wrap_socket(self.connection, server_side=True)
            self.connection, self.tunnel_host = conn, host
            self.rfile = conn.makefile("rb")
            self.wfile = socketserver._SocketWriter(conn)
            self.close_connection = False  # the tunnel carries on, even after an HTTP/1.0 CONNECT

        def do_GET(self) -> None:  # noqa: N802
            url = f"https://{self.tunnel_host}{self.path}" if self.tunnel_host else self.path
            body = proxy.answer(url)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args) -> None:
            pass

    return Handler


def _tls_context(ca_file: Path, workdir: Path) -> ssl.SSLContext:
    """A server context whose certificate (for HOSTS) is signed by a new CA written to `ca_file`."""
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "datalabs test schema proxy CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTS[0])])
    leaf = (
        _builder(leaf_name, ca_name, key.public_key(), now)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in HOSTS]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = workdir / "proxy-leaf.pem"
    chain.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    return context


def _builder(subject, issuer, public_key, now) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
