"""The benchmark scripts' own arithmetic (no timings): FLOPs counted exactly, thread settings
parsed, and the committed results rendered into the README's tables."""
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_flops_are_counted_exactly():
    from benchmarks.peak import count_flops
    a, b = torch.randn(64, 32), torch.randn(32, 16)
    assert count_flops(lambda: torch.mm(a, b)) == 2 * 64 * 32 * 16
    x, w = torch.randn(3, 4, 10, 10), torch.randn(5, 4, 3, 3)
    assert (count_flops(lambda: torch.nn.functional.conv2d(x, w, padding=1))
            == 2 * 3 * 5 * 4 * 9 * 100)


def test_thread_settings():
    from benchmarks.harness import thread_settings
    assert thread_settings("2,1,2") == [1, 2]
    assert thread_settings("")[0] == 1


def test_committed_results_render_every_table():
    from benchmarks.table import (evaluation_tables, memory_tables, profile_tables, read,
                                  speed_tables)
    rows = read(ROOT / "benchmarks" / "results")
    text = "\n".join(speed_tables(rows) + evaluation_tables(rows) + memory_tables(rows)
                     + profile_tables(rows))
    for needle in ("GEMM 2048³", "maml/l2l-maml", "of conv peak", "speedup vs l2l", "K=50",
                   "Where one maml meta-iteration's time goes"):
        assert needle in text, needle


# ---- time to accuracy (benchmarks/time_to_accuracy.py) -------------------------------------
def _curve(*points):
    return [{"cpu_seconds": s, "iteration": i, "mean": m, "ci95": 0.01} for s, i, m in points]


def test_time_to_accuracy_reads_each_curve_at_a_budget():
    from benchmarks.time_to_accuracy import marks_within, seconds_to_reach, value_at
    assert marks_within(5) == [60.0, 120.0, 180.0, 300.0]
    assert marks_within(0.1) == [6.0]
    curve = _curve((60, 10, 0.5), (300, 50, 0.8), (900, 150, 0.9))
    assert value_at(curve, 300.0)["mean"] == 0.8       # a validation at the budget
    half = value_at(curve, 180.0)                      # halfway between two validations
    assert abs(half["mean"] - 0.65) < 1e-12 and half["iteration"] == 30
    assert value_at(curve, 30.0) is None               # before the first validation
    assert value_at(curve, 3600.0, extent=900.0) is None  # not trained that long
    assert value_at(curve, 3600.0)["mean"] == 0.9      # stopped on its own: holds its last value
    assert seconds_to_reach(curve, 0.8) == 300
    assert seconds_to_reach(curve, 0.95) is None


def test_time_to_accuracy_summary_against_the_anchor():
    from benchmarks.time_to_accuracy import ANCHOR, summarise
    ours = _curve((300, 300, 0.85), (900, 900, 0.92))
    anchor = _curve((300, 70, 0.80), (900, 210, 0.85))
    table = summarise({"maml": ours, ANCHOR: anchor}, {"maml": 900.0, ANCHOR: 900.0},
                      budgets=(5, 15, 30))
    at = table["maml"]["at_minutes"]
    assert (abs(at["5"]["minus_anchor"] - 0.05) < 1e-12
            and abs(at["15"]["minus_anchor"] - 0.07) < 1e-12)
    assert at["30"]["mean"] is None                    # beyond both budgets: no number made up
    assert table["maml"]["speedup_to_anchor_final"] == 900 / 300  # reaches 85% three times sooner


def test_time_to_accuracy_trains_and_validates_on_a_tiny_budget(shared_data_root, tmp_path,
                                                                monkeypatch):
    """Both paths (a preset through the project's engine, the anchor through learn2learn) train
    on the CPU clock and are validated at the marks; the JSON and the figure are written."""
    import json
    from benchmarks.time_to_accuracy import main
    monkeypatch.setenv("METALEARN_DATA_ROOT", str(shared_data_root))
    out = tmp_path / "tta.json"
    main(["--methods", "fomaml,l2l-maml", "--minutes", "0.03", "--val-episodes", "2",
          "--set", "data.meta_batch=2", "--json", str(out)])
    record = json.loads(out.read_text())
    assert list(record["methods"]) == ["fomaml", "l2l-maml"]
    for method in record["methods"].values():
        (point,) = method["curve"]
        assert point["cpu_seconds"] >= 0.03 * 60 and point["iteration"] >= 1
        assert 0.0 <= point["mean"] <= 1.0
    assert out.with_suffix(".png").exists()


def test_time_to_accuracy_goals_read_the_margins_over_the_anchor():
    from benchmarks.results_section import time_to_accuracy_goals
    from benchmarks.time_to_accuracy import ANCHOR, summarise
    curves = {"maml": _curve((300, 300, 0.85), (900, 900, 0.92)),
              "imaml": _curve((300, 100, 0.75), (900, 300, 0.90)),
              ANCHOR: _curve((300, 70, 0.80), (900, 210, 0.85))}
    record = {"summary": summarise(curves, budgets=(5, 15))}
    maml, imaml = time_to_accuracy_goals(record)
    assert maml.startswith("maml at or above the anchor at every budget: met (+5.0 at 5 min")
    assert imaml.startswith("imaml at or above the anchor at every budget: not met (-5.0 at 5 min")


def test_a_shortfall_inside_both_confidence_intervals_is_said_to_be_unresolved():
    from benchmarks.results_section import time_to_accuracy_goals
    from benchmarks.time_to_accuracy import ANCHOR, summarise
    curves = {"maml": _curve((300, 300, 0.845), (900, 900, 0.80)),   # CIs are ±0.01
              ANCHOR: _curve((300, 70, 0.85), (900, 210, 0.85))}
    (line,) = time_to_accuracy_goals({"summary": summarise(curves, budgets=(5,))})
    assert line.endswith("(-0.5 at 5 min; every shortfall is inside both curves' 95% CI)")
    (line,) = time_to_accuracy_goals({"summary": summarise(curves, budgets=(5, 15))})
    assert line.endswith("-5.0 at 15 min; inside both curves' 95% CI at 5 min)")


def test_the_time_to_accuracy_text_says_each_curves_validation_episodes():
    from benchmarks.results_section import validation_episodes
    run = {"from_run": "runs/x", "config": {"eval": {"val_episodes": 200}}}
    record = {"val_episodes": 100, "methods": {"maml": run, "imaml": run, "l2l-maml": {}}}
    assert validation_episodes(record) == (
        "200 episodes for maml, imaml; 100 episodes for l2l-maml "
        "(the first 100 of the same sequence)")
    record["val_episodes"] = 200
    assert validation_episodes(record) == "200 episodes"


def test_a_curve_read_from_a_run_at_other_settings_than_its_preset_is_marked():
    from benchmarks.results_section import earlier_settings, time_to_accuracy_part
    from benchmarks.time_to_accuracy import ANCHOR, BUDGETS
    from configs.loader import merge_config
    today = merge_config("mamlpp", "omniglot5w1s")
    older = {**today, "data": {**today["data"], "meta_batch": today["data"]["meta_batch"] * 4}}
    at = {"mean": 0.8, "ci95": 0.01, "iteration": 1, "minus_anchor": 0.0}
    record = {"dataset": "omniglot5w1s", "cpu": "x", "val_episodes": 200,
              "methods": {"mamlpp": {"from_run": "runs/a", "config": older},
                          "maml": {"from_run": "runs/b", "config": merge_config("maml",
                                                                                "omniglot5w1s")},
                          ANCHOR: {}},
              "summary": {name: {"at_minutes": {str(m): at for m in BUDGETS}}
                          for name in ("mamlpp", "maml", ANCHOR)}}
    meta_batch = today["data"]["meta_batch"]
    assert earlier_settings(record) == {
        "mamlpp": [f"data.meta_batch {4 * meta_batch} (preset: {meta_batch})"]}
    text = time_to_accuracy_part(record)
    assert "mamlpp (earlier settings)" in text and "maml (earlier settings)" not in text
    assert f"mamlpp: data.meta_batch {4 * meta_batch} (preset: {meta_batch})" in text


def test_solve_fidelity_scores_per_task():
    """Cosine and relative error per task: a common shrink keeps the direction."""
    from benchmarks.solve_fidelity import score
    ref = [torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[0.0], [0.0]])]
    half = [0.5 * r for r in ref]
    out = score(half, ref)
    assert out["cosine"] == [1.0, 1.0] and out["relative_error"] == [0.5, 0.5]
    turned = [torch.tensor([[0.0, 1.0], [0.0, 2.0]]), torch.tensor([[0.0], [0.0]])]
    assert score(turned, ref)["cosine"] == [0.0, 1.0]


def test_solve_fidelity_scores_every_candidate_on_the_real_systems(shared_data_root, tmp_path,
                                                                   monkeypatch):
    import json
    from benchmarks.solve_fidelity import CANDIDATES, main
    monkeypatch.setenv("METALEARN_DATA_ROOT", str(shared_data_root))
    out = tmp_path / "fidelity.json"
    main(["--batches", "1", "--set", "model.hidden=8", "--set", "data.meta_batch=2",
          "--json", str(out)])
    (batch,) = json.loads(out.read_text())["meta_batches"]
    assert len(batch["lambda_max"]) == 2 and min(batch["lambda_max"]) > 0
    for name in CANDIDATES:
        assert all(-1.0 <= c <= 1.0 for c in batch[name]["cosine"])
        assert len(batch[name]["relative_error"]) == 2
