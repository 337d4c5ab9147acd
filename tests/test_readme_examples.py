"""The README's examples run as written: every ```python block is executed and
every ``caffe-lite`` line of a ```sh block is run, in order, from a scratch
directory that sees the repository's models/ (the examples use files that the
ones before them wrote).

Only an optional extra (Pillow, pydot, graphviz, h5py) not installed skips
(that example and the ones after it); a layer type missing from the registry
fails.
The results the examples print are checked through the names they define."""
import re
import shlex
from pathlib import Path

import pytest
from conftest import ROOT

from caffe_lite.cli import build_parser
from caffe_lite.errors import DependencyError

DOC = ROOT / "README.md"
OPTIONAL_MODULES = {"PIL", "h5py", "pydot"}


def code_blocks(text):
    """(language, code, line number) of every fenced block."""
    blocks = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        line = text.count("\n", 0, match.start()) + 2
        blocks.append((match.group(1), match.group(2), line))
    return blocks


BLOCKS = [b for b in code_blocks(DOC.read_text()) if b[0] in ("python", "sh")] \
    if DOC.exists() else []


def _run_shell(code):
    for line in code.splitlines():
        if line.startswith("caffe-lite "):
            args = build_parser().parse_args(shlex.split(line)[1:])
            assert args._run(args) in (0, None), line


def _check_results(namespace):
    """What the examples promise: they learn, classify and agree."""
    if "accuracy" in namespace:
        assert namespace["accuracy"] > 0.9
    if "predicted" in namespace:
        assert namespace["predicted"] == namespace["label"]
    if "score_map" in namespace:
        assert namespace["score_map"].shape == (1, 10, 5, 5)
        assert abs(namespace["score_map"][0, :, 0, 0] - namespace["fc_scores"]).max() < 1e-5
    if "summary" in namespace:
        summary = namespace["summary"]
        assert summary.macs == sum(layer.macs for layer in summary.layers) > 0


def _missing(exc):
    """Why an example may be skipped: only an optional package absent from the machine.
    A layer type missing from the registry (UnknownLayerError) is a failure."""
    if isinstance(exc, DependencyError):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError) and \
            (exc.name or "").split(".")[0] in OPTIONAL_MODULES:
        return f"optional module {exc.name} is not installed"
    return None


def test_examples_in_order(tmp_path, monkeypatch):
    """One test runs every example in README order, since each may use the files
    the ones before it wrote (a test per example would let pytest-xdist spread
    them over workers). A failure names the example's line."""
    if not BLOCKS:
        pytest.skip(f"{DOC} has no examples")
    (tmp_path / "models").symlink_to(ROOT / "models", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    for lang, code, line in BLOCKS:
        namespace = {"__name__": "__readme__", "__file__": str(Path(DOC))}
        try:
            if lang == "python":
                exec(compile(code, f"{DOC}:{line}", "exec"), namespace)
            else:
                _run_shell(code)
        except Exception as exc:
            reason = _missing(exc)
            if reason:
                pytest.skip(f"{DOC.name}:{line} and the examples after it need what "
                            f"is not installed: {reason}")
            raise AssertionError(f"the example at {DOC.name}:{line} failed: "
                                 f"{exc!r}") from exc
        _check_results(namespace)
