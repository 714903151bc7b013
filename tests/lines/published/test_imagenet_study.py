"""A study on tiny fixture folders in the real ImageNet layouts, placed among the published zoos.

The folders are laid out exactly as the releases are (ImageNet val in wnid folders with
``ILSVRC2012_val_*.JPEG`` files, ImageNetV2's class-index folders, ImageNet-R's 200 wnid
folders, ImageNet-Sketch's ``sketch/<wnid>/``, ImageNet-C's ``<corruption>/<severity>/<wnid>/``,
cue-conflict's ``<category>/<shape><i>-<texture><j>.png``), a handful of images each. The model
is timm's ``test_resnet`` with random weights and the 1000 ImageNet wnids as classes. Each image
is one flat colour, so every decoder, resize and crop gives the model the same pixels; the
folder an image goes in is chosen from the model's own prediction for its colour, so that the
model is right on some images and wrong on others of every dataset (accuracies strictly between
0 and 1: points on the testbed's logit axes). ImageNet-R's 200-class mask and any class space
of the other folders give the same answers, since every label and every prediction used is one
of ImageNet-R's classes.

The study (``published: [testbed, bvg, robustbench]``) must put the model on every published
plot and name what it lacks (ObjectNet, Stylized-ImageNet, ...); the report must render in
headless Chromium with the published points and the user's model in the page.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from robustlens.config import parse_config
from robustlens.data.imagenet_info import imagenet_r_indices, imagenet_wnids
from robustlens.lines.published.analysis import bias_points, natural_shifts, robust_points
from robustlens.lines.published.section import (
    render_biases,
    render_natural_shifts,
    render_robustbench,
)
from robustlens.metrics.effective_robustness import effective_robustness
from robustlens.models.sources import load_model
from robustlens.published import load_published
from robustlens.report import write_report
from robustlens.report.browser import dump_dom, find_chromium, screenshot
from robustlens.report.context import ReportContext
from robustlens.report.page import build_report_context
from robustlens.study import run_study

timm = pytest.importorskip("timm")
pytest.importorskip("torchattacks")

WNIDS = imagenet_wnids()
R_CLASSES = imagenet_r_indices()
MODEL = "my-resnet"
SIZE = 64
#: images right / wrong per dataset: a different accuracy on each
PLAN = {
    "val": (3, 1),
    "v2": (2, 2),
    "sketch": (1, 3),
    "r": (2, 2),
    "fog/1": (2, 2),
    "fog/3": (1, 3),
}
#: a few of cue-conflict's 16 categories and their ImageNet indices (Geirhos et al.)
CUE_CATEGORIES = {
    "airplane": [404],
    "bear": [294, 295, 296, 297],
    "cat": [281, 282, 283, 284, 285],
}


# --------------------------------------------------------------------------------- fixtures
def _jpeg(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), colour).save(path, format="JPEG", quality=95)
    return path


def _png(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), colour).save(path, format="PNG")
    return path


def _decoded(colour: tuple[int, int, int], tmp: Path) -> np.ndarray:
    """The flat colour a JPEG of ``colour`` decodes to (JPEG may move it by a level)."""
    pixels = np.asarray(Image.open(_jpeg(tmp / "probe.JPEG", colour)).convert("RGB"))
    assert (pixels == pixels[0, 0]).all()  # still one flat colour
    return pixels[0, 0]


class _Colours:
    """Flat colours with the model's answers: 1000-way, on ImageNet-R's 200 classes, and on
    the cue-conflict categories."""

    def __init__(self, model, tmp: Path) -> None:
        rng = np.random.default_rng(0)
        pool = [tuple(int(v) for v in c) for c in rng.integers(0, 256, (160, 3))]
        seen = np.stack([_decoded(c, tmp) for c in pool]).astype(np.float32) / 255
        x = torch.from_numpy(seen)[:, :, None, None].expand(-1, -1, SIZE, SIZE).contiguous()
        with torch.no_grad():
            logits = model(x).double()
        top2 = logits.topk(2, dim=1).values
        clear = (top2[:, 0] - top2[:, 1] > 1e-3).numpy()  # no near-ties: stable under resizing
        pred = logits.argmax(1).numpy()
        in_r = np.isin(pred, R_CLASSES)
        # smallest margins first: AutoAttack fools these within its first attack (a robust
        # image costs Square's 5000 queries)
        margin = (top2[:, 0] - top2[:, 1]).numpy()
        keep = np.flatnonzero(clear & in_r)
        self.right = [(pool[i], int(pred[i])) for i in keep[np.argsort(margin[keep])]]
        # "wrong" colours get an R label that is neither prediction (1000-way nor masked)
        r_pred = np.asarray(R_CLASSES)[logits[:, R_CLASSES].argmax(1).numpy()]
        self.wrong = []
        for i in np.flatnonzero(clear):
            label = next(c for c in R_CLASSES if c not in (pred[i], r_pred[i]))
            self.wrong.append((pool[i], int(label)))
        probs = logits.softmax(1)
        names = list(CUE_CATEGORIES)
        cat = torch.stack([probs[:, CUE_CATEGORIES[n]].mean(1) for n in names], 1)
        self.category = [(pool[i], names[int(k)]) for i, k in enumerate(cat.argmax(1))]
        assert len(self.right) >= 3 and len(self.wrong) >= 6

    def take(self, n_right: int, n_wrong: int, offset: int) -> list[tuple[tuple, int, bool]]:
        r = [(c, y, True) for c, y in self.right[offset : offset + n_right]]
        w = [(c, y, False) for c, y in self.wrong[offset : offset + n_wrong]]
        if len(r) < n_right:  # few right colours: reuse them (other file names)
            r = [(c, y, True) for c, y in (self.right * 4)[offset : offset + n_right]]
        return r + w


def _build_folders(root: Path, colours: _Colours) -> dict[str, int]:
    """Every layout's folder; returns the number of images the model gets right in each."""
    right: dict[str, int] = {}
    n = 0
    for key, (n_right, n_wrong) in PLAN.items():
        images = colours.take(n_right, n_wrong, offset=len(right))
        right[key] = n_right
        for colour, label, _ in images:
            n += 1
            wnid = WNIDS[label]
            if key == "val":
                path = root / "val" / wnid / f"ILSVRC2012_val_{n:08d}.JPEG"
            elif key == "v2":
                path = (
                    root / "imagenetv2-matched-frequency-format-val" / str(label) / f"{n:040x}.jpeg"
                )
            elif key == "sketch":
                path = root / "imagenet-sketch" / "sketch" / wnid / f"{wnid}_{n}.JPEG"
            elif key == "r":
                path = root / "imagenet-r" / wnid / f"art_{n}.jpg"
            else:
                corruption, severity = key.split("/")
                path = (
                    root
                    / "imagenet-c"
                    / corruption
                    / severity
                    / wnid
                    / (f"ILSVRC2012_val_{n:08d}.JPEG")
                )
            _jpeg(path, colour)
    # cue-conflict: a shape decision and a texture decision per category the model picks
    names = list(CUE_CATEGORIES)
    for i, (colour, picked) in enumerate(colours.category[:6]):
        other = names[(names.index(picked) + 1) % len(names)]
        shape, texture = (picked, other) if i % 3 else (other, picked)
        _png(root / "cue-conflict" / shape / f"{shape}{i + 1}-{texture}{i + 1}.png", colour)
    (root / "cue_conflict_categories.json").write_text(json.dumps(CUE_CATEGORIES))
    return right


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The study's result, its config and the report's path."""
    root = tmp_path_factory.mktemp("imagenet-layouts")
    torch.manual_seed(0)
    net = timm.create_model("test_resnet", pretrained=False, num_classes=1000)
    torch.save(net.state_dict(), root / "test_resnet.pt")
    entry = {
        "source": "timm",
        "arch": "test_resnet",
        "weights": str(root / "test_resnet.pt"),
        "name": MODEL,
        "input_size": SIZE,
    }
    model = load_model(entry)
    assert model.classes == WNIDS
    right = _build_folders(root / "data", _Colours(model, root))
    data = root / "data"
    cfg = parse_config(
        {
            "name": "imagenet-layouts",
            "store": str(root / "store"),
            "output": str(root / "out"),
            "models": [entry],
            "datasets": [
                {"layout": "imagenet_val", "root": str(data / "val"), "size": SIZE},
                {
                    "layout": "imagenet_v2",
                    "root": str(data / "imagenetv2-matched-frequency-format-val"),
                    "size": SIZE,
                },
                {"layout": "imagenet_sketch", "root": str(data / "imagenet-sketch"), "size": SIZE},
                {"layout": "imagenet_r", "root": str(data / "imagenet-r"), "size": SIZE},
                {"layout": "imagenet_c", "root": str(data / "imagenet-c"), "size": SIZE},
                {
                    "layout": "cue_conflict",
                    "root": str(data / "cue-conflict"),
                    "mapping_file": str(data / "cue_conflict_categories.json"),
                    "size": SIZE,
                },
                {
                    "layout": "imagenet_val",
                    "root": str(data / "val"),
                    "name": "imagenet_val_attacked",
                    "role": "adversarial",
                    "size": SIZE,
                },
            ],
            "measures": ["accuracy", "robustness", "biases"],
            "measure_options": {
                "biases": {
                    "parts": ["shape", "spectral", "pgd"],
                    "cutoffs": [0.1, 0.2, 0.3, 0.4, 0.5],
                    "attack": ["pgd", "autoattack"],
                }
            },
            "published": ["testbed", "bvg", "robustbench"],
            "engine": {"batch_size": 16, "num_workers": 0, "device": "cpu"},
        }
    )
    result = run_study(cfg)
    report = write_report(result, strict=True)
    return {"result": result, "cfg": cfg, "report": report, "right": right}


def _context(study) -> ReportContext:
    return build_report_context(study["result"])


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


# ------------------------------------------------------------------------------------ tests
def test_the_fixture_study_measures_what_the_plots_need(study):
    df = study["result"].results()
    acc = df[(df["measure"] == "accuracy") & (df["name"] == "accuracy")].set_index("dataset")
    expected = {
        "imagenet_val": 3 / 4,
        "imagenet_v2": 2 / 4,
        "imagenet_sketch": 1 / 4,
        "imagenet_r": 2 / 4,
        "imagenet_c/fog/1": 2 / 4,
        "imagenet_c/fog/3": 1 / 4,
    }
    for dataset, value in expected.items():
        assert acc.loc[dataset, "value"] == pytest.approx(value), dataset
    names = set(df["name"])
    assert {"acc_id", "acc_ood", "shape_bias", "low_freq_bias", "pgd_accuracy"} <= names
    assert "autoattack_accuracy" in names


def test_the_model_is_placed_on_every_natural_shift_with_er_and_ranks(study):
    ctx = _context(study)
    testbed = load_published("testbed")
    shifts = {r.shift: r for r in natural_shifts(ctx, testbed)}
    for shift, ood in (("imagenet_v2", 0.5), ("imagenet_sketch", 0.25), ("imagenet_r", 0.5)):
        res = shifts[shift]
        user = res.user.set_index("model").loc[MODEL]
        assert user["acc_ood"] == pytest.approx(ood)
        # val on R's classes: all val labels are R classes, the 200-class mask answers alike
        assert user["acc_id"] == pytest.approx(0.75)
        er = effective_robustness(np.array([0.75]), np.array([ood]), res.baseline)
        assert np.isfinite(user["er"]) and user["er"] == pytest.approx(float(np.ravel(er)[0]))
        shown = res.published[res.published["shown"]]
        assert user["rank"] == f"{int((shown['er'] > user['er']).sum()) + 1} / {len(shown) + 1}"
        for t in shown["type"].dropna().unique():  # a rank among the published of each type
            er_t = shown.loc[shown["type"] == t, "er"]
            rank = f"{int((er_t > user['er']).sum()) + 1} / {len(er_t) + 1}"
            assert user[f"rank:{t}"] == rank, (shift, t)
    assert shifts["objectnet"].user.empty
    assert any("no objectnet dataset" in n for n in shifts["objectnet"].notes)


def test_the_model_is_on_the_bias_scatter_and_in_the_correlations(study):
    ctx = _context(study)
    bp = bias_points(ctx, load_published("bvg"))
    assert list(bp.user.index) == [MODEL]
    user = bp.user.loc[MODEL]
    for column in ("shape_bias", "low_freq_bias", "high_freq_bias", "spectral_bias"):
        assert np.isfinite(user[column]), column
    for dim in ("in_distribution", "robustness", "concepts", "adversarial"):
        assert np.isfinite(user[dim]), dim
    assert user["in_distribution"] == pytest.approx((0.75 + 0.5) / 2)  # val and V2
    assert user["concepts"] == pytest.approx((0.25 + 0.5) / 2)  # Sketch and R
    assert user["adversarial"] == pytest.approx(0.75)  # PGD-40 at 0.5/255, not AutoAttack
    shape = bp.correlations.set_index(["bias", "dimension"]).loc[("shape_bias", "concepts")]
    assert shape["n_with"] == shape["n"] + 1  # the Spearman coefficient with the model added
    notes = " ".join(bp.notes)
    for missing in ("ImageNet-ReaL", "ImageNet-A", "ImageNet-C-bar", "Stylized-ImageNet"):
        assert missing in notes  # what the study lacks is named
    assert "cb_bandwidth_octaves" in notes


def test_the_models_robust_accuracy_is_on_the_robustbench_leaderboard(study):
    ctx = _context(study)
    rb = load_published("robustbench")
    rp = robust_points(ctx, rb)
    user = rp.user.set_index("model").loc[MODEL]
    assert user["attack"] == "autoattack" and user["eps"] == pytest.approx(4 / 255)
    assert user["dataset"] == "imagenet_val_attacked"
    assert (user["clean"], user["robust"]) == (pytest.approx(0.75), 0.0)
    above = int((rp.published["robust"] > 0).sum())  # all but Standard_R50's 0 %
    assert user["rank"] == f"{above + 1} / {len(rp.published) + 1}"
    assert any("APGD/FAB steps" in n for n in rp.notes)  # torchattacks' budget is named


def test_the_sections_draw_the_published_points_and_the_model(study):
    ctx = _context(study)
    for render, published in (
        (render_natural_shifts, "title='resnet50 (Standard training)'"),
        (render_biases, "(adversarial_training)'"),
        (render_robustbench, "title='Salman2020Do_R50'"),
    ):
        page = render(ctx)
        assert published in page, render.__name__
        assert f"title='{MODEL} (yours)'" in page, render.__name__
        assert MODEL in _text(page)  # in the table below the plot too
    assert "ObjectNet" in _text(render_natural_shifts(ctx))


# ----------------------------------------------------------------------------- the browser
@pytest.fixture(scope="module")
def chromium() -> str:
    exe = find_chromium()
    if exe is None:
        pytest.skip("Chromium not found; run scripts/install_browser.sh to enable this test")
    return exe


#: on load: every hover spot of the published sections, whether it lies over its plot and is
#: what the browser finds at its centre (nothing covers it), and the tables' text
_PROBE = """<script>window.addEventListener('load',function(){
var out=[];document.querySelectorAll('.published-hover').forEach(function(box){
 var img=box.querySelector('img.plot');box.querySelectorAll('span[title]').forEach(function(s){
  s.scrollIntoView({block:'center'});var r=s.getBoundingClientRect(),ir=img.getBoundingClientRect();
  var cx=r.left+r.width/2,cy=r.top+r.height/2,hit=document.elementFromPoint(cx,cy);
  out.push({title:s.title,inside:cx>=ir.left&&cx<=ir.right&&cy>=ir.top&&cy<=ir.bottom,
   top:hit===s,loaded:img.complete&&img.naturalWidth>0});});});
document.body.dataset.spots=JSON.stringify(out);});</script>"""


@pytest.mark.browser
def test_the_report_renders_with_the_published_points_and_the_model(study, chromium, tmp_path):
    report = study["report"]
    shot = screenshot(report, tmp_path / "report.png", chromium=chromium)
    assert shot["ready"] and shot["errors"] == []
    assert shot["plots"] == shot["plots_total"] > 0  # every plot decoded
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", _PROBE + "</body>"))
    info = dump_dom(probe, chromium=chromium)
    assert info["errors"] == []
    spots = pd.DataFrame(json.loads(info["data"]["spots"]))
    assert spots["loaded"].all() and spots["inside"].all()  # every spot over its plot
    titles = set(spots["title"])
    mine = spots[spots["title"] == f"{MODEL} (yours)"]
    assert mine["top"].all()  # nothing covers the model's spots: its name shows on hover
    # V2, Sketch, R; 4 biases x 4 dimensions; RobustBench L-inf and corruptions
    assert len(mine) == 3 + 16 + 2
    assert "resnet50 (Standard training)" in titles  # the testbed
    assert any(t.endswith("(adversarial_training)") for t in titles)  # seed 002
    assert "Salman2020Do_R50" in titles  # RobustBench
    text = _text(info["dom"])
    assert MODEL in text and "Salman2020Do_R50" in text
    assert "no objectnet dataset" in text and "Stylized-ImageNet" in text
