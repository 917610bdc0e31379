"""Without its embedding model the service refuses to start, unless development allows it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from techbridge_matching.config import Settings
from techbridge_matching.main import build_spec, load_embedder
from techbridge_shared.settings import ConfigurationError


def test_missing_model_stops_start_up_with_one_line(tmp_path):
    settings = Settings(embedding_model_path=str(tmp_path / "absent.onnx"), data_dir=str(tmp_path))
    with pytest.raises(ConfigurationError, match="embedding model file not found.*ALLOW_LEXICAL_ONLY"):
        build_spec(settings)


def test_broken_model_file_stops_start_up(tmp_path):
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not an onnx graph")
    with pytest.raises(ConfigurationError, match="cannot be loaded"):
        load_embedder(Settings(embedding_model_path=str(broken), data_dir=str(tmp_path)))


def test_lexical_only_is_a_development_choice(tmp_path):
    settings = Settings(embedding_model_path=str(tmp_path / "absent.onnx"), allow_lexical_only=True, data_dir=str(tmp_path))
    assert build_spec(settings).name == "matching"
    assert load_embedder(settings) is None
    with pytest.raises(ValidationError, match="not allowed in production"):
        Settings(environment="production", allow_lexical_only=True, internal_auth_secret="real-secret")
