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
    lines = [line for line in (PRESETS / f"{preset}.yaml").read_text().splitlines()
             if line.startswith("iterations:")]
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
    assert CITATION.search(comment), (f"{preset}.yaml: no citation (Author et al. YEAR) "
                                      f"in {comment!r}")


def test_make_run_passes_iterations_explicitly():
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"run\s*:", line))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line)
    commands = [line for line in recipe if "run.py" in line]
    assert commands, "the run target must call run.py"
    assert all(re.search(r"--iterations[ =]\d+", c) for c in commands), commands


def test_benchmark_protocol_file_applies_the_published_protocol_to_any_dataset():
    """configs/protocols/benchmark.yaml: CNN4, meta-batch 4, 5 training / 10 test steps, 15
    queries, 60,000 iterations, 600 test episodes, over the Omniglot presets' own protocol."""
    protocol = str(ROOT / "configs" / "protocols" / "benchmark.yaml")
    for problem in ("maml", "imaml", "fomaml", "anil"):
        fast = load_options(problem, "omniglot5w1s")
        cfg = load_options(problem, "omniglot5w1s", config_file=protocol)
        assert (cfg.data.meta_batch, cfg.inner.steps, cfg.eval.steps) == (4, 5, 10), problem
        assert cfg.data.train_query is None and cfg.data.query == 15
        assert (cfg.iterations, cfg.eval.episodes, cfg.model.backbone) == (60000, 600, "cnn4")
        assert cfg.outer.lr == 0.001 and cfg.inner.lr == fast.inner.lr
    assert load_options("maml", "omniglot5w1s").data.meta_batch == 32   # the preset differs
    reptile = load_options("reptile", "omniglot5w1s", config_file=protocol)
    assert (reptile.outer.optimizer, reptile.outer.lr) == ("sgd", 1.0)  # its own outer step
    mini = load_options("maml", "mini5shot")
    assert load_options("maml", "mini5shot", config_file=protocol).to_dict() == mini.to_dict()
