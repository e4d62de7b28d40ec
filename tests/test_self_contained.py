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
    # the README, or a page it links to in docs/, says how to get the data without ../shared
    readme = "\n".join(p.read_text()
                       for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    assert "scripts/build_glyphs.py" in readme and "data.download=true" in readme


def test_the_readme_is_short_and_its_docs_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250, "README.md over 250 lines: move the detail into docs/"
    links = re.findall(r"\]\((docs/[^)#\s]*)(?:#[^)\s]*)?\)", readme)
    assert {"docs/usage.md", "docs/results.md", "docs/compare.md"} <= set(links)
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert not missing, f"README links to missing files: {missing}"


def test_the_docs_pages_relative_links_resolve():
    broken = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)", page.read_text()):
            if "://" not in link and not (page.parent / link).exists():
                broken.append(f"{page.name}: {link}")
    assert not broken, "\n".join(broken)
