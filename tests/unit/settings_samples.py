"""Shared by the settings and check-config tests: sample secrets, a minimal account, config writers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "marginguard.example.toml"
DEMO = REPO / "config" / "demo.toml"

API_KEY = "k3yAbCdEfGhIjKlMnOpQ7wxyz"
SECRET = "s3cr3t-ZYXWVUTSRQPONM"
PASSPHRASE = "Passphrase-0451"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX"
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
HMAC_SECRET = "hmac-shared-secret-99"

BINANCE_ACCOUNT = """
[[accounts]]
id = "main"
exchange = "binanceusdm"
mode = "demo"
api_key = "key-0123456789"
secret = "secret-0123456789"
"""


def write(tmp_path: Path, text: str, name: str = "marginguard.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def check_config(
    config: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", "check-config", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        timeout=60,
    )
