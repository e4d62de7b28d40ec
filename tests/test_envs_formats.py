"""Each on-disk format, written here in its exact layout, loaded through make_env; and its
errors."""

import pickle
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from envs import DataError, make_env
from envs.omniglot import load_omniglot_pool

SPLITS = ("train", "validation", "test")
CHANNEL_FILL = (10, 20, 30)  # distinct per-channel values reveal a channels-first mistake


def assert_data_error(excinfo, *fragments):
    message = str(excinfo.value)
    assert isinstance(excinfo.value, DataError)
    assert "\n" not in message, message
    for fragment in fragments:
        assert str(fragment) in message, f"{fragment!r} not in: {message}"


def class_tags(x: torch.Tensor) -> torch.Tensor:
    """Class code stored in pixel (0, 0) of channel 0 by the writers below."""
    return torch.round(x[..., 0, 0, 0] * 255).long()


def assert_labels_match_tags(episode):
    for t in range(len(episode)):
        for xs, ys in ((episode.support_x[t], episode.support_y[t]),
                       (episode.query_x[t], episode.query_y[t])):
            tags = class_tags(xs)
            for label in ys.unique():
                assert len(tags[ys == label].unique()) == 1


# ---- mini-ImageNet: learn2learn's cache pickles -------------------------------------------------

def write_mini_imagenet(root, n_classes=6, per_class=25, dtype=np.uint8):
    """<root>/mini-imagenet-cache-<split>.pkl with {'image_data', 'class_dict'}; class rows
    interleaved."""
    for s, split in enumerate(SPLITS):
        n = n_classes * per_class
        order = np.random.default_rng(s).permutation(n)
        images = np.empty((n, 84, 84, 3), dtype=dtype)
        images[:] = CHANNEL_FILL
        class_dict = {}
        for c in range(n_classes):
            rows = order[c * per_class:(c + 1) * per_class]
            images[rows, 0, 0, 0] = 100 * s + c
            class_dict[f"n{s}{c:07d}"] = rows.tolist()
        with open(root / f"mini-imagenet-cache-{split}.pkl", "wb") as f:
            pickle.dump({"image_data": images, "class_dict": class_dict}, f)


def mini_env(root, **data):
    return make_env({"name": "mini-imagenet", "ways": 5, "shots": 5, "query": 15, **data},
                    str(root), seed=0)


def test_mini_imagenet_loads(tmp_path):
    write_mini_imagenet(tmp_path)
    env = mini_env(tmp_path, meta_batch=2)
    assert env.input_shape == (3, 84, 84) and [len(env.pools[s].pool) for s in SPLITS] == [6, 6, 6]
    episode = env.step()
    assert (episode.support_x.shape == (2, 25, 3, 84, 84)
            and episode.query_x.shape == (2, 75, 3, 84, 84))
    assert episode.support_x.dtype == torch.float32 and float(episode.support_x.max()) <= 1.0
    torch.testing.assert_close(episode.query_x[0, 0, :, 5, 5], torch.tensor(CHANNEL_FILL) / 255.0)
    assert_labels_match_tags(episode)
    assert (set(class_tags(env.episodes("test", 0, 3).query_x).unique().tolist())
            <= set(range(200, 206)))


def test_mini_imagenet_missing_file(tmp_path):
    with pytest.raises(DataError) as excinfo:
        mini_env(tmp_path)
    assert_data_error(excinfo, tmp_path / "mini-imagenet-cache-train.pkl", "download: true",
                      "--data-root")


@pytest.mark.parametrize("page", [b"<!DOCTYPE html><html><body>Google Drive", b"\n  <HTML><head>",
                                  b"\xef\xbb\xbf<html>"])
def test_mini_imagenet_html_page(tmp_path, page):
    write_mini_imagenet(tmp_path)
    (tmp_path / "mini-imagenet-cache-validation.pkl").write_bytes(page + b" quota exceeded\n" * 50)
    with pytest.raises(DataError) as excinfo:
        mini_env(tmp_path)
    assert_data_error(excinfo, tmp_path / "mini-imagenet-cache-validation.pkl", "HTML page",
                      "download again")


@pytest.mark.parametrize("content", ["truncated", "garbage", "empty"])
def test_mini_imagenet_corrupt_pickle(tmp_path, content):
    write_mini_imagenet(tmp_path)
    path = tmp_path / "mini-imagenet-cache-test.pkl"
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": bytes(range(256)) * 4,
                      "empty": b""}[content])
    with pytest.raises(DataError) as excinfo:
        mini_env(tmp_path)
    assert_data_error(excinfo, path, "download again")


def test_mini_imagenet_wrong_dtype_and_content(tmp_path):
    write_mini_imagenet(tmp_path, dtype=np.float32)
    with pytest.raises(DataError) as excinfo:
        mini_env(tmp_path)
    assert_data_error(excinfo, tmp_path / "mini-imagenet-cache-train.pkl", "uint8", "float32",
                      "download again")
    with open(tmp_path / "mini-imagenet-cache-train.pkl", "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(DataError) as excinfo:
        mini_env(tmp_path)
    assert_data_error(excinfo, tmp_path / "mini-imagenet-cache-train.pkl", "list")


def test_too_few_classes_for_ways(tmp_path):
    write_mini_imagenet(tmp_path)
    with pytest.raises(DataError) as excinfo:
        mini_env(tmp_path, ways=7)
    assert_data_error(excinfo, tmp_path / "mini-imagenet-cache-train.pkl", "7-way", "found 6",
                      "fewer ways")


def test_too_few_examples_for_shots_and_query(tmp_path):
    write_mini_imagenet(tmp_path)
    with pytest.raises(DataError) as excinfo:
        mini_env(tmp_path, shots=10, query=16)
    assert_data_error(excinfo, tmp_path / "mini-imagenet-cache-train.pkl", "25 examples", "26",
                      "lower data.shots or data.query")


def fake_learn2learn(monkeypatch, **classes):
    """Stand-ins for learn2learn's dataset classes, so the download path runs offline and fast."""
    datasets = types.ModuleType("learn2learn.vision.datasets")
    for name, cls in classes.items():
        setattr(datasets, name, cls)
    vision = types.ModuleType("learn2learn.vision")
    vision.datasets = datasets
    package = types.ModuleType("learn2learn")
    package.vision = vision
    for name, module in [("learn2learn", package), ("learn2learn.vision", vision),
                         ("learn2learn.vision.datasets", datasets)]:
        monkeypatch.setitem(sys.modules, name, module)


def test_mini_imagenet_download_that_saved_html(tmp_path, monkeypatch):
    class HtmlDownload:
        def __init__(self, root, mode, download):
            (tmp_path / f"mini-imagenet-cache-{mode}.pkl").write_text(
                "<!doctype html><title>Sign in</title>")
            raise pickle.UnpicklingError("invalid load key, '<'.")
    fake_learn2learn(monkeypatch, MiniImagenet=HtmlDownload)
    with pytest.raises(DataError) as excinfo:
        mini_env(tmp_path, download=True)
    assert_data_error(excinfo, tmp_path / "mini-imagenet-cache-train.pkl", "HTML page")


def test_mini_imagenet_download_then_load(tmp_path, monkeypatch):
    calls = []

    class GoodDownload:
        def __init__(self, root, mode, download):
            calls.append(mode)
            if len(calls) == 1:
                write_mini_imagenet(tmp_path)
    fake_learn2learn(monkeypatch, MiniImagenet=GoodDownload)
    assert len(mini_env(tmp_path, download=True).pools["test"].pool) == 6
    # the other two files arrived with the first call, so no more downloads
    assert calls == ["train"]


# ---- CIFAR-FS: learn2learn's raw tree with split files, or its processed copy ------------------

RAW_SPLITS = {"train": ["apple", "bear", "cloud", "dolphin"], "val": ["eagle", "fox"],
              "test": ["girl", "house", "lamp"]}


def write_png_class(folder, code, n=6, size=32):
    folder.mkdir(parents=True)
    for i in range(n):
        pixels = np.full((size, size, 3), CHANNEL_FILL, dtype=np.uint8)
        pixels[0, 0, 0] = code
        Image.fromarray(pixels).save(folder / f"{folder.name}_{i:03d}.png")


def write_cifar_fs_raw(root):
    base = root / "cifarfs" / "cifar100"
    (base / "splits" / "bertinetto").mkdir(parents=True)
    for split, names in RAW_SPLITS.items():
        (base / "splits" / "bertinetto" / f"{split}.txt").write_text("\n".join(names) + "\n\n")
        for code, name in enumerate(names):
            write_png_class(base / "data" / name, code)
    write_png_class(base / "data" / "unlisted", 99)  # a class in no split file must be ignored


def write_cifar_fs_processed(root):
    for split, names in RAW_SPLITS.items():
        for code, name in enumerate(names):
            write_png_class(root / "cifarfs" / "processed" / split / f"p_{name}", 50 + code)


def cifar_env(root, **data):
    return make_env({"name": "cifar-fs", "ways": 2, "shots": 1, "query": 2, **data}, str(root),
                    seed=0)


def test_cifar_fs_raw_layout(tmp_path):
    write_cifar_fs_raw(tmp_path)
    env = cifar_env(tmp_path)
    assert env.input_shape == (3, 32, 32)
    assert env.pools["train"].pool.names == RAW_SPLITS["train"]
    assert env.pools["validation"].pool.names == RAW_SPLITS["val"]
    episode = env.step()
    assert episode.support_x.shape == (4, 2, 3, 32, 32)
    torch.testing.assert_close(episode.support_x[0, 0, :, 3, 3], torch.tensor(CHANNEL_FILL) / 255.0)
    assert_labels_match_tags(episode)


def test_cifar_fs_processed_layout_preferred(tmp_path):
    write_cifar_fs_raw(tmp_path)
    write_cifar_fs_processed(tmp_path)
    env = cifar_env(tmp_path)
    assert env.pools["test"].pool.names == [f"p_{n}" for n in sorted(RAW_SPLITS["test"])]
    assert int(class_tags(env.step().support_x).min()) >= 50


def test_cifar_fs_processed_only(tmp_path):
    write_cifar_fs_processed(tmp_path)
    assert len(cifar_env(tmp_path).pools["train"].pool) == 4


def test_cifar_fs_download_creates_tree(tmp_path, monkeypatch):
    class FakeCIFARFS:
        def __init__(self, root, mode, download):
            write_cifar_fs_raw(tmp_path)
    fake_learn2learn(monkeypatch, CIFARFS=FakeCIFARFS)
    assert len(cifar_env(tmp_path, download=True).pools["validation"].pool) == 2


def test_cifar_fs_missing_split_file(tmp_path):
    write_cifar_fs_raw(tmp_path)
    missing = tmp_path / "cifarfs" / "cifar100" / "splits" / "bertinetto" / "val.txt"
    missing.unlink()
    with pytest.raises(DataError) as excinfo:
        cifar_env(tmp_path)
    assert_data_error(excinfo, missing, "test.txt", "--data-root")


def test_cifar_fs_missing_everything(tmp_path):
    with pytest.raises(DataError) as excinfo:
        cifar_env(tmp_path)
    assert_data_error(excinfo, tmp_path / "cifarfs", "download: true")


def test_cifar_fs_corrupt_image(tmp_path):
    write_cifar_fs_raw(tmp_path)
    bad = tmp_path / "cifarfs" / "cifar100" / "data" / "fox" / "fox_002.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError) as excinfo:
        cifar_env(tmp_path)
    assert_data_error(excinfo, bad, "not a readable image", "download again")


# ---- Omniglot: torchvision's folder tree -------------------------------------------------------

OMNIGLOT_TREE = {"images_background": {"Zulu": 2, "Alpha": 3, "Mu": 2, "Beta": 3},
                 "images_evaluation": {"Omega": 2}}


def write_omniglot(root, drawings=4):
    """Bilevel 105x105 PNGs, black strokes on white, as in the real files."""
    code = 0
    for image_set, alphabets in OMNIGLOT_TREE.items():
        for alphabet, n_chars in alphabets.items():
            for ch in range(n_chars, 0, -1):
                folder = root / "omniglot-py" / image_set / alphabet / f"character{ch:02d}"
                folder.mkdir(parents=True)
                for i in range(drawings):
                    pixels = np.full((105, 105), 255, dtype=np.uint8)
                    pixels[20:50, 40:65] = 0
                    Image.fromarray(pixels).convert("1").save(
                        folder / f"{code:04d}_{i + 1:02d}.png")
                code += 1


def test_omniglot_tree_loads_sorted_and_inverted(tmp_path):
    write_omniglot(tmp_path)
    pool = load_omniglot_pool(tmp_path)
    assert len(pool) == 12 and pool.image_shape == (1, 28, 28) and pool.counts() == [4] * 12
    assert pool.names == sorted(pool.names[:10]) + sorted(pool.names[10:])
    assert pool.names[0] == "images_background/Alpha/character01" and pool.groups[-1] == "Omega"
    pixels = pool.images.float() / 255
    # strokes are ink = 1
    assert float(pixels.mean()) < 0.5 and float(pixels[:, 0, 8, 12:15].min()) > 0.9


def test_omniglot_through_make_env(tmp_path):
    write_omniglot(tmp_path)
    env = make_env({"name": "omniglot", "ways": 2, "shots": 1, "query": 3, "rotations": "none"},
                   str(tmp_path), 0)
    assert (sorted(sum((env.pools[s].pool.names for s in SPLITS), []))
            == sorted(load_omniglot_pool(tmp_path).names))
    assert env.step().support_x.shape == (4, 2, 1, 28, 28)


def test_omniglot_alphabet_split_too_small_names_the_fix(tmp_path):
    write_omniglot(tmp_path)
    with pytest.raises(DataError) as excinfo:
        make_env({"name": "omniglot", "ways": 4, "shots": 1, "query": 1, "rotations": "none"},
                 str(tmp_path), 0)
    assert_data_error(excinfo, tmp_path / "omniglot-py", "4-way", "split_by: character",
                      "fewer ways")


def test_omniglot_missing(tmp_path):
    with pytest.raises(DataError) as excinfo:
        make_env({"name": "omniglot"}, str(tmp_path), 0)
    assert_data_error(excinfo, tmp_path / "omniglot-py" / "images_background", "download",
                      "--data-root")


# ---- glyphs: one npz ---------------------------------------------------------------------------

def write_glyphs(root, n_classes=9, drawings=5, images=None):
    (root / "glyphs").mkdir()
    if images is None:
        images = np.zeros((n_classes, drawings, 28, 28), dtype=np.uint8)
        images[:, :, 0, 0] = np.arange(n_classes)[:, None]
    n = len(images)
    np.savez(root / "glyphs" / "glyphs.npz", images=images,
             alphabet=(np.arange(n) % 3).astype(np.int16),
             alphabets=np.array(["Aa", "Bb", "Cc"]),
             codepoints=np.arange(0x41, 0x41 + n, dtype=np.int32))


def test_glyphs_npz_and_train_name(tmp_path):
    write_glyphs(tmp_path)
    data = {"name": "glyphs", "ways": 2, "shots": 1, "query": 2, "rotations": "none"}
    env = make_env(data, str(tmp_path), 0)
    assert [len(env.pools[s].pool) for s in SPLITS] == [3, 3, 3]
    assert_labels_match_tags(env.step())
    write_omniglot(tmp_path)
    mixed = make_env({**data, "name": "omniglot", "train_name": "glyphs"}, str(tmp_path), 0)
    assert mixed.pools["train"].pool.names == env.pools["train"].pool.names
    assert mixed.pools["test"].pool.names[0].startswith("images_")


def test_train_extra_adds_its_train_classes_and_leaves_validation_and_test_alone(tmp_path):
    write_glyphs(tmp_path)
    write_omniglot(tmp_path)
    data = {"name": "omniglot", "ways": 2, "shots": 1, "query": 2, "rotations": "none"}
    plain = make_env(data, str(tmp_path), 0)
    glyphs = make_env({**data, "name": "glyphs"}, str(tmp_path), 0)
    joined = make_env({**data, "train_extra": "glyphs"}, str(tmp_path), 0)
    train, own, extra = (e.pools["train"].pool for e in (joined, plain, glyphs))
    assert train.names == own.names + extra.names and len(set(train.names)) == len(train)
    for c in (0, len(own) - 1, len(own), len(train) - 1):   # each class keeps its own images
        source, k = (own, c) if c < len(own) else (extra, c - len(own))
        assert torch.equal(train.images[train.rows[c]], source.images[source.rows[k]])
    for split in ("validation", "test"):
        assert joined.pools[split].pool.names == plain.pools[split].pool.names
        a, b = joined.episodes(split, 0, 3), plain.episodes(split, 0, 3)
        assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_y, b.query_y)
    assert_labels_match_tags(joined.step())
    with pytest.raises(DataError, match="already meta-trains on"):
        make_env({**data, "train_extra": "omniglot"}, str(tmp_path), 0)
    with pytest.raises(DataError, match="regression"):
        make_env({"name": "sinusoid", "train_extra": "glyphs"}, str(tmp_path), 0)


def test_a_class_name_both_pools_use_stays_unique_in_their_union():
    from envs.pool import ClassPool
    a = ClassPool.from_arrays(np.zeros((2, 1, 2, 2), np.uint8), [0, 1], ["x", "y"], origin="A")
    b = ClassPool.from_arrays(np.ones((2, 1, 2, 2), np.uint8), [0, 1], ["y", "z"], origin="B")
    both = a.union(b)
    assert both.names == ["x", "y", "y (B)", "z"] and both.origin == "A + B"
    assert [int(both.images[r].max()) for r in both.rows] == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="differ in shape"):
        a.union(ClassPool.from_arrays(np.zeros((1, 1, 3, 3), np.uint8), [0], ["w"], origin="C"))


def test_glyphs_wrong_shape(tmp_path):
    write_glyphs(tmp_path, images=np.zeros((9, 28, 28), dtype=np.uint8))
    with pytest.raises(DataError) as excinfo:
        make_env({"name": "glyphs"}, str(tmp_path), 0)
    assert_data_error(excinfo, tmp_path / "glyphs" / "glyphs.npz", "(9, 28, 28)",
                      "scripts/build_glyphs.py")


def test_glyphs_corrupt_npz(tmp_path):
    (tmp_path / "glyphs").mkdir()
    (tmp_path / "glyphs" / "glyphs.npz").write_bytes(b"PK\x03\x04 broken zip")
    with pytest.raises(DataError) as excinfo:
        make_env({"name": "glyphs"}, str(tmp_path), 0)
    assert_data_error(excinfo, tmp_path / "glyphs" / "glyphs.npz", "not a readable npz")
