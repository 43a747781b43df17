"""A Docker token-auth server for tests: the bearer flow of Docker Hub, GHCR or Harbor, on 127.0.0.1.

The registry answers 401 with `Www-Authenticate: Bearer realm=…,service=…,scope=…`; the client
gets a JWT for that scope from this server (anonymously, or with HTTP basic credentials) and
retries. Tokens are RS256 JWTs signed by `openssl` (ca-certificates depends on it) with a
self-signed certificate the registry trusts (`rootcertbundle`), carried in the `x5c` header.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

SERVICE = "hpsforge-test-registry"
ISSUER = "hpsforge-test-token-server"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    realm: str
    certificate: Path
    key: Path
    users: dict[str, str]  # username → password; they get every action they ask for
    anonymous_actions: tuple[str, ...] = ("pull",)
    issued: list[tuple[str, str]] = field(default_factory=list)  # (user or "", scope) per token

    def registry_auth(self) -> dict:
        """The `auth:` section of a registry configuration trusting this server."""
        return {
            "token": {
                "realm": self.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(self.certificate),
            }
        }

    def token(self, user: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":", 2) if scope.count(":") >= 2 else (scope, "", "")
            wanted = [action for action in actions.split(",") if action]
            granted = wanted if user else [action for action in wanted if action in self.anonymous_actions]
            access.append({"type": kind, "name": name, "actions": granted})
            self.issued.append((user, scope))
        now = int(time.time())
        der = subprocess.run(
            ["openssl", "x509", "-in", str(self.certificate), "-outform", "DER"], capture_output=True, check=True
        ).stdout
        header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(der).decode()]}
        claims = {
            "iss": ISSUER,
            "sub": user,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            capture_output=True,
            check=True,
        ).stdout
        return f"{signing_input}.{_b64url(signature)}"


@contextlib.contextmanager
def token_server(root: Path, users: dict[str, str]) -> Iterator[TokenServer]:
    root.mkdir(parents=True, exist_ok=True)
    key, certificate = root / "token.key", root / "token.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=hpsforge test token server",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        capture_output=True,
        check=True,
    )
    holder: dict[str, TokenServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # http.server's naming
            query = parse_qs(urlsplit(self.path).query)
            user = ""
            if (authorization := self.headers.get("Authorization", "")).startswith("Basic "):
                name, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
                if holder["server"].users.get(name) != password:
                    self.send_response(401)
                    self.end_headers()
                    return
                user = name
            body = json.dumps({"token": holder["server"].token(user, query.get("scope", []))}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["server"] = TokenServer(f"http://127.0.0.1:{httpd.server_address[1]}/token", certificate, key, users)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["server"]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
