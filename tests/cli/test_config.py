"""RunConfig: JSON round trip, checks, refusal of anything that is not a run config."""

from __future__ import annotations

import json

import pytest

from rnnkit.cli.config import RunConfig, file_digest


def test_round_trip_through_json(tmp_path):
    config = RunConfig(task="classify", csv="/data/x.csv", target="label", features=["a", "b"],
                       units=7, layers=2, bidirectional=True, dropout=0.25, epochs=3, lr=0.01,
                       seed=11, data_digests={"/data/x.csv": "ab" * 32})
    path = tmp_path / "run.json"
    path.write_text(json.dumps(config.to_dict()))
    assert RunConfig.load(path) == config


def test_to_dict_marks_format_and_version():
    data = RunConfig().to_dict()
    assert data["format"] == "rnnkit-run" and data["version"] == 1
    assert isinstance(data["rnnkit"], str)


@pytest.mark.parametrize("changes, message", [
    ({"task": "regress"}, "'task' must be one of forecast, classify, text"),
    ({"cell": "transformer"}, "'cell' must be one of rnn, gru, lstm"),
    ({"units": 0}, "'units' must be >= 1"),
    ({"epochs": 2.5}, "'epochs' must be an integer"),
    ({"dropout": 1.0}, r"'dropout' must be in \[0, 1\)"),
    ({"lr": 0.0}, "'lr' must be > 0"),
    ({"device": "tpu"}, "'device' must be cpu or cuda"),
    ({"window": 0}, "'window' must be >= 1"),
])
def test_invalid_values(changes, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**changes)


@pytest.mark.parametrize("data, message", [
    ([], "not an rnnkit run configuration"),
    ({"task": "forecast"}, "not an rnnkit run configuration"),
    ({"format": "rnnkit-run", "version": 99}, "version 99"),
    ({"format": "rnnkit-run", "version": 1, "__import__": "os"}, "unknown fields: __import__"),
])
def test_from_dict_refuses(data, message):
    with pytest.raises(ValueError, match=message):
        RunConfig.from_dict(data)


def test_load_refuses_invalid_json(tmp_path):
    path = tmp_path / "run.json"
    path.write_text("task = 'forecast'")  # Python, not JSON: never executed
    with pytest.raises(ValueError, match="not valid JSON"):
        RunConfig.load(path)


def test_file_digest_is_sha256(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert file_digest(path) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
