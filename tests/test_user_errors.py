"""More mistakes a user can make, and what they see: one `error: ...` line on stderr naming the
fix and exit status 2 (never a traceback or a library's noise), or one clean `warning: ...` line
for a run that goes on. The command-line basics are in test_cli_errors.py."""
import socket
import sys
import warnings

import pytest

import run
from envs.paths import require
from support import fails


# ---- an inner optimizer that does not implement adapt ---------------------------------------

FORGETFUL = '''
from optimizers import InnerLoopOptimizer


class Forgetful(InnerLoopOptimizer):
    """Subclasses the interface but forgets to write adapt."""

    def meta_parameters(self):
        return []
'''


def test_inner_optimizer_without_adapt_is_refused_before_the_run_starts(capsys, tmp_path,
                                                                         monkeypatch):
    (tmp_path / "forgetful_inner_opt.py").write_text(FORGETFUL)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "r"
    fails(capsys, ["--dataset", "sinusoid", "--inner-optimizer", "forgetful_inner_opt:Forgetful",
                   "--iterations", "1", "--out", str(out)],
          "forgetful_inner_opt:Forgetful", "adapt", "NotImplementedError")
    assert not out.exists()


def test_every_shipped_inner_optimizer_still_resolves():
    from optimizers import OPTIMIZERS, resolve_optimizer
    for name, cls in OPTIMIZERS.items():
        assert resolve_optimizer(name) is cls
    assert resolve_optimizer("examples.momentum_sgd:MomentumSGD").__name__ == "MomentumSGD"


# ---- iMAML with an indefinite I + H/λ -------------------------------------------------------

def test_imaml_indefinite_warning_is_one_clean_line_once_per_run(capfd, tmp_path):
    # λ = 0.1 on sinusoid: the MLP's support Hessian has eigenvalues near −6, so I + H/λ is
    # indefinite on every task at every iteration; the warning must still appear once.
    argv = ["--problem", "imaml", "--dataset", "sinusoid", "--iterations", "3",
            "--out", str(tmp_path / "r"), "--set", "inner.implicit.lam=0.1",
            "--set", "eval.val_every=0",
            "--set", "eval.episodes=2", "--set", "eval.steps=1"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run.main(argv) == 0
    # not through warnings.warn, which prints the calling source line under the message
    assert not [w for w in caught if "positive definite" in str(w.message)]
    err = capfd.readouterr().err
    lines = err.strip().splitlines()
    imaml = [line for line in lines if "iMAML" in line]
    assert len(imaml) == 1, err
    assert imaml[0].startswith("warning: iMAML: I + H/λ is not positive definite"), err
    assert "inner.implicit.lam" in imaml[0] and "inner.implicit.damping" in imaml[0]
    # no source line, file name or warning category under or around it
    assert all(line.startswith("warning: ") for line in lines), err
    assert "RuntimeWarning" not in err and ".py:" not in err



def test_neumann_series_that_grew_is_one_clean_line_once_per_run(capfd, tmp_path):
    # A fixed Neumann step of 5 on sinusoid: α·λ_max(H + λI) > 2 on the tasks, so the series
    # grows; the run finishes and says so once, naming the three ways out.
    argv = ["--problem", "imaml-neumann", "--dataset", "sinusoid", "--iterations", "3",
            "--out", str(tmp_path / "r"), "--set", "inner.implicit.neumann_alpha=5",
            "--set", "eval.val_every=0", "--set", "eval.episodes=2", "--set", "eval.steps=1"]
    assert run.main(argv) == 0
    lines = capfd.readouterr().err.strip().splitlines()
    grew = [line for line in lines if "Neumann series grew" in line]
    assert len(grew) == 1, lines
    assert grew[0].startswith("warning: iMAML: the Neumann series grew instead of converging on ")
    assert "neumann_alpha=5" in grew[0] and "power_iters" in grew[0] and "solver=cg" in grew[0]

# ---- a file given as the data root ----------------------------------------------------------

def test_file_as_data_root_says_it_is_a_file(capsys, tmp_path):
    a_file = tmp_path / "omniglot.zip"
    a_file.write_bytes(b"PK")
    err = fails(capsys, ["--dataset", "omniglot5w1s", "--data-root", str(a_file)],
                str(a_file), "is a file, not a folder", "--data-root", "folder that holds the data")
    assert "does not exist" not in err


def test_file_as_data_root_from_the_environment_names_the_variable(capsys, tmp_path,
                                                                    monkeypatch):
    a_file = tmp_path / "data.txt"
    a_file.write_text("")
    monkeypatch.setenv("METALEARN_DATA_ROOT", str(a_file))
    fails(capsys, ["--dataset", "omniglot5w1s"], "is a file, not a folder", "$METALEARN_DATA_ROOT")


def test_a_file_on_the_way_to_the_data_is_named(tmp_path):
    blocker = tmp_path / "omniglot-py"
    blocker.write_text("")
    with pytest.raises(Exception, match="omniglot-py is a file, not a folder") as info:
        require(blocker / "images_background", "omniglot", "the images", "fix it", folder=True)
    assert "does not exist" not in str(info.value)


# ---- data.download=true without a connection ------------------------------------------------

def offline(*args, **kwargs):
    """What name resolution does with no network: fail at once (so nothing can hang)."""
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture
def fresh_learn2learn():
    """Import learn2learn (and gym, which prints its deprecation banner when imported) afresh, as
    a new process does; afterwards the modules imported before the test are put back as they
    were."""
    def loaded():
        return [m for m in sys.modules if m.split(".")[0] in ("learn2learn", "gym", "gym_notices")]

    before = {m: sys.modules.pop(m) for m in loaded()}
    yield
    for m in loaded():
        del sys.modules[m]
    sys.modules.update(before)


@pytest.mark.parametrize("dataset,name", [("omniglot5w1s", "omniglot"),
                                          ("mini1shot", "mini-imagenet"),
                                          ("cifarfs1shot", "cifar-fs")])
def test_failed_download_is_announced_then_one_error_line(capfd, tmp_path, monkeypatch,
                                                          fresh_learn2learn, dataset, name):
    monkeypatch.setattr(socket, "getaddrinfo", offline)
    root = tmp_path / "data"
    root.mkdir()
    assert run.main(["--dataset", dataset, "--data-root", str(root),
                     "--set", "data.download=true"]) == 2
    captured = capfd.readouterr()
    announced, error = (captured.out + captured.err).strip().split("\n")  # exactly two lines
    assert announced.startswith(f"{name}: downloading into {root}"), announced
    assert error.startswith(f"error: {name}: downloading"), error
    output = announced + error
    assert "Gym" not in output and "Downloading" not in output
    if name != "omniglot":  # the path that imports learn2learn was taken
        assert "learn2learn" in sys.modules and "gym" in sys.modules
