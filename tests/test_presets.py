"""Dataset presets carry the meta-iteration budget of the paper whose protocol they follow, each
with a comment citing where the number comes from; `make run` keeps its own short budget.
Config reading only: nothing here trains."""
import re
from pathlib import Path

import pytest
import yaml

from configs import available_datasets, available_problems
from problems.options import load_options

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "configs" / "datasets"

#: preset -> the budget its comment cites (see each file for the source).
BUDGETS = {
    "sinusoid": 70000,       # Finn et al. 2017: the authors' code (not stated in the paper)
    "omniglot5w1s": 60000,   # Finn et al. 2017, Appendix A.1
    "omniglot5w5s": 60000,
    "omniglot20w1s": 60000,
    "omniglot20w5s": 60000,
    "glyphs5w1s": 60000,     # Omniglot's protocol: glyphs is no paper's benchmark
    "glyphs20w1s": 60000,
    "mini1shot": 60000,      # Finn et al. 2017, Appendix A.1
    "mini5shot": 60000,
    "cifarfs1shot": 60000,   # mini-ImageNet's budget; none confirmed in Bertinetto et al. 2019
    "cifarfs5shot": 60000,
}
CITATION = re.compile(r"[A-Z][A-Za-z-]+ et al\.? (19|20)\d\d")


def global_default() -> int:
    return yaml.safe_load((ROOT / "configs" / "defaults.yaml").read_text())["iterations"]


def iterations_line(preset: str) -> str:
    lines = [l for l in (PRESETS / f"{preset}.yaml").read_text().splitlines()
             if l.startswith("iterations:")]
    assert len(lines) == 1, f"{preset}.yaml must set iterations exactly once at the top level"
    return lines[0]


def test_every_preset_has_a_budget_here():
    assert sorted(BUDGETS) == available_datasets()


@pytest.mark.parametrize("preset", sorted(BUDGETS))
def test_preset_sets_its_papers_budget_for_every_problem(preset):
    assert BUDGETS[preset] != global_default()
    for problem in available_problems():
        assert load_options(problem, preset).iterations == BUDGETS[preset], (problem, preset)


def test_iterations_flag_still_wins_over_the_preset():
    assert load_options("imaml", "mini5shot", values={"iterations": 300}).iterations == 300


@pytest.mark.parametrize("preset", sorted(BUDGETS))
def test_iterations_line_cites_its_source(preset):
    line = iterations_line(preset)
    value, sep, comment = line.partition("#")
    assert sep, f"{preset}.yaml: the iterations line needs a comment citing the paper"
    assert int(value.split(":", 1)[1]) == BUDGETS[preset]
    assert CITATION.search(comment), f"{preset}.yaml: no citation (Author et al. YEAR) in {comment!r}"


def test_make_run_passes_iterations_explicitly():
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, l in enumerate(lines) if re.match(r"run\s*:", l))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line)
    commands = [l for l in recipe if "run.py" in l]
    assert commands, "the run target must call run.py"
    assert all(re.search(r"--iterations[ =]\d+", c) for c in commands), commands
