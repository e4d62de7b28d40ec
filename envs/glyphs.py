"""Glyphs: an Omniglot-like pool rendered from fonts (scripts/build_glyphs.py), split by script.

An extra meta-training pool, never a stand-in for Omniglot's benchmark numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DataError
from .held_out import held_out_samplers
from .paths import require
from .pool import ClassPool
from .readers import read_npz

NAME = "glyphs"
FIX = ("build it with `python scripts/build_glyphs.py --out <data root>/glyphs/glyphs.npz` "
       "or pass --data-root to the folder holding glyphs/")


def load_glyph_pool(root: Path) -> ClassPool:
    """All glyph classes as one pool; group = script (alphabet) name, ink = 255."""
    path = require(root / "glyphs" / "glyphs.npz", NAME, "the glyph archive glyphs.npz", FIX)
    arrays = read_npz(path, NAME, ("images", "alphabet", "alphabets", "codepoints"))
    images, alphabet = arrays["images"], arrays["alphabet"]
    alphabets, codepoints = arrays["alphabets"], arrays["codepoints"]
    n = images.shape[0] if images.ndim else 0
    if (images.dtype != np.uint8 or images.ndim != 4 or alphabet.shape != (n,)
            or codepoints.shape != (n,)):
        raise DataError(f"{NAME}: {path} holds images {images.dtype} {images.shape} with alphabet "
                        f"{alphabet.shape}, codepoints {codepoints.shape}; expected uint8 "
                        f"[classes, drawings, H, W] with one alphabet and codepoint per class; "
                        f"{FIX}")
    if n and (alphabet.min() < 0 or alphabet.max() >= len(alphabets)):
        raise DataError(f"{NAME}: {path} has alphabet indices outside "
                        f"0..{len(alphabets) - 1}; {FIX}")
    per_class = images.shape[1]
    names = [f"{alphabets[a]}/U+{int(cp):04X}" for a, cp in zip(alphabet, codepoints)]
    groups = [str(alphabets[a]) for a in alphabet]
    flat = images.reshape(n * per_class, 1, *images.shape[2:])
    labels = np.repeat(np.arange(n), per_class)
    return ClassPool.from_arrays(flat, labels, names, groups, origin=f"{NAME} at {path}")


def load_glyphs(root: Path, options):
    return held_out_samplers(load_glyph_pool(root), options, NAME)
