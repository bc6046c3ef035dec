"""Encoder.embed: every input form gives the same features; bad inputs give one clear error."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoo

SAMPLES = zoo.sample_images()


def feats(encoder, images, **kw) -> np.ndarray:
    return encoder.embed(images, backend="torch", **kw)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_input_forms_agree(default_encoder) -> None:
    path = SAMPLES[2]
    pil = Image.open(path).convert("RGB")
    arr = np.array(pil)  # (H, W, 3) uint8
    chw = torch.from_numpy(arr).permute(2, 0, 1)  # (3, H, W) uint8
    ref = feats(default_encoder, [path])
    assert ref.shape == (1, 1280) and ref.dtype == np.float32
    for form in (str(path), pil, arr, chw, chw.float() / 255, arr.astype(np.float32) / 255):
        np.testing.assert_allclose(feats(default_encoder, form), ref, atol=1e-4, rtol=0)
    # Exactly equal where the pixels are exactly equal.
    np.testing.assert_array_equal(feats(default_encoder, [pil]), ref)
    np.testing.assert_array_equal(feats(default_encoder, arr[None]), ref)  # a 4-D batch


def test_batching_does_not_change_features(default_encoder) -> None:
    one = feats(default_encoder, SAMPLES, batch_size=1)
    many = feats(default_encoder, SAMPLES, batch_size=5)
    np.testing.assert_allclose(one, many, atol=1e-5, rtol=0)
    assert feats(default_encoder, []).shape == (0, 1280)


def test_normalize_and_no_grad(default_encoder) -> None:
    out = feats(default_encoder, SAMPLES[:3], normalize=True)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_a_model_in_train_mode_embeds_every_batch_in_eval_mode(cifar_test) -> None:
    # Fine-tuning code calls embed() on a model in train mode: every batch must still run in
    # eval mode (BatchNorm's running statistics, not the batch's, and left untouched), and the
    # model's own flags come back, including a BatchNorm deliberately kept in eval.
    enc = zoo.create_model("resnet10_cifar_quarter")
    files, _ = cifar_test
    images = files[:6]
    ref = enc.embed(images, backend="torch", batch_size=2)
    frozen = next(m for m in enc.modules() if isinstance(m, torch.nn.BatchNorm2d))
    enc.train()
    frozen.eval()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    out = enc.embed(images, backend="torch", batch_size=2)
    np.testing.assert_array_equal(out, ref)
    for k, v in enc.state_dict().items():
        assert torch.equal(v, before[k]), f"embed changed {k}"
    assert enc.training and not frozen.training
    assert all(m.training for m in enc.modules() if m is not frozen)


def test_cifar_resnet_at_32px(cifar_test) -> None:
    enc = zoo.create_model("resnet18_cifar")
    files, _ = cifar_test
    out = enc.embed(files, backend="torch")
    assert out.shape == (len(files), 512) and np.isfinite(out).all()


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_float_and_uint8_pixels_embed_alike(cifar_test, imagenette_val, interpolation: str) -> None:
    """The same pixels as uint8 and as float [0, 1] give the same features (issue 14.10): before,
    uint8 images were resized in fixed point and rounded, moving features by up to ~0.1."""
    torch.manual_seed(0)
    pre = zoo.Preprocess(input_size=224, resize_size=256, interpolation=interpolation)
    enc = zoo.create_model("resnet18", preprocess=pre)
    # 32 px CIFAR images are upscaled (the small-image path), 224+ px Imagenette ones resized.
    files = cifar_test[0][:2] + imagenette_val[0][:2]
    for f in files:
        arr = np.asarray(Image.open(f).convert("RGB"))
        as_uint8 = enc.embed(arr, backend="torch")
        as_float = enc.embed(arr.astype(np.float64) / 255, backend="torch")
        np.testing.assert_allclose(as_float, as_uint8, atol=1e-4, rtol=0, err_msg=str(f))


def test_grayscale_and_special_modes(default_encoder, tmp_path: Path) -> None:
    rgb = Image.open(SAMPLES[0]).convert("RGB")
    cases = {}
    cases["rgba.png"] = rgb.convert("RGBA")
    cases["cmyk.jpg"] = rgb.convert("CMYK")
    cases["gray.png"] = rgb.convert("L")
    cases["palette.png"] = rgb.convert("P")
    gray16 = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    cases["gray16.png"] = Image.fromarray(gray16)
    paths = []
    for name, img in cases.items():
        img.save(tmp_path / name)
        paths.append(tmp_path / name)
    out = feats(default_encoder, paths)
    assert np.isfinite(out).all()
    # A 16-bit PNG is rescaled, not clipped to white: it matches its 8-bit twin.
    i16, i8 = paths.index(tmp_path / "gray16.png"), paths.index(tmp_path / "gray.png")
    cos = out[i16] @ out[i8] / np.linalg.norm(out[i16]) / np.linalg.norm(out[i8])
    assert cos > 0.999


def test_transparent_pixels_are_composited_on_white_in_every_form(default_encoder, tmp_path: Path) -> None:
    rgba = np.asarray(Image.open(SAMPLES[2]).convert("RGBA")).copy()
    rgba[: rgba.shape[0] // 2, :, 3] = 0  # top half fully transparent
    rgba[rgba.shape[0] // 2 :, : rgba.shape[1] // 2, 3] = 90  # a translucent quarter
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    ref = feats(default_encoder, [tmp_path / "t.png"])
    chw = torch.from_numpy(rgba).permute(2, 0, 1)
    for form in (rgba, chw):  # uint8 pixels: exactly the file's compositing
        np.testing.assert_array_equal(feats(default_encoder, form), ref)
    # Float pixels are composited in float, without the file path's rounding to 8 bits (up to
    # half a grey level in the translucent quarter): near-identical, not bit-equal.
    for form in (rgba.astype(np.float32) / 255, chw.float() / 255):
        assert cosine(feats(default_encoder, form)[0], ref[0]) > 0.9995
    # The transparent half reads as white, not as the colours stored under it (cosine ~0.5).
    opaque = rgba.copy()
    opaque[..., 3] = 255
    assert cosine(feats(default_encoder, opaque)[0], ref[0]) < 0.9


def test_exif_rotation_is_applied(default_encoder, tmp_path: Path) -> None:
    img = Image.open(SAMPLES[2]).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "tagged.jpg", exif=exif, quality=95)
    img.transpose(Image.Transpose.ROTATE_270).save(tmp_path / "upright.jpg", quality=95)
    a, b = feats(default_encoder, [tmp_path / "tagged.jpg", tmp_path / "upright.jpg"], normalize=True)
    assert a @ b > 0.98


def test_bad_images_name_the_problem(default_encoder, tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("this is not an image")
    data = SAMPLES[0].read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("notes.jpg", "truncated.jpg", "empty.png"):
        with pytest.raises(zoo.ImageError, match=name):
            default_encoder.embed([SAMPLES[1], tmp_path / name], backend="torch")
    with pytest.raises(zoo.ImageError, match="no such image file"):
        default_encoder.embed(tmp_path / "missing.jpg")
    with pytest.raises(zoo.ImageError, match=r"\[0, 1\]"):
        default_encoder.embed(torch.full((3, 32, 32), 255.0))
    with pytest.raises(zoo.ImageError, match="channels"):
        default_encoder.embed(np.zeros((32, 32, 5), np.uint8))
    with pytest.raises(zoo.ImageError, match="dict"):
        default_encoder.embed([{"not": "an image"}])


def test_decompression_bomb_is_refused(default_encoder, tmp_path: Path) -> None:
    """A tiny PNG that declares 20000 x 20000 pixels is refused before it is decoded."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    png = bytearray(buf.getvalue())
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    png[16:29] = ihdr
    png[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    (tmp_path / "bomb.png").write_bytes(bytes(png))
    with pytest.raises(zoo.ImageError, match="bomb"):
        default_encoder.embed(tmp_path / "bomb.png")


def test_a_very_thin_image_is_refused_before_it_is_resized(default_encoder, tmp_path: Path) -> None:
    """A 1 x 60000 PNG is 60000 pixels, but resizing its shorter side to 256 px would make it
    256 x 15,360,000 (47 GB as float32): refused with its size, skipped by embed_files."""
    Image.new("RGB", (1, 60000), "white").save(tmp_path / "strip.png")
    Image.new("RGB", (60000, 1), "white").save(tmp_path / "wide.png")
    with pytest.raises(zoo.ImageError, match=r"strip\.png: image of 1x60000 pixels is too elongated"):
        default_encoder.embed(tmp_path / "strip.png", backend="torch")
    with pytest.raises(zoo.ImageError, match=r"image of 60000x1 pixels .* crop it to an aspect ratio"):
        default_encoder.embed(np.full((1, 60000, 3), 255, np.uint8), backend="torch")
    result = default_encoder.embed_files([SAMPLES[0], tmp_path / "wide.png"], backend="torch")
    assert result.files == [SAMPLES[0]] and len(result.features) == 1
    assert result.skipped[0].startswith(f"{tmp_path / 'wide.png'}: image of 60000x1 pixels")
    # A panorama of ordinary proportions still embeds.
    Image.new("RGB", (1200, 200), "white").save(tmp_path / "panorama.png")
    panorama = default_encoder.embed(tmp_path / "panorama.png", backend="torch")
    assert panorama.shape == (1, default_encoder.embed_dim)


@pytest.mark.parametrize("form", ["numpy", "torch"])
def test_arrays_and_tensors_are_held_to_the_pixel_limit(default_encoder, form: str) -> None:
    from zoo.images import MAX_PIXELS

    side = int(MAX_PIXELS**0.5) + 1  # just over the limit: 64 MB of uint8 grey pixels
    image = np.zeros((side, side), np.uint8)
    image = image if form == "numpy" else torch.from_numpy(image).unsqueeze(0)  # (1, H, W)
    with pytest.raises(zoo.ImageError, match=f"{side * side:,} pixels, over the limit of {MAX_PIXELS:,}"):
        default_encoder.embed(image, backend="torch")
