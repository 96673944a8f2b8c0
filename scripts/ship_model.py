"""Make a trained run the shipped model, or a trained reader the shipped number reader.

    python scripts/ship_model.py RUN_DIR
    python scripts/ship_model.py --reader READER.onnx

The first writes `src/digitrec/assets/digits-accurate/` (the run's card and weights: a run
directory, so `digitrec train --init shipped` can fine-tune it) and `digits-accurate.onnx`
exported from it (checked against PyTorch); the second `number-reader.onnx`. Each training
source in the card is named with where it comes from and on what terms, as the data's own
documentation states them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from digitrec.checkpoint import CARD, WEIGHTS, read_card
from digitrec.export import export_run, with_metadata
from digitrec.files import write_bytes, write_json
from digitrec.predict import DEFAULT_MODEL, DEFAULT_READER, SHIPPED_RUN
from digitrec.reader import NumberReader

ASSETS = Path(__file__).resolve().parent.parent / "src" / "digitrec" / "assets"
TERMS = {
    "mnist": "MNIST (LeCun, Cortes, Burges), from its public mirrors; Creative Commons "
             "Attribution-Share Alike 3.0",
    "usps-train": "USPS handwritten digits (Hull 1994), training split, via the common usps.h5 "
                  "copy; free for research",
    "cvl-digits-train": "CVL Single Digit set (ICDAR 2013 Handwritten Digit Recognition "
                        "competition, TU Vienna), training split; freely available for research",
    "cvl-digits-valid": "CVL Single Digit set (ICDAR 2013 Handwritten Digit Recognition "
                        "competition, TU Vienna), validation split; freely available for research",
    "ardis-iv-train": "ARDIS dataset IV (Kusetogullari et al. 2019), Swedish church records "
                      "1895-1970, training split; public for research",
    "orand-car-a": "ORAND-CAR-A courtesy amounts of Chilean bank cheques (ORAND-CAR-2014, "
                   "Diaz-Chito et al.), 500 re-annotated by github Fzkuji/Labeled_ORAND-CAR-A "
                   "(MIT)",
    "danish-rows": "row numbers of Danish parish registers, 1920s-50s, validation split of "
                   "coastalcph/mgr-birthdates (Cabello Piqueras et al., ICFHR 2022)",
}


def with_terms(sources: list[dict]) -> None:
    """Name each source's terms; drop where it lay on the training machine."""
    for source in sources:
        if source["name"] not in TERMS:
            sys.exit(f"no terms known for training source {source['name']!r}: add them to TERMS")
        source["terms"] = TERMS[source["name"]]
        source.pop("path", None)


def main(run_dir: str) -> None:
    card = read_card(run_dir)
    with_terms(card["data"]["sources"])
    target = ASSETS / SHIPPED_RUN
    target.mkdir(exist_ok=True)
    shutil.copyfile(Path(run_dir) / WEIGHTS, target / WEIGHTS)
    write_json(target / CARD, card)
    export_run(target, ASSETS / DEFAULT_MODEL)


def ship_reader(path: str) -> None:
    reader = NumberReader(path)
    card = reader.card
    with_terms(card["sources"])
    with_terms(card["digit_sources"])
    write_bytes(ASSETS / DEFAULT_READER,
                with_metadata(Path(path).read_bytes(), {"card": card}))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--reader":
        ship_reader(sys.argv[2])
    elif len(sys.argv) == 2:
        main(sys.argv[1])
    else:
        sys.exit(__doc__.splitlines()[0])
