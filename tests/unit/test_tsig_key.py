"""TSIG key files: loaded with clear errors, and the secret never shows in a repr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twinsite.errors import ConfigError
from twinsite.redirect.dns import TsigKey


def test_key_repr_hides_the_secret(tmp_path: Path) -> None:
    f = tmp_path / "k.json"
    f.write_text(json.dumps({"name": "k1", "algorithm": "hmac-sha256", "secret": "c2VjcmV0c2VjcmV0"}))
    key = TsigKey.load(f)
    assert key.secret == "c2VjcmV0c2VjcmV0"
    assert "c2VjcmV0" not in repr(key)
    assert "hidden" in repr(key)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "not found"),
        ("{not json", "not a TSIG key file"),
        (json.dumps({"name": "k1"}), "not a TSIG key file"),
        (json.dumps({"name": "k1", "algorithm": "md5", "secret": "eA=="}), "unsupported TSIG algorithm 'md5'"),
    ],
)
def test_bad_key_files_say_what_and_where(tmp_path: Path, content: str | None, fragment: str) -> None:
    f = tmp_path / "k.json"
    if content is not None:
        f.write_text(content)
    with pytest.raises(ConfigError) as err:
        TsigKey.load(f)
    assert fragment in err.value.message
    assert err.value.where == str(f)
