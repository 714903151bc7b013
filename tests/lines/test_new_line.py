"""Adding a research line touches no core file: the README's example, installed as a package.

The test takes the Python and TOML blocks of the README's "Adding a research line" section,
writes them as a small installed distribution (a package plus a ``.dist-info`` folder with its
entry point), and runs a study that names the new measure; the report shows the new section.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import robustlens.measure as measure_mod
import robustlens.views.registry as views_registry
from robustlens.config import parse_config
from robustlens.errors import ConfigError
from robustlens.report import write_report
from robustlens.study import run_study

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_example() -> tuple[str, str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Adding a research line", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    toml = re.search(r"```toml\n(.*?)```", section, re.S)
    assert code and toml, "the README's section lost its code blocks"
    return code.group(1), toml.group(1)


@pytest.fixture
def installed_flipline(tmp_path, monkeypatch):
    """The README's package on sys.path with its entry point; registries restored after."""
    code, toml = _readme_example()
    assert code.startswith("# flipline/__init__.py")
    pkg = tmp_path / "site" / "flipline"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(code)
    dist = tmp_path / "site" / "flipline-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: flipline\nVersion: 0.1\n")
    groups = tomllib.loads(toml)["project"]["entry-points"]
    (dist / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in eps.items())
            for group, eps in groups.items()
        )
    )
    measure_mod.lines()  # the installed lines, before copying the registries
    for name in ("_LINES", "_MEASURES", "_MEASURE_LINE"):
        monkeypatch.setattr(measure_mod, name, dict(getattr(measure_mod, name)))
    monkeypatch.setattr(measure_mod, "_DISCOVERED", False)
    monkeypatch.setattr(views_registry, "_REGISTRY", dict(views_registry._REGISTRY))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield
    sys.modules.pop("flipline", None)
    views_registry.parse_view.cache_clear()


def _study_dict(world, zoo_dir, root: Path, measures, options=None) -> dict:
    return {
        "name": "new line",
        "store": str(root / "store"),
        "output": str(root / "out"),
        "world": {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(world.config).items()
        },
        "models": [{"source": "zoo", "path": str(zoo_dir)}],
        "datasets": [{"world": ["val", "v2"]}],
        "measures": measures,
        "measure_options": options or {},
        "engine": {"num_workers": 0},
    }


def test_readme_line_runs_in_a_study_with_its_report_section(
    installed_flipline, tiny_world, tiny_zoo_dir, tmp_path
):
    assert "flip" in [line.name for line in measure_mod.lines()]
    assert "flip_consistency" in measure_mod.available_measures()
    data = _study_dict(tiny_world, tiny_zoo_dir, tmp_path, ["accuracy", "flip_consistency"])
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(data))
    result = run_study(parse_config(yaml.safe_load((tmp_path / "study.yaml").read_text())))
    df = result.results()
    flips = df[df["measure"] == "flip_consistency"]
    # requested on the id set only, one number per model, each an agreement rate
    assert set(flips["dataset"]) == {"world/val"}
    assert len(flips) == len(result.models)
    assert flips["value"].between(0, 1).all()
    # a mirror changes some predictions of these tiny models, but not all of them
    assert 0 < flips["value"].mean() < 1
    page = write_report(result).read_text()
    assert "<h2>Flip consistency</h2>" in page and "Flip agreement" in page
    for model in result.models:
        assert model in page


def test_options_of_the_new_measure_are_checked(
    installed_flipline, tiny_world, tiny_zoo_dir, tmp_path
):
    data = _study_dict(
        tiny_world, tiny_zoo_dir, tmp_path, ["flip_consistency"], {"flip_consistency": {"axis": 1}}
    )
    with pytest.raises(ConfigError, match="axis"):
        run_study(parse_config(data))


def test_a_line_that_fails_to_import_is_an_error_naming_it(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "brokenline").mkdir(parents=True)
    (site / "brokenline" / "__init__.py").write_text("import not_a_module_anywhere\n")
    dist = site / "brokenline-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenline\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[robustlens.lines]\nbroken = brokenline:LINE\n")
    for name in ("_LINES", "_MEASURES", "_MEASURE_LINE"):
        monkeypatch.setattr(measure_mod, name, {})
    monkeypatch.setattr(measure_mod, "_DISCOVERED", False)
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(measure_mod.LineLoadError, match=r"'broken'.*not_a_module_anywhere"):
        measure_mod.lines()
