"""Real public models with trained weights (../shared/zoo) reproduce the outputs
real Caffe recorded for them (../shared/conformance/visible/zoo). Used in place,
never copied; skipped when ../shared is absent."""
import numpy as np
import pytest
from conformance import load_case, replay
from conftest import SHARED_CONFORMANCE, ZOO
from layer_case import assert_registered

ZOO_CASES = sorted((SHARED_CONFORMANCE / "zoo").glob("*")) if SHARED_CONFORMANCE.exists() else []


def _model_files(case_dir, meta):
    model = case_dir / "net.prototxt" if meta.get("prototxt_in_case") else ZOO / meta["model"]
    weights = ZOO / meta["weights"] if meta.get("weights") else None
    return model, weights


@pytest.mark.parametrize("case_dir", ZOO_CASES, ids=lambda p: p.name)
def test_zoo_model_reproduces_caffe(case_dir):
    meta, _ = load_case(case_dir)
    assert_registered(meta["layer_types"])
    model, weights = _model_files(case_dir, meta)
    if not model.exists() or (weights is not None and not weights.exists()):
        pytest.skip("zoo files not available")
    net = replay(case_dir, model=model, weights=weights or False)
    # weights loaded as Caffe loaded them (shape, sum and first values)
    for key, stats in meta.get("param_stats", {}).items():
        layer, _, index = key.rpartition("/")
        data = net.params[layer][int(index)].data
        assert list(data.shape) == stats["shape"], key
        np.testing.assert_allclose(data.ravel()[:len(stats["first"])], stats["first"],
                                   rtol=1e-6, err_msg=key)
        np.testing.assert_allclose(np.sum(data, dtype=np.float64), stats["sum"],
                                   rtol=1e-5, atol=1e-5, err_msg=key)


def test_zoo_cases_present_when_shared_is():
    if not SHARED_CONFORMANCE.exists():
        pytest.skip("../shared is absent")
    assert len(ZOO_CASES) >= 20
