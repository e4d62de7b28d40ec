#!/usr/bin/env python
"""Build the glyph pool: an Omniglot-like set of letter classes rendered from the fonts this
machine has, one alphabet per Unicode script, written as the .npz that envs/glyphs.py reads.

    python scripts/build_glyphs.py                               # -> data/glyphs/glyphs.npz
    python scripts/build_glyphs.py --out ../shared/datasets/glyphs/glyphs.npz --per-class 20
    python scripts/build_glyphs.py --max-alphabets 3 --max-classes 10                 # quick
    python scripts/build_glyphs.py --fonts /path/to/fonts --fonts extra.ttf           # own fonts

Fonts: .ttf/.otf/.ttc/.otc files under /usr/share/fonts, /usr/local/share/fonts, ~/.fonts,
~/.local/share/fonts and whatever `fc-list` reports (or only the --fonts given). More fonts
give more scripts and more varied renders; on Debian/Ubuntu e.g. `apt-get install fonts-noto-core`.

What counts as a letter (one class): a code point of category Lu, Ll or Lo whose Unicode name
reads "<SCRIPT> ... LETTER|SYLLABLE|CHARACTER|IDEOGRAPH|SIGN ..." (the script words name the
alphabet), at most --max-classes (default 100) per alphabet, a seeded random choice. Left out:
code points with a decomposition (accented and compatibility forms),
names with "WITH" (hooked, stroked, ... variants), lower-case letters whose capital exists (one
class per letter, as Omniglot has no case), and letters whose clean render nearly equals one
already kept in the same alphabet (--dedupe). A font covers a letter only when its cmap table
maps it to a real glyph (not glyph 0, .notdef) and the render has ink and differs from that
font's .notdef box.

Each class is rendered --per-class times, every time by a font that covers it (picked at
random), with a random stroke width, affine jitter (rotation, shear, scale, shift) and a small
smooth elastic warp, at 3x resolution and box-downsampled to 28x28 uint8 with ink = 255. All
randomness comes from --seed; a class's renders depend only on (seed, code point, its fonts).

Output arrays: images uint8 [C, K, 28, 28], alphabet int16 [C] (index into alphabets),
alphabets str [A], codepoints int32 [C], fonts str [F] (file names) and font_idx int16 [C, K]
(which font drew each render). A preview.png is written beside the archive.

Needs only numpy and Pillow (with FreeType), both in the project's requirements.
"""
from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
SIZE = 28           # output side, pixels
SUPER = 3           # render at SUPER x SIZE, then box-downsample
FONT_PX = 66        # font size at the high resolution (cap height ~ 0.55 of the canvas)
FIT = 0.82          # a glyph larger than this fraction of the canvas is scaled down to fit
MIN_INK = 12        # high-resolution ink pixels a render needs to count as a glyph
KEYWORDS = ("LETTER", "SYLLABLE", "CHARACTER", "IDEOGRAPH", "SIGN", "SYLLABICS", "HIEROGLYPH")
KEPT_KEYWORDS = {"SYLLABICS": "Syllabics", "HIEROGLYPH": "Hieroglyphs"}  # part of the script name
# descriptive words between the script and the keyword ("LAO VOWEL SIGN AM" is Lao)
DROPPED_WORDS = {"CAPITAL", "SMALL", "VOWEL", "SEMIVOWEL", "CONSONANT", "INDEPENDENT", "FINAL",
                 "MEDIAL", "INITIAL", "EPIGRAPHIC"}
NOT_SCRIPTS = {"MODIFIER", "MATHEMATICAL", "FULLWIDTH", "HALFWIDTH", "CIRCLED", "PARENTHESIZED",
               "SQUARED", "NEGATIVE", "SUPERSCRIPT", "SUBSCRIPT", "TAG", "COMBINING"}
RENAMED = {"CjkUnified": "Han", "CjkCompatibility": "Han"}
INSTALL_FONTS = ("install fonts (e.g. `apt-get install fonts-dejavu-core fonts-noto-core`) "
                 "or pass --fonts DIR_OR_FILE")


class BuildError(RuntimeError):
    """Something the user can fix; main() prints it as one line."""


# ---- which letters exist, and which script each belongs to --------------------------------

@lru_cache(maxsize=None)
def script_of(cp: int) -> str | None:
    """The alphabet (CamelCase script name) a code point counts in, or None if it is no class."""
    ch = chr(cp)
    category = unicodedata.category(ch)
    if category not in ("Lu", "Ll", "Lo") or unicodedata.decomposition(ch):
        return None
    if category == "Ll":
        upper = ch.upper()
        if len(upper) == 1 and upper != ch and unicodedata.category(upper) == "Lu":
            return None  # the capital is the class
    words = unicodedata.name(ch, "").split()
    if "WITH" in words:
        return None
    for i, word in enumerate(words):
        key = word.split("-")[0]  # CJK UNIFIED IDEOGRAPH-4E00, NUSHU CHARACTER-1B170
        if key in KEYWORDS:
            head = [w for w in words[:i] if w not in DROPPED_WORDS]
            if not head or head[0] in NOT_SCRIPTS:
                return None
            name = "".join(w.capitalize() for w in head) + KEPT_KEYWORDS.get(key, "")
            return RENAMED.get(name, name)
    return None


# ---- fonts: finding them and reading which code points they map ----------------------------

@dataclass
class Face:
    path: Path
    index: int                      # face number inside a .ttc/.otc collection
    covered: set[int] = field(default_factory=set)

    @property
    def label(self) -> str:
        return self.path.name if self.index == 0 else f"{self.path.name}#{self.index}"


def default_font_dirs() -> list[Path]:
    home = Path.home()
    data_home = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), home / ".fonts",
            data_home / "fonts"]


def fc_list_files() -> list[Path]:
    """Font files fontconfig knows of ([] when fc-list is absent or fails)."""
    if shutil.which("fc-list") is None:
        return []
    try:
        out = subprocess.run(["fc-list", "--format", "%{file}\n"], capture_output=True,
                             text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [Path(line) for line in out.splitlines() if line.strip()]


def font_files(sources: list[Path] | None) -> tuple[list[Path], str]:
    """Font files under `sources` (files or folders), or in the system's usual places.
    Returns the sorted, de-duplicated files and a phrase saying where they were looked for."""
    searched = list(sources) if sources else default_font_dirs()
    for src in sources or ():
        if not src.exists():
            raise BuildError(f"--fonts {src} does not exist; pass a font file or a folder of fonts")
    candidates: list[Path] = []
    for src in searched:
        if src.is_file():
            candidates.append(src)
        elif src.is_dir():
            candidates.extend(p for p in src.rglob("*") if p.is_file())
    if not sources:
        candidates.extend(fc_list_files())
        where = ", ".join(map(str, searched)) + " and fc-list"
    else:
        where = ", ".join(map(str, searched))
    unique = {}
    for p in candidates:
        if p.suffix.lower() in FONT_SUFFIXES and p.is_file():
            unique.setdefault(p.resolve(), p)
    return sorted(unique.values(), key=lambda p: (p.name, str(p))), where


def _u16(data: bytes, at: int) -> int:
    return struct.unpack_from(">H", data, at)[0]


def _u32(data: bytes, at: int) -> int:
    return struct.unpack_from(">I", data, at)[0]


def face_offsets(data: bytes) -> list[int]:
    """Where each face's table directory starts (one for a plain font, several for a collection)."""
    if data[:4] == b"ttcf":
        return [_u32(data, 12 + 4 * i) for i in range(_u32(data, 8))]
    if data[:4] in (b"\x00\x01\x00\x00", b"OTTO", b"true"):
        return [0]
    return []


def cmap_codepoints(data: bytes, offset: int) -> set[int]:
    """Code points the face's Unicode cmap subtables map to a glyph other than 0 (.notdef)."""
    tables = {data[offset + 12 + 16 * i: offset + 16 + 16 * i]: _u32(data, offset + 20 + 16 * i)
              for i in range(_u16(data, offset + 4))}
    cmap = tables.get(b"cmap")
    if cmap is None:
        return set()
    covered: set[int] = set()
    seen = set()
    for i in range(_u16(data, cmap + 2)):
        platform, encoding = _u16(data, cmap + 4 + 8 * i), _u16(data, cmap + 6 + 8 * i)
        sub = cmap + _u32(data, cmap + 8 + 8 * i)
        unicode = platform == 0 or (platform == 3 and encoding in (1, 10))
        if not unicode or sub in seen:
            continue  # Mac Roman and Windows symbol tables do not speak Unicode
        seen.add(sub)
        fmt = _u16(data, sub)
        if fmt == 4:
            covered |= _cmap_format4(data, sub)
        elif fmt == 12:
            covered |= _cmap_format12(data, sub)
        elif fmt == 6:
            first, count = _u16(data, sub + 6), _u16(data, sub + 8)
            covered |= {first + j for j in range(count) if _u16(data, sub + 10 + 2 * j)}
        # format 13 (many code points to one glyph) is how last-resort fonts draw boxes: skipped
    return covered


def _cmap_format4(data: bytes, sub: int) -> set[int]:
    segments = _u16(data, sub + 6) // 2
    ends, starts = sub + 14, sub + 16 + 2 * segments
    deltas, range_offsets = starts + 2 * segments, starts + 4 * segments
    covered = set()
    for s in range(segments):
        start, end = _u16(data, starts + 2 * s), _u16(data, ends + 2 * s)
        delta = _u16(data, deltas + 2 * s)
        where = range_offsets + 2 * s
        range_offset = _u16(data, where)
        for cp in range(start, min(end, 0xFFFE) + 1):
            if range_offset == 0:
                glyph = (cp + delta) & 0xFFFF
            else:
                glyph = _u16(data, where + range_offset + 2 * (cp - start))
                glyph = (glyph + delta) & 0xFFFF if glyph else 0
            if glyph:
                covered.add(cp)
    return covered


def _cmap_format12(data: bytes, sub: int) -> set[int]:
    covered = set()
    for g in range(_u32(data, sub + 12)):
        start, end, glyph = struct.unpack_from(">III", data, sub + 16 + 12 * g)
        end = min(end, 0x10FFFF)
        first = start + (1 if glyph == 0 else 0)  # glyph 0 is .notdef
        covered.update(range(first, end + 1))
    return covered


def read_faces(paths: list[Path]) -> list[Face]:
    """Every face of every readable font file, with the letters its cmap covers."""
    faces = []
    for path in paths:
        try:
            data = path.read_bytes()
            for index, offset in enumerate(face_offsets(data)):
                letters = {cp for cp in cmap_codepoints(data, offset) if script_of(cp)}
                if letters:
                    faces.append(Face(path, index, letters))
        except (OSError, struct.error, IndexError):
            continue  # unreadable or truncated: not a usable font
    return faces


# ---- rendering -----------------------------------------------------------------------------

class Renderer:
    """Clean high-resolution renders of one face, with its .notdef box to compare against."""

    def __init__(self, face: Face):
        from PIL import ImageFont
        self.face = face
        self.font = ImageFont.truetype(str(face.path), FONT_PX, index=face.index,
                                       layout_engine=ImageFont.Layout.BASIC)
        self.notdef = self._raw(chr(0xFFFF))  # a non-character: always drawn as .notdef

    def _raw(self, ch: str):
        """The glyph's ink, cropped to its bounding box, as a float array in [0, 1] (or None)."""
        import numpy as np
        from PIL import Image, ImageDraw
        try:
            left, top, right, bottom = self.font.getbbox(ch)
        except (OSError, ValueError):  # FreeType cannot draw this glyph at this size
            return None
        if right <= left or bottom <= top:
            return None
        img = Image.new("L", (right - left + 4, bottom - top + 4), 0)
        ImageDraw.Draw(img).text((2 - left, 2 - top), ch, font=self.font, fill=255)
        box = img.getbbox()
        if box is None:
            return None
        ink = np.asarray(img.crop(box), dtype=np.float32) / 255.0
        return ink if (ink > 0.5).sum() >= MIN_INK else None

    def glyph(self, cp: int):
        """The letter's ink, or None when the face draws nothing or its .notdef box."""
        import numpy as np
        ink = self._raw(chr(cp))
        if ink is None:
            return None
        if (self.notdef is not None and ink.shape == self.notdef.shape
                and np.array_equal(ink, self.notdef)):
            return None
        return ink


def place(ink, canvas: int):
    """Centre a cropped glyph on a square canvas, scaling it down if it would not fit."""
    import numpy as np
    from PIL import Image
    h, w = ink.shape
    limit = FIT * canvas
    if max(h, w) > limit:
        scale = limit / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        ink = np.asarray(Image.fromarray(ink.astype(np.float32)).resize(size, Image.BILINEAR))
        h, w = ink.shape
    out = np.zeros((canvas, canvas), dtype=np.float32)
    top, left = (canvas - h) // 2, (canvas - w) // 2
    out[top:top + h, left:left + w] = np.clip(ink, 0.0, 1.0)
    return out


def downsample(hi):
    """Box-average SUPER x SUPER blocks: [..., SIZE*SUPER, SIZE*SUPER] -> [..., SIZE, SIZE]."""
    return hi.reshape(*hi.shape[:-2], SIZE, SUPER, SIZE, SUPER).mean(axis=(-3, -1))


def stroke(ink, rng):
    """Thinner, unchanged or bolder strokes (grey-level erosion or dilation)."""
    import numpy as np
    from PIL import Image, ImageFilter
    choice = rng.choice([-1, 0, 0, 0, 1, 1])
    if choice == 0:
        return ink
    img = Image.fromarray((ink * 255).astype(np.uint8))
    pad = 3  # room for the strokes to grow
    img = img.crop((-pad, -pad, img.width + pad, img.height + pad))
    if choice < 0:
        thin = np.asarray(img.filter(ImageFilter.MinFilter(3)), dtype=np.float32) / 255.0
        if (thin > 0.5).sum() >= 0.5 * (ink > 0.5).sum():  # do not erase light fonts
            return thin
        return np.asarray(img, dtype=np.float32) / 255.0
    grown = img.filter(ImageFilter.MaxFilter(2 * choice + 1))
    return np.asarray(grown, dtype=np.float32) / 255.0


def warp(canvas, rng):
    """Affine jitter plus a smooth random displacement field, by bilinear resampling."""
    import numpy as np
    from PIL import Image
    n = canvas.shape[0]
    centre = (n - 1) / 2.0
    angle = np.deg2rad(rng.uniform(-12, 12))
    shear = rng.uniform(-0.22, 0.22)
    scale = rng.uniform(0.82, 1.08) * np.exp(rng.uniform(-0.08, 0.08, size=2))
    shift = rng.uniform(-1.5, 1.5, size=2) * SUPER
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    forward = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag(scale)
    inverse = np.linalg.inv(forward)
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32)
    dx, dy = xs - centre - shift[0], ys - centre - shift[1]
    src_x = inverse[0, 0] * dx + inverse[0, 1] * dy + centre
    src_y = inverse[1, 0] * dx + inverse[1, 1] * dy + centre
    for grid in (src_x, src_y):  # elastic: coarse noise, smoothly upsampled
        coarse = rng.normal(0.0, 0.9 * SUPER, size=(4, 4)).astype(np.float32)
        grid += np.asarray(Image.fromarray(coarse).resize((n, n), Image.BICUBIC))
    return bilinear(canvas, src_x, src_y)


def bilinear(image, x, y):
    """image sampled at float coordinates (x, y), zero outside."""
    import numpy as np
    n_rows, n_cols = image.shape
    padded = np.zeros((n_rows + 2, n_cols + 2), dtype=image.dtype)
    padded[1:-1, 1:-1] = image
    x = np.clip(x + 1, 0, n_cols)  # padded coordinates; beyond the edge reads zeros
    y = np.clip(y + 1, 0, n_rows)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, n_cols + 1), np.minimum(y0 + 1, n_rows + 1)
    fx, fy = x - x0, y - y0
    top = padded[y0, x0] * (1 - fx) + padded[y0, x1] * fx
    bottom = padded[y1, x0] * (1 - fx) + padded[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def render_class(ink_of, n_fonts: int, per_class: int, rng):
    """per_class distorted 28x28 uint8 renders, each by one of the n_fonts fonts that draw the
    class (ink_of(i): font i's clean glyph), and which font drew each."""
    import numpy as np
    canvas = SIZE * SUPER
    images = np.empty((per_class, SIZE, SIZE), dtype=np.uint8)
    which = rng.integers(n_fonts, size=per_class)
    inks = {int(i): ink_of(int(i)) for i in np.unique(which)}
    for k in range(per_class):
        hi = warp(place(stroke(inks[int(which[k])], rng), canvas), rng)
        images[k] = np.clip(np.rint(downsample(hi) * 255.0), 0, 255).astype(np.uint8)
    return images, which


# ---- the build -----------------------------------------------------------------------------

@dataclass
class Letter:
    alphabet: str
    codepoint: int
    faces: list[int]       # indices into the face list: the fonts that really draw it


def collect_alphabets(faces: list[Face]) -> dict[str, dict[int, list[int]]]:
    """alphabet -> code point -> faces whose cmap covers it."""
    alphabets: dict[str, dict[int, list[int]]] = {}
    for f, face in enumerate(faces):
        for cp in face.covered:
            alphabets.setdefault(script_of(cp), {}).setdefault(cp, []).append(f)
    return alphabets


def choose_letters(name, candidates, renderers, args, rng) -> tuple[list[Letter], int, int]:
    """Letters of one alphabet that some font really draws, near-duplicates dropped, at most
    --max-classes of them (a seeded random choice). Also returns how many candidates no font
    drew and how many were dropped as near-duplicates."""
    import numpy as np
    order = sorted(candidates)
    order = [order[i] for i in rng.permutation(len(order))]
    kept: list[Letter] = []
    signatures = np.empty((16, SIZE * SIZE), dtype=np.float32)  # clean renders kept, unit norm
    undrawn = duplicates = 0
    for cp in order:
        if args.max_classes and len(kept) >= args.max_classes:
            break
        faces, first = [], None
        for f in candidates[cp]:
            ink = renderers[f].glyph(cp)
            if ink is not None:
                faces.append(f)
                first = ink if first is None else first
        if not faces:
            undrawn += 1
            continue
        clean = downsample(place(first, SIZE * SUPER)).ravel()
        clean = clean / (np.linalg.norm(clean) + 1e-8)
        if (kept and args.dedupe < 1.0
                and float(np.max(signatures[:len(kept)] @ clean)) > args.dedupe):
            duplicates += 1
            continue
        if len(kept) == len(signatures):
            signatures = np.concatenate([signatures, np.empty_like(signatures)])
        signatures[len(kept)] = clean
        kept.append(Letter(name, cp, faces))
    return sorted(kept, key=lambda letter: letter.codepoint), undrawn, duplicates


def build(args) -> dict:
    import numpy as np
    start = time.perf_counter()
    out = archive_path(args.out)
    files, where = font_files(args.fonts)
    faces = read_faces(files)
    renderers, usable = [], []
    for face in faces:
        try:
            renderers.append(Renderer(face))
            usable.append(face)
        except (OSError, ValueError):
            continue  # FreeType cannot open it (e.g. a bitmap-only or colour-bitmap font)
    if not usable:
        found = (f"{len(files)} font files there, none with letters FreeType can draw" if files
                 else f"no {'/'.join(FONT_SUFFIXES)} files")
        raise BuildError(f"no usable fonts: {found} (searched {where}); {INSTALL_FONTS}")
    faces = usable
    alphabets = collect_alphabets(faces)
    print(f"fonts: {len(faces)} faces from {len(files)} files; {len(alphabets)} scripts with "
          f"{sum(len(c) for c in alphabets.values())} candidate letters", flush=True)

    # Largest scripts first, so --max-alphabets keeps the ones with the most letters.
    order = sorted(alphabets, key=lambda a: (-len(alphabets[a]), a))
    chosen: list[list[Letter]] = []
    for i, name in enumerate(order):
        if args.max_alphabets and len(chosen) >= args.max_alphabets:
            break
        rng = np.random.default_rng(np.random.SeedSequence([args.seed, 1, *name.encode()]))
        letters, undrawn, duplicates = choose_letters(name, alphabets[name], renderers, args, rng)
        if len(letters) >= args.min_classes:
            chosen.append(letters)
        status = (f"{len(letters)} letters kept of {len(alphabets[name])} in the fonts' cmaps "
                  f"({undrawn} not drawn, {duplicates} near-duplicates)")
        if len(letters) < args.min_classes:
            status += f"; fewer than --min-classes {args.min_classes}: skipped"
        print(f"[{i + 1}/{len(order)}] {name}: {status}", flush=True)
    if not chosen:
        raise BuildError(f"the fonts found ({where}) draw no script with at least --min-classes "
                         f"{args.min_classes} letters; lower --min-classes or {INSTALL_FONTS}")

    chosen.sort(key=lambda letters: letters[0].alphabet)
    letters = [letter for group in chosen for letter in group]
    names = [group[0].alphabet for group in chosen]
    total = len(letters)
    images = np.empty((total, args.per_class, SIZE, SIZE), dtype=np.uint8)
    font_idx = np.empty((total, args.per_class), dtype=np.int16)
    used_faces = sorted({f for letter in letters for f in letter.faces})
    face_slot = {f: s for s, f in enumerate(used_faces)}
    last = time.perf_counter()
    for c, letter in enumerate(letters):
        rng = np.random.default_rng(np.random.SeedSequence([args.seed, 2, letter.codepoint]))
        images[c], which = render_class(
            lambda i, letter=letter: renderers[letter.faces[i]].glyph(letter.codepoint),
            len(letter.faces), args.per_class, rng)
        font_idx[c] = [face_slot[letter.faces[w]] for w in which]
        now = time.perf_counter()
        if now - last > 2.0 or c + 1 == total:
            last = now
            print(f"rendering: {c + 1}/{total} classes ({now - start:.1f} s)", flush=True)

    arrays = {
        "images": images,
        "alphabet": np.array([names.index(letter.alphabet) for letter in letters], dtype=np.int16),
        "alphabets": np.array(names),
        "codepoints": np.array([letter.codepoint for letter in letters], dtype=np.int32),
        "fonts": np.array([faces[f].label for f in used_faces]),
        "font_idx": font_idx,
    }
    write_archive(out, arrays)
    if args.preview:
        write_preview(out.with_name("preview.png"), arrays)
    print(f"wrote {out}: {total} classes in {len(names)} alphabets, {args.per_class} renders each, "
          f"{len(used_faces)} fonts ({time.perf_counter() - start:.1f} s)", flush=True)
    return arrays


def archive_path(out: Path) -> Path:
    """--out as the .npz file to write (a folder gets glyphs.npz inside it)."""
    if out.is_dir():
        out = out / "glyphs.npz"
    if out.suffix != ".npz":
        raise BuildError(f"--out {out} must name a .npz file "
                         "(the loader reads <data root>/glyphs/glyphs.npz)")
    return out


def write_archive(out: Path, arrays: dict) -> None:
    """Write atomically: a crash mid-write leaves any previous archive intact."""
    import numpy as np
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, out)


def write_preview(path: Path, arrays: dict, per_alphabet: int = 16, rows: int = 40) -> None:
    """One row per alphabet (up to `rows`): the first render of its first classes."""
    import numpy as np
    from PIL import Image
    alphabet, images = arrays["alphabet"], arrays["images"]
    shown = range(min(rows, len(arrays["alphabets"])))
    sheet = np.zeros((len(shown) * SIZE, per_alphabet * SIZE), dtype=np.uint8)
    for r in shown:
        classes = np.flatnonzero(alphabet == r)[:per_alphabet]
        for j, c in enumerate(classes):
            sheet[r * SIZE:(r + 1) * SIZE, j * SIZE:(j + 1) * SIZE] = images[c, 0]
    Image.fromarray(255 - sheet).save(path)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("data/glyphs/glyphs.npz"),
                   help="archive to write (default data/glyphs/glyphs.npz, under the default "
                        "data root)")
    p.add_argument("--fonts", type=Path, action="append",
                   help="a font file or folder to use instead of the system's (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seeds every random choice (default 0)")
    p.add_argument("--per-class", type=positive, default=20, help="renders per class (default 20)")
    p.add_argument("--max-classes", type=non_negative, default=100,
                   help="at most this many classes per alphabet, a seeded random choice "
                        "(default 100; 0: all)")
    p.add_argument("--max-alphabets", type=non_negative, default=0,
                   help="keep only this many alphabets, the largest first (default 0: all)")
    p.add_argument("--min-classes", type=positive, default=5,
                   help="drop alphabets with fewer letters than this (default 5)")
    p.add_argument("--dedupe", type=float, default=0.95,
                   help="drop a letter whose clean render has cosine similarity above this with "
                        "one already kept in its alphabet (default 0.95; 1: keep all)")
    p.add_argument("--no-preview", dest="preview", action="store_false",
                   help="do not write preview.png beside the archive")
    return p


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def check_dependencies() -> None:
    try:
        import numpy  # noqa: F401
        from PIL import features
    except ImportError as err:
        raise BuildError(f"build_glyphs.py needs numpy and Pillow ({err}); install them with "
                         f"`pip install numpy pillow`, or run it with the project's "
                         f".venv/bin/python") from None
    if not features.check("freetype2"):
        raise BuildError("this Pillow was built without FreeType, so it cannot draw fonts; install "
                         "a Pillow wheel from PyPI (`pip install --force-reinstall pillow`)")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        check_dependencies()
        build(args)
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
