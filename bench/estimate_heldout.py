"""How well does ``robustlens estimate`` predict accuracy on data it has no labels for?

The quick demo world (``demo_config_dict(quick=True)``) with one corruption family held out:
its images (``corrupt/<family>/<severity>``) are exported as PNG folders and added to the
study as ``unlabeled`` datasets (``unlabeled/<family>/<severity>``), and the family's labelled
splits are left out of the study. The same splits are also added as world splits with
``role: unlabeled`` (``world/corrupt/<family>/<severity>``): the folder is read with the
ImageNet evaluation transform (shorter side to 8/7 of the size, centre crop), which shifts
32-pixel images a little further; the world splits have the labelled splits' exact pixels.
Every other shift of the world (v2, the other corruptions, sketch, rendition, C-bar, stylized,
natural) is labelled and calibrates the predictors. ``robustlens estimate`` runs end to end
(its study, its tables, its CSV); then the held-out images' true labels, read from the export's
class folders (never from the study), give each model's true accuracy on exactly the images it
was scored on, and the script prints:

1. per model and held-out severity: the recommended estimate, its interval and the truth;
2. per predictor: the expected error the study reported (leave one labelled shift out) next to
   the actual mean absolute error on the held-out family, and how often the interval covered
   the truth.

Usage: python bench/estimate_heldout.py [--work DIR] [--zoo DIR] [--family fog]
A zoo trained on the same world (same fingerprint, e.g. an earlier quick demo's ``zoo/``) is
reused; otherwise the quick demo zoo is trained (minutes). The store is ``WORK/store``: copy an
earlier quick demo's store there first to reuse its cached arrays.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from robustlens.analysis.estimation import recommend
from robustlens.data.imagefolder import UnlabeledFolderDataset
from robustlens.data.synthetic import SyntheticWorld, WorldConfig
from robustlens.demo import demo_config_dict
from robustlens.store import Store
from robustlens.study import per_sample_path

#: world splits that play no part in the estimate (training data, bias probes)
NOT_USED = ("train", "cue_conflict", "spurious", "adversarial")


def _world(cfg: dict, store: Path) -> SyntheticWorld:
    return SyntheticWorld(WorldConfig(**cfg["world"]), Store(store))


def _zoo(cfg: dict, world: SyntheticWorld, zoo: Path | None, work: Path) -> Path:
    """A zoo trained on this world: ``zoo`` if its members' world fingerprint matches."""
    if zoo is not None:
        worlds = {json.loads(p.read_text())["world"] for p in Path(zoo).glob("*.json")}
        if worlds == {world.fingerprint()}:
            return Path(zoo)
        print(f"zoo {zoo} was trained on world(s) {worlds}, not {world.fingerprint()}: training")
    study = work / "zoo-study.yaml"
    data = {**cfg, "store": str(work / "store"), "zoo": {**cfg["zoo"], "dir": str(work / "zoo")}}
    study.write_text(yaml.safe_dump(data, sort_keys=False))
    subprocess.run(["robustlens", "zoo", "train", str(study)], check=True)
    return work / "zoo"


def _truth(root: Path, classes: list[str], size: int) -> dict[int, int]:
    """``{sample id: true class}`` of an exported folder (``<class>/<i>.png``)."""
    ds = UnlabeledFolderDataset(root, size=size)
    labels = [classes.index(e.path.split("/")[0]) for e in ds.entries]
    return dict(zip(ds.sample_ids().tolist(), labels, strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/robustlens-estimate"))
    ap.add_argument("--zoo", type=Path, default=None, help="a zoo trained on the quick world")
    ap.add_argument("--family", default="fog", help="the corruption family held out")
    ap.add_argument(
        "--folder-only",
        action="store_true",
        help="only the exported folders (not also the world's splits with role: unlabeled)",
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    cfg = demo_config_dict(quick=True)
    world = _world(cfg, work / "store")
    zoo = _zoo(cfg, world, args.zoo, work)
    size = world.config.image_size
    held = [s for s in world.split_names() if s.startswith(f"corrupt/{args.family}/")]
    if not held:
        sys.exit(f"no world split corrupt/{args.family}/*; corruptions: {world.corruption_names}")
    export = work / "export"
    if export.exists():
        shutil.rmtree(export)
    world.export_imagefolder(export, held)
    labelled = [s for s in world.split_names() if s not in NOT_USED and s not in held]
    unlabeled = {f"unlabeled/{args.family}/{s.rsplit('/', 1)[1]}": export / s for s in held}
    # the same images as world splits with role unlabeled: the pixels the labelled splits
    # have (a folder is read with the ImageNet eval transform: resize to 8/7, centre crop)
    as_world = [] if args.folder_only else held
    study = {
        "name": f"estimate-heldout-{args.family}",
        "store": str(work / "store"),
        "output": str(work / "out"),
        "world": cfg["world"],
        "models": [{"source": "zoo", "path": str(zoo)}],
        "datasets": [{"world": labelled}]
        + [
            {"layout": "unlabeled", "root": str(root), "name": name, "size": size}
            for name, root in unlabeled.items()
        ]
        + ([{"world": as_world, "role": "unlabeled"}] if as_world else []),
        "measures": ["accuracy"],
        "engine": {"num_workers": 0},
    }
    path = work / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    csv = work / "tables"
    subprocess.run(["robustlens", "estimate", str(path), "--all", "--csv", str(csv)], check=True)

    est = pd.read_csv(csv / "estimates.csv")
    rel = pd.read_csv(csv / "reliability.csv")
    recommended = recommend(rel)
    truth = {name: _truth(root, list(world.classes), size) for name, root in unlabeled.items()}
    for split in as_world:
        ds = world.dataset(split)
        truth[ds.name] = dict(zip(ds.sample_ids().tolist(), ds.labels().tolist(), strict=True))
    rows = []
    for model in sorted(est["model"].unique()):
        ps = pd.read_parquet(per_sample_path(work / "out", model))
        for name, labels in truth.items():
            part = ps[ps["dataset"] == name]
            pairs = zip(part["sample_id"], part["top1"], strict=True)
            hits = [labels[int(s)] == int(p) for s, p in pairs]
            rows.append({"model": model, "dataset": name, "true": float(np.mean(hits))})
    true = pd.DataFrame(rows)
    joined = est.merge(true, on=["model", "dataset"])
    joined["abs_error"] = (joined["estimate"] - joined["true"]).abs()
    joined["covered"] = (joined["low"] <= joined["true"]) & (joined["true"] <= joined["high"])
    joined["variant"] = np.where(joined["dataset"].str.startswith("unlabeled/"), "folder", "split")

    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 500)
    print(f"\nheld out: corrupt/{args.family}/{{{', '.join(s[-1] for s in held)}}} as unlabelled")
    print(f"{len(true['model'].unique())} models; labelled shifts: {len(labelled) - 1} datasets")
    print(f"recommended predictor: {recommended}\n")
    rec = joined[joined["predictor"] == recommended]
    rec = rec.assign(
        cell=[
            f"{e:.3f} [{lo:.2f}, {hi:.2f}] / {t:.3f}"
            for e, lo, hi, t in zip(
                rec["estimate"], rec["low"], rec["high"], rec["true"], strict=True
            )
        ]
    )
    per_model = rec.pivot(index="model", columns="dataset", values="cell")
    per_model = per_model[[d for d in truth if d in per_model.columns]]
    per_model.index.name = "model: estimate [90% interval] / true"
    print(per_model.to_string())
    print()
    g = joined.groupby("predictor")
    summary = pd.DataFrame({"expected_error": g["loo_mae"].mean()})
    for variant, part in joined.groupby("variant"):
        by = part.groupby("predictor")
        summary[f"mae_{variant}"] = by["abs_error"].mean()
        summary[f"worst_{variant}"] = by["abs_error"].max()
        summary[f"coverage_{variant}"] = by["covered"].mean()
    summary = summary.sort_values(f"mae_{'folder' if 'mae_folder' in summary else 'split'}")
    print("per predictor: expected error (leave one labelled shift out, mean over models) vs")
    print(f"actual absolute error on the held-out {args.family} family (all models x severities)")
    print(summary.round(3).to_string())
    for variant, part in rec.groupby("variant"):
        print(
            f"recommended ({recommended}), {variant}: actual MAE {part['abs_error'].mean():.3f}, "
            f"interval coverage {part['covered'].mean():.2f}, mean true accuracy "
            f"{part['true'].mean():.3f}"
        )
    print(f"done in {time.perf_counter() - t0:.0f}s")
    joined.to_csv(work / "heldout_errors.csv", index=False)


if __name__ == "__main__":
    main()
