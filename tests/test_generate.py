"""Generation into ImageFolders: the world generator, Stable Diffusion, generated zoo twins."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip(
    "diffusers", reason="generation needs diffusers (pip install 'robustlens[gen]')"
)

import torch

from robustlens.data.imagefolder import ImageFolderDataset
from robustlens.errors import CheckpointError, ConfigError
from robustlens.generate import (
    GeneratorConfig,
    generate_with_stable_diffusion,
    generated_zoo_members,
    load_generator_meta,
    read_classes_file,
    sample_world_generator,
    train_world_generator,
)
from robustlens.models.zoo import TrainingData, ZooMember, load_zoo_model, train_member

# a very small UNet (about 20 k parameters) so that training steps take milliseconds
TINY_GEN = GeneratorConfig(block_out_channels=(8, 16), norm_num_groups=4)


@pytest.fixture(scope="module")
def tiny_generator(tiny_world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generator")
    return train_world_generator(tiny_world, out, steps=2, batch_size=8, seed=0, config=TINY_GEN)


def _read_tree(root: Path) -> dict[str, np.ndarray]:
    return {
        str(p.relative_to(root)): np.asarray(Image.open(p)) for p in sorted(root.rglob("*.png"))
    }


def test_train_world_generator_saves_unet_scheduler_and_meta(tiny_generator, tiny_world):
    meta = load_generator_meta(tiny_generator)
    assert meta["world"] == tiny_world.fingerprint()
    assert meta["classes"] == tiny_world.classes
    assert meta["image_size"] == 32 and meta["steps"] == 2 and meta["null_class"] == 4
    assert len(meta["loss_curve"]) == 2 and np.isfinite(meta["final_loss"])
    assert (tiny_generator / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (tiny_generator / "scheduler" / "scheduler_config.json").is_file()
    assert meta["n_params"] < 100_000


def test_sample_writes_imagefolder_of_world_classes(tiny_generator, tiny_world, tmp_path):
    out = sample_world_generator(tiny_generator, tmp_path / "gen", n_per_class=2, steps=2)
    tree = _read_tree(out)
    expected = {f"{c}/{i:05d}.png" for c in tiny_world.classes for i in range(2)}
    assert set(tree) == expected
    assert all(img.shape == (32, 32, 3) and img.dtype == np.uint8 for img in tree.values())
    manifest = json.loads((out / "generated.json").read_text())
    assert manifest["world"] == tiny_world.fingerprint() and manifest["n_per_class"] == 2

    ds = ImageFolderDataset(out, size=32, crop="none")  # the manifest is ignored
    assert len(ds) == 8 and sorted(ds.classes) == sorted(tiny_world.classes)


def test_sampling_is_deterministic_for_a_seed_and_batch_size(tiny_generator, tmp_path):
    a = _read_tree(sample_world_generator(tiny_generator, tmp_path / "a", 2, steps=2, seed=1))
    b = _read_tree(
        sample_world_generator(tiny_generator, tmp_path / "b", 2, steps=2, seed=1, batch_size=3)
    )
    c = _read_tree(sample_world_generator(tiny_generator, tmp_path / "c", 2, steps=2, seed=2))
    assert a.keys() == b.keys() == c.keys()
    # a UNet call on 3 images sums in another order than on 8: float rounding may move a
    # pixel by one 8-bit level, never more, and only a few pixels
    diff = np.stack([np.abs(a[k].astype(int) - b[k]) for k in a])
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_sample_subset_of_classes_and_guidance(tiny_generator, tiny_world, tmp_path):
    first = tiny_world.classes[0]
    out = sample_world_generator(
        tiny_generator, tmp_path / "g", 1, steps=2, classes=[first], guidance_scale=2.0
    )
    assert set(_read_tree(out)) == {f"{first}/00000.png"}
    with pytest.raises(ConfigError, match="unknown classes"):
        sample_world_generator(tiny_generator, tmp_path / "x", 1, classes=["unicorn"])


def test_missing_generator_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no trained world generator"):
        sample_world_generator(tmp_path / "nothing", tmp_path / "out", 1)


def test_generator_config_validates_groups():
    with pytest.raises(ConfigError, match="divisible by norm_num_groups"):
        GeneratorConfig(block_out_channels=(6, 16), norm_num_groups=4)


def test_generated_twins_train_on_real_plus_generated(tiny_generator, tiny_world, tmp_path):
    """Zoo integration: a '-gen' twin trains on the world's train split + the generated tree."""

    n_real = len(tiny_world.split("train")["labels"])
    per_class = n_real // len(tiny_world.classes)  # as many generated as real images
    gen_dir = sample_world_generator(tiny_generator, tmp_path / "gen", per_class, steps=1)
    base = ZooMember("t-cnn", "cnn", 8, "none", 1, lr=5e-3, tags=("small",))
    (twin,) = generated_zoo_members([base], gen_dir)
    assert twin.name == "t-cnn-gen" and twin.tags == ("small", "generated")
    assert twin.generated == str(gen_dir.resolve()) and twin.generated_ratio == 1.0

    data = TrainingData(tiny_world, twin)
    assert len(data.labels) == n_real and len(data) == 2 * n_real  # 1:1 real to generated
    assert data.gen_images.shape == (n_real, 32, 32, 3)
    # generated labels are the world's class indices of their folders, all classes present
    counts = np.bincount(data.gen_labels, minlength=len(tiny_world.classes))
    assert counts.tolist() == [per_class] * len(tiny_world.classes)
    x, y = data.batch(np.array([0, n_real, n_real + 1]), torch.Generator())
    assert x.shape == (3, 3, 32, 32) and y.tolist()[1:] == data.gen_labels[:2].tolist()

    path = train_member(tiny_world, twin, tmp_path / "zoo")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["n_train"] == 2 * n_real
    model = load_zoo_model(path)
    assert model.config["member"]["generated"] == twin.generated

    with pytest.raises(ConfigError, match="already trains on generated data"):
        generated_zoo_members([twin], gen_dir)


def test_generated_ratio_is_met_with_fewer_generated_images(tiny_generator, tiny_world, tmp_path):
    gen_dir = sample_world_generator(tiny_generator, tmp_path / "gen", 2, steps=1)
    (twin,) = generated_zoo_members([ZooMember("t", "cnn", 8, "none", 1)], gen_dir)
    data = TrainingData(tiny_world, twin)
    assert len(data.gen_labels) == len(data.labels)
    # every generated image is used at least once
    n_unique = len({img.tobytes() for img in data.gen_images})
    assert n_unique == 2 * len(tiny_world.classes)


def test_read_classes_file_looks_up_imagenet_names(tmp_path):
    p = tmp_path / "classes.txt"
    p.write_text("n01440764\nn01443537\tgoldfish fish\nred fox\n")
    names, folders = read_classes_file(p)
    assert folders == ["n01440764", "n01443537", "red_fox"]
    assert names[1:] == ["goldfish fish", "red fox"] and names[0].lower() == "tench"
    with pytest.raises(ConfigError, match="does not exist"):
        read_classes_file(tmp_path / "missing.txt")


# ------------------------------------------------------------------------ Stable Diffusion
def _byte_alphabet() -> list[str]:
    """GPT-2 / CLIP byte-to-unicode alphabet: every byte has a printable symbol."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def _tiny_sd_pipeline(root: Path) -> Path:
    """A randomly initialised Stable Diffusion pipeline built from configs (no hub access)."""
    transformers = pytest.importorskip(
        "transformers", reason="Stable Diffusion needs transformers (CLIP text encoder)"
    )
    from diffusers import (  # optional dependency: diffusers (the pipeline needs transformers)
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )

    tok_dir = root / "tok"
    tok_dir.mkdir()
    chars = _byte_alphabet()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")  # character-level BPE, no merges
    tokenizer = transformers.CLIPTokenizer(
        str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=32
    )
    torch.manual_seed(0)
    text_encoder = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=32,
            projection_dim=32,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        )
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=4,
        attention_head_dim=2,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4,
        sample_size=16,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(root / "pipe")
    return root / "pipe"


def test_stable_diffusion_tiny_pipeline_writes_imagefolder(tmp_path):
    pipe_dir = _tiny_sd_pipeline(tmp_path)
    out = generate_with_stable_diffusion(
        pipe_dir,
        ["tench", "tree frog"],
        tmp_path / "sd",
        n_per_class=2,
        steps=2,
        seed=0,
        folder_names=["n01440764", "n01644373"],
        batch_size=3,
    )
    tree = _read_tree(out)
    assert set(tree) == {f"{f}/{i:05d}.png" for f in ("n01440764", "n01644373") for i in range(2)}
    assert all(img.shape == (16, 16, 3) for img in tree.values())  # VAE x2 on an 8x8 latent
    manifest = json.loads((out / "generated.json").read_text())
    assert manifest["classes"] == {"n01440764": "tench", "n01644373": "tree frog"}
    assert manifest["prompt_template"] == "a photo of a {}"
    again = _read_tree(
        generate_with_stable_diffusion(
            pipe_dir,
            ["tench", "tree frog"],
            tmp_path / "sd2",
            n_per_class=2,
            steps=2,
            seed=0,
            folder_names=["n01440764", "n01644373"],
            batch_size=4,
        )
    )
    assert all(np.array_equal(tree[k], again[k]) for k in tree)  # seeded per image


def test_stable_diffusion_missing_dir_and_bad_template(tmp_path):
    with pytest.raises(CheckpointError, match=r"does not exist.*save_pretrained"):
        generate_with_stable_diffusion(tmp_path / "nope", ["cat"], tmp_path / "o", 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"has no model_index\.json"):
        generate_with_stable_diffusion(tmp_path / "empty", ["cat"], tmp_path / "o", 1)
    (tmp_path / "empty" / "model_index.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"must contain '\{\}'"):
        generate_with_stable_diffusion(
            tmp_path / "empty", ["cat"], tmp_path / "o", 1, prompt_template="a cat"
        )
