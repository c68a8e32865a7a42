"""Create the compose deployment's secret files that do not exist yet: `make compose-secrets`.

    python3 compose/make_secrets.py [--directory compose/secrets]

Needs only Python 3 and `openssl` (OpenSSL 1.1.1 or later, for the Ed25519 key). An existing
file is never changed, so a key or password an operator put there stays; to replace a
generated value, delete its file (and the files made from it, below) and run this again.

- jwt_signing_key.pem: Ed25519 private key (PEM) that signs access tokens (auth); openssl
- rabbitmq_password: password of the RabbitMQ user `taskmesh` (services, management UI)
- rabbitmq_definitions.json: that user, its permissions on vhost `/`, its password's hash
  (RabbitMQ imports it at boot); from rabbitmq_password
- amqp_url: `amqp://taskmesh:<password>@rabbitmq:5672/` (every service, the gateway); from
  rabbitmq_password
- smtp_url: `smtp://mailpit:1025`, the mail catcher; write a real relay's URL there instead
- grafana_admin_password: the password of Grafana's `admin`

The directory is made readable by its owner only (0700). The files in it are 0644: Docker
compose mounts them into the containers as they are, where processes running as other users
(10001 for taskmesh, 999 for RabbitMQ, 472 for Grafana) must read them; the directory keeps
the host's other users out.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

DEFAULT_DIRECTORY = Path(__file__).resolve().parent / "secrets"
RABBITMQ_USER = "taskmesh"
RABBITMQ_HOST = "rabbitmq:5672"
MAILPIT_URL = "smtp://mailpit:1025"
FILE_MODE = 0o644
DIRECTORY_MODE = 0o700


def rabbitmq_password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's `rabbit_password_hashing_sha256` hash: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4) if salt is None else salt
    digest = hashlib.sha256(salt + password.encode()).digest()
    return base64.b64encode(salt + digest).decode()


def rabbitmq_definitions(password: str) -> str:
    """Definitions RabbitMQ imports at boot: the `taskmesh` user with all rights on vhost `/`."""
    definitions = {
        "users": [
            {
                "name": RABBITMQ_USER,
                "password_hash": rabbitmq_password_hash(password),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                # Logs in to the management UI, sees the objects of its vhost.
                "tags": ["management"],
            }
        ],
        "vhosts": [{"name": "/"}],
        "permissions": [
            {
                "user": RABBITMQ_USER,
                "vhost": "/",
                "configure": ".*",
                "write": ".*",
                "read": ".*",
            }
        ],
    }
    return json.dumps(definitions, indent=2) + "\n"


def amqp_url(password: str) -> str:
    """The URL the services connect to RabbitMQ with."""
    return f"amqp://{RABBITMQ_USER}:{quote(password, safe='')}@{RABBITMQ_HOST}/\n"


def ed25519_private_key() -> str:
    """A new Ed25519 private key, PEM (PKCS #8), from openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SystemExit("make_secrets: openssl is needed for the JWT signing key; install it")
    done = subprocess.run(  # noqa: S603 - a fixed command, no input from outside
        [openssl, "genpkey", "-algorithm", "ed25519"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or "PRIVATE KEY" not in done.stdout:
        raise SystemExit(f"make_secrets: openssl could not make an Ed25519 key: {done.stderr}")
    return done.stdout


def _write_new(path: Path, text: str) -> bool:
    """Write `text` to a file that does not exist yet; False (and no change) if it does."""
    try:
        with path.open("x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError:
        return False
    path.chmod(FILE_MODE)
    return True


def make_secrets(directory: Path) -> list[str]:
    """Create every missing secret file in `directory`; return the names of those created."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(DIRECTORY_MODE)
    created = []
    password_file = directory / "rabbitmq_password"
    if _write_new(password_file, secrets.token_urlsafe(32) + "\n"):
        created.append(password_file.name)
    password = password_file.read_text(encoding="utf-8").strip()
    if not password:
        raise SystemExit(f"make_secrets: {password_file} is empty")
    makers = {
        "jwt_signing_key.pem": ed25519_private_key,
        "rabbitmq_definitions.json": lambda: rabbitmq_definitions(password),
        "amqp_url": lambda: amqp_url(password),
        "smtp_url": lambda: MAILPIT_URL + "\n",
        "grafana_admin_password": lambda: secrets.token_urlsafe(24) + "\n",
    }
    for name, make in makers.items():
        if not (directory / name).exists() and _write_new(directory / name, make()):
            created.append(name)
    return created


def main(argv: list[str] | None = None) -> int:
    """Create the missing files and say which."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", type=Path, default=DEFAULT_DIRECTORY)
    args = parser.parse_args(argv)
    created = make_secrets(args.directory)
    where = os.path.relpath(args.directory)
    message = f"created {', '.join(created)}" if created else "all present"
    sys.stdout.write(f"{where}: {message}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
