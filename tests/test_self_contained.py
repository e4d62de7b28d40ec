"""A clone without ../shared is complete: the design page and the data builders are in the
repository, and nothing in it sends the reader (or the code) to files outside it."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = re.compile(r"\.\./shared/(DESIGN|tools)|(?<![\w/])DESIGN\.md")


def project_files():
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if path.is_file() and path.suffix in {".py", ".sh", ".md", ".yaml"} and not any(
                p.startswith(".") or p in {"runs", "data", "__pycache__"} for p in parts):
            yield path


def test_nothing_points_outside_the_repository():
    offenders = []
    for path in project_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for match in OUTSIDE.finditer(line):
                # "DESIGN.md" alone is fine when it is the repository's own docs/DESIGN.md
                if match.group(0) == "DESIGN.md" and "docs/DESIGN.md" in line:
                    continue
                if path == Path(__file__).resolve():
                    continue
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_design_page_and_the_glyph_builder_are_shipped():
    assert (ROOT / "docs" / "DESIGN.md").stat().st_size > 2000
    assert (ROOT / "scripts" / "build_glyphs.py").is_file()
    readme = (ROOT / "README.md").read_text()
    assert "scripts/build_glyphs.py" in readme and "data.download=true" in readme
