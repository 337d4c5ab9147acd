"""The house rules, checked: imports only run downwards (no cycles, not even
through a function-level import), kernels know nothing of the package, no layer
reads files through formats/, and the pycaffe face keeps its names."""
import ast
import pathlib

import pytest

import caffe_lite

PACKAGE = pathlib.Path(caffe_lite.__file__).parent


def _modules():
    """Module name -> (path, is_package) for every module of the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


MODULES = _modules()


def _imports(name):
    """The package modules ``name`` imports anywhere in its body."""
    path, is_package = MODULES[name]
    base = name.split(".") if is_package else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = ".".join(base[:len(base) - node.level + 1] +
                                  ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:            # "from pkg import submodule"
                if f"{target}.{alias.name}" in MODULES:
                    found.add(f"{target}.{alias.name}")
                elif target in MODULES:
                    found.add(target)
    found.discard(name)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _cycle_from(start):
    """A shortest import path that leads from ``start`` back to it, or None."""
    frontier, seen = [[start]], {start}
    while frontier:
        path = frontier.pop(0)
        for nxt in sorted(GRAPH[path[-1]]):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(path + [nxt])
    return None


def test_the_graph_is_read():
    assert "caffe_lite.net.graph" in GRAPH["caffe_lite.net.net"]
    assert "caffe_lite.layers.base" in GRAPH["caffe_lite.net.graph"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_cycle(name):
    cycle = _cycle_from(name)
    assert cycle is None, " -> ".join(cycle)


def _reaches(name, prefix):
    return sorted(m for m in GRAPH[name] if m == prefix or m.startswith(prefix + "."))


@pytest.mark.parametrize("name", sorted(m for m in MODULES if ".ops" in m))
def test_kernels_import_nothing_of_the_package(name):
    assert not [m for m in GRAPH[name] if not m.startswith("caffe_lite.ops")]


@pytest.mark.parametrize("name", sorted(m for m in MODULES if ".layers" in m))
def test_layers_stay_below_the_net(name):
    for room in ("formats", "net", "solver", "pycaffe", "commands", "cli"):
        assert not _reaches(name, f"caffe_lite.{room}"), room


def test_at_most_eight_loose_modules():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(loose) <= 8, loose


# pycaffe's caffe/__init__.py names, plus CaffeLiteError and Blob
PUBLIC = ["AdaDeltaSolver", "AdaGradSolver", "AdamSolver", "Blob", "CaffeLiteError",
          "Classifier", "Detector", "Layer", "NCCL", "NesterovSolver", "Net", "NetSpec",
          "RMSPropSolver", "SGDSolver", "TEST", "TRAIN", "Timer", "get_conv_algorithm",
          "get_solver",
          "has_nccl", "init_log", "layer_type_list", "log", "params", "set_conv_algorithm",
          "set_device", "set_memory_limit", "set_mode_cpu", "set_mode_gpu", "set_multiprocess",
          "set_random_seed",
          "set_solver_count", "set_solver_rank", "solver_count", "solver_rank",
          "to_proto"]


def test_public_names():
    import types
    names = sorted(n for n in dir(caffe_lite) if not n.startswith("_") and
                   not isinstance(getattr(caffe_lite, n), types.ModuleType))
    assert [n for n in names if n != "layers"] == PUBLIC
    assert not isinstance(caffe_lite.layers, types.ModuleType)   # NetSpec's L


@pytest.mark.parametrize("name", ["io", "net_spec", "coord_map", "classifier", "detector",
                                  "draw", "pycaffe", "proto.caffe_pb2"])
def test_pycaffe_module_names_import(name):
    import importlib
    module = importlib.import_module(f"caffe_lite.{name}")
    assert module is getattr(caffe_lite, name.split(".")[0]) or "." in name


def test_training_does_not_load_the_inference_side():
    """The solver joins MPI through distributed.parallel; the package's Dask and
    input/output side (dataset.py) loads only when asked for."""
    import subprocess
    import sys
    code = ("import sys, caffe_lite, caffe_lite.distributed\n"
            "caffe_lite.get_solver\n"
            "assert 'caffe_lite.distributed.dataset' not in sys.modules\n"
            "assert 'mpi4py' not in sys.modules and 'distributed' not in sys.modules\n"
            "from caffe_lite.distributed import run_dataset\n"
            "assert 'caffe_lite.distributed.dataset' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)
