"""The HTML page of an evaluation report: one self-contained file (plots and digit images are
embedded as data URIs, no scripts, no network) that opens offline in any browser. The markup is
well-formed XML, so tools and tests can parse it strictly."""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .files import atomic_write
from .plots import (
    confusion_figure,
    curves_figure,
    png_bytes,
    refusal_figure,
    reliability_figure,
    robustness_figure,
)

if TYPE_CHECKING:
    from .report import Report

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222;
       padding: 0 1em; }
h1, h2, h3 { font-weight: 600; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: 90%; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
code { background: #f4f4f4; padding: 0 .3em; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
.gallery { display: flex; flex-wrap: wrap; gap: .6em; }
.mistake { width: 9.5em; font-size: 80%; border: 1px solid #ddd; padding: .3em; }
.mistake img { width: 56px; height: 56px; image-rendering: pixelated; display: block; }
.headline { font-size: 130%; }
"""


def data_uri(png: bytes) -> str:
    """A PNG as a data: URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def digit_png(image: np.ndarray) -> bytes:
    """A 28x28 uint8 image as a PNG, dark ink on white like the page."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(255 - image).save(buffer, format="PNG")
    return buffer.getvalue()


def plot(fig, alt: str) -> str:
    """A figure embedded as an <img>."""
    return f'<figure><img src="{data_uri(png_bytes(fig))}" alt="{escape(alt)}"/></figure>'


def table(header: list[str], rows: list[list]) -> str:
    """An HTML table; cells are escaped text."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def percent(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def interval(section: dict) -> str:
    low, high = section["accuracy_ci95"]
    return f"{percent(section['accuracy'])} (95% CI {percent(low)}–{percent(high)})"


def comparison(report: dict) -> str:
    """Runs side by side: accuracy, size, speed and calibration; robustness; their ensemble."""
    runs = report["runs"]
    rows = [[r["name"], r["model"], interval(r), f"{r['size']['parameters']:,}",
             f"{r['size']['weights_bytes'] / 1e6:.2f} MB", f"{r['speed']['images_per_s']:,.0f}",
             f"{r['speed']['latency_ms']:.2f}", percent(r["calibration"]["before"]["ece"]),
             percent((r["calibration"]["after"] or {}).get("ece"))] for r in runs]
    header = ["run", "model", "accuracy", "parameters", "weights", "img/s (batched)",
              "latency (ms)", "ECE", "ECE (calibrated)"]
    names = list(runs[0]["robustness_summary"])
    robust = [[r["name"], *(percent(r["robustness_summary"][n], 1) for n in names)] for r in runs]
    parts = ["<h2>Comparison</h2>", table(header, rows),
             "<p>Robustness: mean accuracy over each perturbation's damaging levels.</p>",
             table(["run", *(n.replace("_", " ") for n in names)], robust)]
    if "ensemble" in report:
        e = report["ensemble"]
        parts.append(f"<p>Ensemble of all {e['members']} runs (mean probabilities, each run's "
                     "with its temperature where it has one): "
                     f"accuracy {escape(interval(e))}, ECE {percent(e['ece'])}.</p>")
    parts.append(plot(robustness_figure({r["name"]: r["robustness"] for r in runs}),
                      "robustness of every run"))
    parts.append(plot(reliability_figure({
        f"{r['name']} ({'temperature-scaled' if r['calibration']['after'] else 'no temperature'})":
        r["calibration"]["after"] or r["calibration"]["before"] for r in runs}),
        "reliability of every run"))
    return "\n".join(parts)


def calibration_html(calibration: dict) -> str:
    """Temperature, ECE and NLL before and after, and the reliability diagram."""
    if calibration["after"] is None:
        why = ("its validation images did not determine one (no mistakes among them), or the "
               "run predates temperature fitting" if calibration["held_out_images"] else
               "this run trained on every training image, so none were held out to fit one "
               "(train with <code>--val-size N</code> to hold some out)")
        note = (f"<p>No temperature: {why}. Test ECE "
                f"{percent(calibration['before']['ece'])}.</p>")
        curves = {"uncalibrated": calibration["before"]}
    else:
        note = (f"<p>Temperature {calibration['temperature']:.3f}, fitted on the "
                f"{escape(calibration['fitted_on'])}. Test ECE "
                f"{percent(calibration['before']['ece'])} → {percent(calibration['after']['ece'])}"
                f", test NLL {calibration['nll_before']:.4f} → {calibration['nll_after']:.4f}."
                "</p>")
        curves = {"uncalibrated": calibration["before"], "temperature-scaled": calibration["after"]}
    return note + plot(reliability_figure(curves), "reliability diagram")


def robustness_html(run: dict) -> str:
    """The sweep as a plot and a table with a row per perturbation."""
    rows = [[name.replace("_", " "), s["unit"],
             ", ".join(f"{level:g}: {percent(a, 1)}" for level, a in zip(s["levels"], s["accuracy"],
                                                                          strict=True))]
            for name, s in run["robustness"].items()]
    return (f"<p>On the first {run['robustness_images']} test images.</p>"
            + plot(robustness_figure({run["name"]: run["robustness"]}), "robustness sweep")
            + table(["perturbation", "unit", "accuracy by level"], rows))


def gallery(run: dict, images: np.ndarray) -> str:
    """The most confident mistakes, each with its image, labels and top-3."""
    cards = []
    for m in run["misclassified"]:
        top = "<br/>".join(f"{escape(t['class'])}: {percent(t['probability'], 1)}"
                           for t in m["top"])
        cards.append(f'<div class="mistake"><img src="{data_uri(digit_png(images[m["index"]]))}" '
                     f'alt="test image {m["index"]}"/>#{m["index"]} true <b>{escape(m["label"])}'
                     f'</b> predicted <b>{escape(m["prediction"])}</b><br/>{top}</div>')
    return f'<div class="gallery">{"".join(cards)}</div>'


def run_html(run: dict, classes: list[str], images: np.ndarray, wrong_total: int) -> str:
    """One run's section."""
    per_class = [[c["class"], f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}",
                  c["support"]] for c in run["per_class"]]
    parts = [
        f"<h2>{escape(run['name'])} <small>({escape(run['model'])})</small></h2>",
        f'<p class="headline">Accuracy {escape(interval(run))} — {wrong_total} of '
        f"{sum(c['support'] for c in run['per_class'])} test images wrong.</p>",
        f"<p>Run <code>{escape(run['run'])}</code>: trained on {escape(run['trained_on'])} "
        f"({run['train_images']} images, {run['epochs']} epochs, {run['train_seconds']} s) with "
        f"<code>{escape(run['command'] or '')}</code>. {run['size']['parameters']:,} parameters, "
        f"{run['speed']['images_per_s']:,.0f} images/s at batch {run['speed']['batch']} and "
        f"{run['speed']['latency_ms']:.2f} ms per single image (PyTorch, "
        f"{run['speed']['threads']} CPU threads).</p>",
        "<h3>Per class</h3>", table(["class", "precision", "recall", "F1", "support"], per_class),
        plot(confusion_figure(run["confusion_matrix"], classes), "confusion matrix"),
        "<h3>Training curves</h3>",
        plot(curves_figure(run["curves"]), "training curves") if run["curves"]
        else "<p>No metrics.jsonl in the run directory.</p>",
        sources_html(run, classes),
        "<h3>Calibration</h3>", calibration_html(run["calibration"]),
        "<h3>Robustness</h3>", robustness_html(run),
        f"<h3>Misclassified (most confident first, {len(run['misclassified'])} of "
        f"{wrong_total})</h3>", gallery(run, images),
    ]
    return "\n".join(parts)


def sources_html(run: dict, classes: list[str]) -> str:
    """Accuracy per source: the held-out part of each training source (from the card) and
    each image folder evaluated with the report, with its confusion matrix."""
    parts = []
    if run.get("held_out"):
        parts += ["<h3>Held-out part of each training source</h3>",
                  table(["source", "images", "accuracy"],
                        [[name, v["images"], percent(v["accuracy"])]
                         for name, v in run["held_out"].items()])]
    if run.get("sources"):
        parts += ["<h3>Image folders</h3>", table(
            ["source", "images", "accuracy", "note"],
            [[s["name"], s["images"], interval(s),
              "trained on: not held out" if "trained_on" in s else ""] for s in run["sources"]])]
        parts += [plot(confusion_figure(s["confusion_matrix"], classes),
                       f"confusion matrix on {s['name']}") for s in run["sources"]]
    return "\n".join(parts)


def rejection_html(rejection: dict) -> str:
    """The verifier's refusals: both rates at its threshold, the curve and a few thresholds."""
    rows = [[f"{c['threshold']:.3f}", percent(c["digits_refused"]), percent(c["others_refused"])]
            for c in rejection["curve"][::4]]
    return "\n".join([
        "<h2>Refusing non-digits</h2>",
        f"<p>Verifier <code>{escape(rejection['verifier'])}</code>, threshold "
        f"{rejection['threshold']:.3f} (chosen on held-out training digits): it refuses "
        f"{percent(rejection['digits_refused'])} of the {rejection['digits']} test digits and "
        f"{percent(rejection['others_refused'])} of {rejection['others']} non-digits: letters "
        "and signs printed in fonts it never learnt from, and new drawings of the shapes and "
        "scribbles it learnt.</p>",
        plot(refusal_figure(rejection["curve"], rejection["threshold"]), "refusal curve"),
        table(["threshold", "digits refused", "non-digits refused"], rows)])


def render(report: dict, images: np.ndarray) -> str:
    """The whole page."""
    runs = report["runs"]
    title = (f"digitrec report: {runs[0]['name']}" if len(runs) == 1
             else f"digitrec report: {len(runs)} runs compared")
    body = [f"<h1>{escape(title)}</h1>",
            f"<p>Test set: {escape(report['dataset'])} ({report['test_images']} images). "
            f"Created {escape(report['created'])} by digitrec {escape(report['digitrec_version'])}"
            ". Every number is also in <code>report.json</code>.</p>"]
    if len(runs) > 1:
        body.append(comparison(report))
    for run in runs:
        wrong = sum(sum(row) - row[i] for i, row in enumerate(run["confusion_matrix"]))
        body.append(run_html(run, report["classes"], images, wrong))
    if "rejection" in report:
        body.append(rejection_html(report["rejection"]))
    content = "\n".join(body)
    return ('<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head>'
            f'<meta charset="utf-8"/><title>{escape(title)}</title><style>{STYLE}</style>'
            f"</head><body>\n{content}\n</body></html>\n")


def write_html(path: Path, report: Report, images: np.ndarray) -> None:
    """Render the report and write it atomically."""
    with atomic_write(path, "w") as f:
        f.write(render(report, images))
