"""The model card: one definition, checked when read, earlier versions brought up to date."""

import copy
import json
from importlib.resources import files
from pathlib import Path

import pytest

from digitrec.card import CARD_VERSION, METADATA_VERSION, card_temperature, parse_card
from digitrec.checkpoint import read_card
from digitrec.errors import ModelError, RunDirError
from digitrec.predict import OnnxBackend

ASSETS = files("digitrec") / "assets"


def shipped_card() -> dict:
    return json.loads((ASSETS / "digits-accurate" / "card.json").read_text())


def test_a_card_without_a_version_reads_as_the_current_one():
    old = shipped_card()
    old.pop("version", None)
    del old["model_kwargs"], old["config"], old["data"]["sources"]
    card = parse_card(old, "old", RunDirError)
    assert card["version"] == CARD_VERSION
    assert card["model_kwargs"] == {} and card["config"] == {} and card["data"]["sources"] == []
    assert card["metrics"] == old["metrics"] and card["model"] == old["model"]


@pytest.mark.parametrize("broken", [
    "not an object",
    {"model": "fast"},
    {"model": "fast", "data": {"dataset": "mnist"}, "metrics": {}},
    {"model": 3, "data": {"dataset": "mnist"}, "metrics": {"test_accuracy": 0.9}},
])
def test_a_card_without_what_readers_rely_on_is_refused(broken):
    with pytest.raises(RunDirError, match="broken"):
        parse_card(broken, "broken", RunDirError)


def test_a_card_from_a_newer_digitrec_is_refused_with_a_clear_error(tmp_path: Path):
    newer = {**shipped_card(), "version": CARD_VERSION + 1}
    (tmp_path / "card.json").write_text(json.dumps(newer))
    with pytest.raises(RunDirError, match="newer digitrec"):
        read_card(tmp_path)


def test_the_shipped_models_read_as_current_cards():
    backend = OnnxBackend.load(ASSETS / "digits-accurate.onnx")
    assert backend.card["version"] == CARD_VERSION
    assert backend.card["model"] == read_card(ASSETS / "digits-accurate")["model"]
    assert backend.temperature == card_temperature(backend.card) != 1.0


def test_onnx_metadata_of_a_newer_version_is_refused():
    pytest.importorskip("onnx")
    from digitrec.export import with_metadata

    model = (ASSETS / "digits-accurate.onnx").read_bytes()
    newer = with_metadata(model, {"metadata_version": METADATA_VERSION + 1})
    with pytest.raises(ModelError, match="newer than this digitrec reads"):
        OnnxBackend.from_bytes(newer)


def test_temperature_is_one_without_a_fitted_one():
    card = parse_card(shipped_card(), "shipped", RunDirError)
    assert card_temperature(card) == card["calibration"]["temperature"]
    uncalibrated = copy.deepcopy(card)
    del uncalibrated["calibration"]
    assert card_temperature(uncalibrated) == card_temperature(None) == 1.0
    uncalibrated["calibration"] = {"temperature": -1}
    assert card_temperature(uncalibrated) == 1.0


def test_a_trained_run_writes_a_card_of_the_current_version(trained_run):
    run, card = trained_run
    assert card["version"] == CARD_VERSION
    assert read_card(run) == card
