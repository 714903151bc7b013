"""Tests for robustlens.models.checkpoints: safe loading and readable misfit errors."""

from __future__ import annotations

import collections

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from robustlens.errors import CheckpointError, UntrustedCheckpointError
from robustlens.models.checkpoints import load_into, load_state_dict, unwrap_state_dict


class _Net(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3)
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


class _Config:
    """A user class: pickling it makes a checkpoint need arbitrary unpickling."""

    def __init__(self) -> None:
        self.lr = 0.1


def _net(seed: int = 0) -> _Net:
    torch.manual_seed(seed)
    net = _Net()
    net.bn.running_mean.uniform_()  # buffers too must round-trip
    return net.eval()


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# ----------------------------------------------------------------------------- formats


def test_safetensors_round_trip(tmp_path):
    src, dst = _net(0), _net(1)
    path = tmp_path / "w.safetensors"
    save_file(src.state_dict(), str(path))
    sd = load_state_dict(path)
    assert set(sd) == set(src.state_dict())
    load_into(dst, sd)
    _assert_same_weights(src, dst)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin"])
def test_weights_only_state_dict_loads(tmp_path, suffix):
    src, dst = _net(0), _net(1)
    path = tmp_path / f"w{suffix}"
    torch.save(src.state_dict(), path)
    load_into(dst, load_state_dict(path))
    _assert_same_weights(src, dst)


def test_unknown_suffix_is_sniffed(tmp_path):
    src = _net(0)
    save_file(src.state_dict(), str(tmp_path / "w.weights"))
    torch.save(src.state_dict(), tmp_path / "w.model")
    for name in ("w.weights", "w.model"):
        assert set(load_state_dict(tmp_path / name)) == set(src.state_dict())


def test_training_containers_and_prefixes_are_unwrapped(tmp_path):
    src = _net(0)
    wrapped = {f"module._orig_mod.{k}": v for k, v in src.state_dict().items()}
    ckpt = {"epoch": 7, "optimizer": {"lr": 0.1}, "model_state_dict": wrapped}
    path = tmp_path / "ckpt.pth"
    torch.save(ckpt, path)
    sd = load_state_dict(path)
    assert set(sd) == set(src.state_dict())
    dst = _net(1)
    load_into(dst, sd)
    _assert_same_weights(src, dst)


def test_state_dict_preferred_over_ema_copy():
    ckpt = {"state_dict_ema": {"w": torch.zeros(1)}, "state_dict": {"w": torch.ones(1)}}
    assert unwrap_state_dict(ckpt)["w"].item() == 1.0


def test_partial_prefix_is_kept():
    # only strip a wrapper prefix when every key has it
    sd = {"module.a": torch.zeros(1), "b": torch.zeros(1)}
    assert set(unwrap_state_dict(sd)) == {"module.a", "b"}


def test_no_state_dict_inside_names_keys(tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"epoch": 3, "weights_list": [torch.zeros(1)]}, path)
    with pytest.raises(CheckpointError, match=r"no state dict found.*'epoch'"):
        load_state_dict(path)


def test_missing_file_and_garbage_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict(tmp_path / "nope.pt")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="safetensors"):
        load_state_dict(bad)
    good = tmp_path / "good.pt"
    torch.save({"w": torch.zeros(1000)}, good)
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="cannot read"):
        load_state_dict(trunc)


# ----------------------------------------------------------------------------- pickles


def test_pickled_object_refused_without_trust_flag(tmp_path):
    src = _net(0)
    path = tmp_path / "full.pt"
    torch.save({"state_dict": src.state_dict(), "config": _Config()}, path)
    with pytest.raises(UntrustedCheckpointError) as info:
        load_state_dict(path)
    msg = str(info.value)
    assert "trust_pickle=True" in msg and "--trust-pickle" in msg
    assert "_Config" in msg  # names the offending object
    assert isinstance(info.value, CheckpointError)

    sd = load_state_dict(path, trust_pickle=True)
    dst = _net(1)
    load_into(dst, sd)
    _assert_same_weights(src, dst)


def test_pickled_module_refused_then_loaded_with_trust(tmp_path):
    src = _net(0)
    path = tmp_path / "module.pth"
    torch.save(src, path)  # a whole nn.Module: needs arbitrary unpickling
    with pytest.raises(UntrustedCheckpointError, match="trust_pickle=True"):
        load_state_dict(path)
    sd = load_state_dict(path, trust_pickle=True)
    dst = _net(1)
    load_into(dst, sd)
    _assert_same_weights(src, dst)


def test_ordered_dict_state_dict_needs_no_trust(tmp_path):
    # torch's own state dicts are OrderedDicts (with _metadata): weights_only handles them
    src = _net(0)
    assert isinstance(src.state_dict(), collections.OrderedDict)
    path = tmp_path / "w.pt"
    torch.save(src.state_dict(), path)
    assert set(load_state_dict(path)) == set(src.state_dict())


# ----------------------------------------------------------------------------- misfits


def test_missing_and_unexpected_keys_are_named():
    sd = _net(0).state_dict()
    sd.pop("fc.weight")
    sd["head.weight"] = torch.zeros(2, 4)
    with pytest.raises(CheckpointError) as info:
        load_into(_net(1), sd, source="w.pt")
    msg = str(info.value)
    assert "w.pt" in msg
    assert "1 missing key: fc.weight" in msg
    assert "1 unexpected key: head.weight" in msg
    assert len(msg) < 600  # a summary, not torch's wall of text


def test_shape_mismatch_is_named_with_both_shapes():
    sd = _Net(width=8).state_dict()
    with pytest.raises(CheckpointError) as info:
        load_into(_net(), sd)
    msg = str(info.value)
    assert "conv.weight (checkpoint (8, 3, 3, 3), model (4, 3, 3, 3))" in msg
    assert "7 shape mismatches" in msg  # conv w/b, bn w/b/mean/var, fc.weight
    assert "(2 more)" in msg  # only the first 5 are listed


def test_shape_mismatch_fails_even_when_not_strict():
    sd = {"fc.weight": torch.zeros(3, 4)}
    with pytest.raises(CheckpointError, match=r"fc\.weight \(checkpoint \(3, 4\)"):
        load_into(_net(), sd, strict=False)


def test_non_strict_returns_the_misfits_and_loads_the_rest():
    src, dst = _net(0), _net(1)
    sd = {k: v for k, v in src.state_dict().items() if not k.startswith("fc.")}
    sd["extra"] = torch.zeros(1)
    result = load_into(dst, sd, strict=False)
    assert result.missing_keys == ["fc.weight", "fc.bias"]
    assert result.unexpected_keys == ["extra"]
    assert torch.equal(dst.conv.weight, src.conv.weight)
    assert not torch.equal(dst.fc.weight, src.fc.weight)


def test_prefix_hint_when_checkpoint_keys_carry_a_prefix():
    sd = {f"model.{k}": v for k, v in _net(0).state_dict().items()}
    with pytest.raises(CheckpointError, match=r"start with 'model\.'; strip that prefix"):
        load_into(_net(1), sd)


def test_old_checkpoint_without_num_batches_tracked_loads():
    src = _net(0)
    sd = {k: v for k, v in src.state_dict().items() if "num_batches_tracked" not in k}
    dst = _net(1)
    load_into(dst, sd)
    assert torch.equal(dst.bn.running_mean, src.bn.running_mean)


# ----------------------------------------------------------------------------- zoo files
def _zoo_copy(tmp_path, tiny_zoo_dir, name="tiny-cnn"):
    import shutil

    for suffix in (".safetensors", ".json"):
        shutil.copy(tiny_zoo_dir / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    return tmp_path / f"{name}.safetensors"


@pytest.mark.parametrize("cut", [0, 8, 100, 5000])
def test_a_truncated_zoo_checkpoint_says_retrain(tmp_path, tiny_zoo_dir, cut):
    from robustlens.models.zoo import load_zoo_model

    path = _zoo_copy(tmp_path, tiny_zoo_dir)
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(CheckpointError, match=r"is damaged \(SafetensorError.*zoo train --force"):
        load_zoo_model(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m["member"].update(arch="vit"), "unknown zoo architecture 'vit'"),
        (lambda m: m["member"].update(augment="cutmix"), "unknown augment 'cutmix'"),
        (lambda m: m["member"].update(depth=3), "unexpected keyword argument 'depth'"),
        (lambda m: m.pop("classes"), "missing key 'classes'"),
    ],
)
def test_a_bad_zoo_config_is_a_checkpoint_error(tmp_path, tiny_zoo_dir, edit, message):
    import json

    from robustlens.models.zoo import load_zoo_model

    path = _zoo_copy(tmp_path, tiny_zoo_dir)
    cfg = path.with_suffix(".json")
    meta = json.loads(cfg.read_text())
    edit(meta)
    cfg.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=message):
        load_zoo_model(path)
