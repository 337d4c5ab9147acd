"""Net construction passes checked against what real Caffe built: for every golden
case, state filtering + split insertion must give Caffe's blob list, in order."""
import json

import pytest
from conftest import CONFORMANCE
from google.protobuf import text_format

from caffe_lite.errors import NetError
from caffe_lite.net.passes import filter_by_state, insert_splits, state_meets_rule
from caffe_lite.proto import caffe_pb2

CASES = sorted(p for g in ("layers", "nets", "forks") for p in (CONFORMANCE / g).glob("*")
               if (p / "net.prototxt").exists())


def net_param(text):
    return text_format.Parse(text, caffe_pb2.NetParameter())


def blob_order(param):
    names = []
    for layer in param.layer:
        for top in layer.top:
            if top not in names:
                names.append(top)
    return names


@pytest.mark.parametrize("case_dir", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_blob_names_and_order_match_caffe(case_dir):
    meta = json.loads((case_dir / "case.json").read_text())
    from caffe_lite.formats import read_net_param
    param = read_net_param(str(case_dir / "net.prototxt"))
    state = caffe_pb2.NetState(phase=getattr(caffe_pb2, meta["phase"]),
                               level=meta.get("level", 0), stage=meta.get("stages", []))
    built = insert_splits(filter_by_state(param, state))
    assert blob_order(built) == meta["blobs"]


def rule(text):
    return text_format.Parse(text, caffe_pb2.NetStateRule())


def test_state_rules():
    state = caffe_pb2.NetState(phase=caffe_pb2.TRAIN, level=2, stage=["a", "b"])
    assert state_meets_rule(state, rule("phase: TRAIN"))
    assert not state_meets_rule(state, rule("phase: TEST"))
    assert state_meets_rule(state, rule("min_level: 2 max_level: 2"))
    assert not state_meets_rule(state, rule("min_level: 3"))
    assert not state_meets_rule(state, rule("max_level: 1"))
    assert state_meets_rule(state, rule('stage: "a" stage: "b"'))
    assert not state_meets_rule(state, rule('stage: "c"'))
    assert not state_meets_rule(state, rule('not_stage: "b"'))


def test_filter_include_exclude():
    param = net_param('''
        layer { name: "a" type: "Input" top: "x" }
        layer { name: "b" type: "ReLU" bottom: "x" top: "x" include { phase: TRAIN } }
        layer { name: "c" type: "ReLU" bottom: "x" top: "x" exclude { phase: TRAIN } }
        layer { name: "d" type: "ReLU" bottom: "x" top: "x"
                include { phase: TEST } include { stage: "s" } }''')
    names = lambda st: [l.name for l in filter_by_state(param, st).layer]
    assert names(caffe_pb2.NetState(phase=caffe_pb2.TRAIN)) == ["a", "b"]
    assert names(caffe_pb2.NetState(phase=caffe_pb2.TEST)) == ["a", "c", "d"]
    assert names(caffe_pb2.NetState(phase=caffe_pb2.TRAIN, stage=["s"])) == ["a", "b", "d"]
    bad = net_param('layer { name: "e" type: "ReLU" include { phase: TEST } '
                    'exclude { phase: TRAIN } }')
    with pytest.raises(NetError, match="either include or exclude"):
        filter_by_state(bad, caffe_pb2.NetState())


def test_split_names_and_loss_weight_moves_to_first_split():
    param = net_param('''
        layer { name: "in" type: "Input" top: "x" }
        layer { name: "l" type: "Eltwise" bottom: "x" bottom: "x" top: "y"
                loss_weight: 2 }
        layer { name: "m" type: "ReLU" bottom: "y" top: "z" }''')
    out = insert_splits(param)
    assert [l.name for l in out.layer] == ["in", "x_in_0_split", "l", "y_l_0_split", "m"]
    assert list(out.layer[1].top) == ["x_in_0_split_0", "x_in_0_split_1"]
    assert list(out.layer[2].bottom) == ["x_in_0_split_0", "x_in_0_split_1"]
    assert list(out.layer[2].loss_weight) == []
    assert list(out.layer[3].loss_weight) == [2, 0]
    assert list(out.layer[4].bottom) == ["y_l_0_split_1"]


def test_unknown_bottom_is_a_clear_error():
    param = net_param('layer { name: "r" type: "ReLU" bottom: "nope" top: "y" }')
    with pytest.raises(NetError, match="nope") as info:
        insert_splits(param)
    assert info.value.layer == "r"
