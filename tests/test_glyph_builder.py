"""scripts/build_glyphs.py: a tiny pool built from this machine's fonts and read back through the
project's own glyph loader; the font coverage it trusts; its one-line errors."""

import importlib.util
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from envs import make_env

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "build_glyphs.py"
PREFERRED = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "NotoSans-Regular.ttf",
             "LiberationSans-Regular.ttf", "FreeSans.ttf")
TINY = ["--per-class", "4", "--max-alphabets", "3", "--max-classes", "5", "--min-classes", "3",
        "--no-preview"]


def load_builder():
    spec = importlib.util.spec_from_file_location("build_glyphs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


builder = load_builder()


@pytest.fixture(scope="module")
def fonts() -> list[Path]:
    """A few of the system's fonts (well-known families first), found as the builder finds them."""
    files, where = builder.font_files(None)
    if not files:
        pytest.skip(f"this machine has no font files ({where}); "
                    "the glyph builder needs at least one")
    return [f for f in files if f.name in PREFERRED][:3] or files[:4]


def build(fonts, out: Path, *extra) -> dict:
    argv = [a for f in fonts for a in ("--fonts", str(f))] + ["--out", str(out), *TINY, *extra]
    assert builder.main(argv) == 0
    with np.load(out) as archive:
        return {k: archive[k] for k in archive.files}


def run_script(*args, env=None):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_tiny_pool_has_the_loader_format_and_real_letters(fonts, tmp_path):
    arrays = build(fonts, tmp_path / "glyphs" / "glyphs.npz", "--seed", "3")
    images, alphabet, names = arrays["images"], arrays["alphabet"], arrays["alphabets"]
    n = len(images)
    assert images.dtype == np.uint8 and images.shape[1:] == (4, 28, 28)
    assert (alphabet.shape == arrays["codepoints"].shape == (n,)
            and arrays["font_idx"].shape == (n, 4))
    assert 1 <= len(names) <= 3 and sorted(set(alphabet.tolist())) == list(range(len(names)))
    assert all(3 <= (alphabet == a).sum() <= 5 for a in range(len(names)))
    assert len(set(arrays["codepoints"].tolist())) == n
    faces = {face.label: face for face in builder.read_faces(fonts)}
    for c, cp in enumerate(arrays["codepoints"].tolist()):
        assert builder.script_of(cp) == names[alphabet[c]], (hex(cp), names[alphabet[c]])
        for f in arrays["font_idx"][c]:  # every render is by a font whose cmap maps the letter
            assert cp in faces[str(arrays["fonts"][f])].covered
    assert images.max(axis=(2, 3)).min() >= 200                # every render has ink (255)...
    assert images.mean() < 80                                    # ...on a dark background
    assert all(len({r.tobytes() for r in cls}) == 4 for cls in images)  # distorted: all differ


def test_seed_decides_every_render(fonts, tmp_path):
    a = build(fonts, tmp_path / "a.npz", "--seed", "1")
    b = build(fonts, tmp_path / "b.npz", "--seed", "1")
    c = build(fonts, tmp_path / "c.npz", "--seed", "2")
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert a["images"].shape != c["images"].shape or not np.array_equal(a["images"], c["images"])


def test_loader_draws_episodes_from_the_built_pool(fonts, tmp_path):
    arrays = build(fonts, tmp_path / "glyphs" / "glyphs.npz")
    split_by = "alphabet" if len(arrays["alphabets"]) >= 3 else "character"
    env = make_env({"name": "glyphs", "ways": 2, "shots": 1, "query": 2, "rotations": "none",
                    "split_by": split_by, "meta_batch": 3}, str(tmp_path), 0)
    assert sum(len(env.pools[s].pool) for s in env.pools) == len(arrays["images"])
    episode = env.step()
    assert (episode.support_x.shape == (3, 2, 1, 28, 28)
            and episode.query_x.shape == (3, 4, 1, 28, 28))
    renders = torch.from_numpy(arrays["images"]).float().div(255).reshape(-1, 28 * 28)
    owner = torch.arange(len(arrays["images"])).repeat_interleave(arrays["images"].shape[1])

    def class_of(image):  # which built class this exact image came from
        match = (renders == image.reshape(1, -1)).all(dim=1).nonzero().flatten()
        assert len(match) >= 1
        return {int(owner[m]) for m in match}

    for t in range(3):
        for label in range(2):
            support = class_of(episode.support_x[t][episode.support_y[t] == label][0])
            for image in episode.query_x[t][episode.query_y[t] == label]:
                assert class_of(image) & support


def test_coverage_is_the_cmap_and_notdef_is_not_a_letter(fonts):
    faces = builder.read_faces(fonts)
    assert faces, f"none of {fonts} has letters in its cmap"
    face = faces[0]
    renderer = builder.Renderer(face)
    covered = sorted(face.covered)
    missing = [cp for cp in range(0x20, 0x30000)
               if builder.script_of(cp) and cp not in face.covered]
    rng = np.random.default_rng(0)
    for cp in rng.choice(covered, size=min(60, len(covered)), replace=False).tolist():
        assert renderer.glyph(cp) is not None, hex(cp)
    for cp in rng.choice(missing, size=60, replace=False).tolist():
        assert renderer.glyph(cp) is None, hex(cp)    # FreeType draws .notdef: not kept


def test_font_collections_are_read(fonts, tmp_path):
    """A .ttc holding the font as its only face gives the same letters and renders."""
    plain = builder.read_faces(fonts[:1])
    if not plain or plain[0].path.suffix.lower() not in (".ttf", ".otf"):
        pytest.skip(f"{fonts[0].name} is not a single-face font to wrap in a collection")
    data = bytearray(plain[0].path.read_bytes())
    shift = 16  # 'ttcf', version 1.0, one face, its offset
    for i in range(struct.unpack_from(">H", data, 4)[0]):
        at = 12 + 16 * i + 8
        struct.pack_into(">I", data, at, struct.unpack_from(">I", data, at)[0] + shift)
    collection = tmp_path / "wrapped.ttc"
    collection.write_bytes(b"ttcf" + struct.pack(">HHII", 1, 0, 1, shift) + bytes(data))
    wrapped, = builder.read_faces([collection])
    assert wrapped.index == 0 and wrapped.covered == plain[0].covered
    cp = min(wrapped.covered)
    assert np.array_equal(builder.Renderer(wrapped).glyph(cp), builder.Renderer(plain[0]).glyph(cp))


def test_no_usable_fonts_is_one_line_naming_the_fix(tmp_path):
    empty = tmp_path / "fonts"
    empty.mkdir()
    (empty / "broken.ttf").write_bytes(b"<html>not a font</html>")
    out = tmp_path / "glyphs.npz"
    result = run_script("--fonts", str(empty), "--out", str(out))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: no usable fonts") and str(empty) in lines[0]
    assert "--fonts" in lines[0] and "apt-get install" in lines[0]
    assert not out.exists()


def test_missing_pillow_is_one_line_naming_the_fix(tmp_path):
    fake = tmp_path / "site" / "PIL"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named PIL (test)')\n")
    env = {**os.environ, "PYTHONPATH": str(fake.parent)}
    result = run_script("--out", str(tmp_path / "glyphs.npz"), env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Pillow" in lines[0] and "pip install numpy pillow" in lines[0]
