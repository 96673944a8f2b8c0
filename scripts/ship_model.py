"""Make a trained run the shipped model: `python scripts/ship_model.py RUN_DIR`.

Writes `src/digitrec/assets/digits-accurate/` (the run's card and weights: a run directory,
so `digitrec train --init shipped` can fine-tune it) and `digits-accurate.onnx` exported from
it (checked against PyTorch). Each training source in the card is named with where it comes
from and on what terms, as the data's own documentation states them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from digitrec.checkpoint import CARD, WEIGHTS, read_card, write_json
from digitrec.export import export_run
from digitrec.predict import DEFAULT_MODEL, SHIPPED_RUN

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
}


def main(run_dir: str) -> None:
    card = read_card(run_dir)
    for source in card["data"]["sources"]:
        if source["name"] not in TERMS:
            sys.exit(f"no terms known for training source {source['name']!r}: add them to TERMS")
        source["terms"] = TERMS[source["name"]]
        source.pop("path", None)  # where it lay on the training machine means nothing to users
    target = ASSETS / SHIPPED_RUN
    target.mkdir(exist_ok=True)
    shutil.copyfile(Path(run_dir) / WEIGHTS, target / WEIGHTS)
    write_json(target / CARD, card)
    export_run(target, ASSETS / DEFAULT_MODEL)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.splitlines()[0])
    main(sys.argv[1])
