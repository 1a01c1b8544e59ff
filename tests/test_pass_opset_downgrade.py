"""downgrade_opset: its rules checked against ONNX's own operator schemas, and each rewrite against ONNX Runtime at every opset."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from dattn.exporting.passes.opset_downgrade import ADDED_ATTRIBUTE_VALUES, ADDED_ATTRIBUTES, INPUT_TO_ATTRIBUTE, TYPE_ONLY, downgrade_opset

TARGETS = range(11, 18)


def _schemas(op, version):
    newer = onnx.defs.get_schema(op, version, "")
    assert newer.since_version == version, f"{op} has no opset-{version} version"
    return newer, onnx.defs.get_schema(op, version - 1, "")


def _signature(schema):
    return ([(p.name, p.option) for p in schema.inputs], [(p.name, p.option) for p in schema.outputs], set(schema.attributes))


SAME_SIGNATURE = sorted([*TYPE_ONLY, *ADDED_ATTRIBUTE_VALUES])


@pytest.mark.parametrize("op, version", SAME_SIGNATURE, ids=[f"{o}-{v}" for o, v in SAME_SIGNATURE])
def test_type_only_and_new_value_steps_keep_inputs_outputs_and_attributes(op, version):
    newer, older = _schemas(op, version)
    assert _signature(newer) == _signature(older)


@pytest.mark.parametrize("op, version", sorted(ADDED_ATTRIBUTES), ids=[f"{o}-{v}" for o, v in sorted(ADDED_ATTRIBUTES)])
def test_added_attribute_steps_add_only_those_attributes_with_those_defaults(op, version):
    newer, older = _schemas(op, version)
    (ins_new, outs_new, attrs_new), (ins_old, outs_old, attrs_old) = _signature(newer), _signature(older)
    defaults = ADDED_ATTRIBUTES[(op, version)]
    assert (ins_new, outs_new) == (ins_old, outs_old) and attrs_new - attrs_old == set(defaults) and attrs_old <= attrs_new
    for name, default in defaults.items():
        proto = newer.attributes[name].default_value
        stated = helper.get_attribute_value(proto) if proto.name else None
        assert stated in (default, default.encode() if isinstance(default, str) else default), (name, stated)


@pytest.mark.parametrize("op, version", sorted(INPUT_TO_ATTRIBUTE), ids=[f"{o}-{v}" for o, v in sorted(INPUT_TO_ATTRIBUTE)])
def test_input_to_attribute_steps_match_the_schemas(op, version):
    newer, older = _schemas(op, version)
    index, name = INPUT_TO_ATTRIBUTE[(op, version)]
    assert newer.inputs[index].name == name and len(newer.inputs) == index + 1 and name not in newer.attributes
    assert name in older.attributes and len(older.inputs) == index


def _ints(name, values):
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _opset18_model():
    """One opset-18 graph that needs every rewrite: the dynamo exporter's idioms and the passes' own."""
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("Split", ["x"], ["s0", "s1", "s2"], axis=1, num_outputs=3),  # 7 channels: 3, 3, 1
        helper.make_node("Softmax", ["x"], ["soft_c"], axis=1),  # not the last axis: changed meaning at 13
        helper.make_node("LogSoftmax", ["x"], ["logsoft_last"], axis=-1),
        helper.make_node("Softmax", ["x"], ["soft_default"]),
        helper.make_node("Resize", ["x", "", "scales"], ["up"], mode="nearest", antialias=0, keep_aspect_ratio_policy="stretch"),
        helper.make_node("Resize", ["x", "", "", "sizes"], ["sized"], mode="linear"),
        helper.make_node("ReduceMean", ["x", "axes_123"], ["mean"], keepdims=1),
        helper.make_node("ReduceMax", ["x", "axes_1"], ["max"], keepdims=0),
        helper.make_node("ReduceSum", ["x", "axes_23"], ["sum"], keepdims=0, noop_with_empty_axes=0),
        helper.make_node("Unsqueeze", ["sum", "axes_0"], ["unsq"]),
        helper.make_node("Squeeze", ["unsq", "axes_0"], ["sq"]),
        helper.make_node("Shape", ["x"], ["hw"], start=2, end=4),
        helper.make_node("Shape", ["x"], ["tail"], start=-1),
        helper.make_node("Shape", ["x"], ["whole"]),
        helper.make_node("Reshape", ["x", "flat_shape"], ["flat"], allowzero=1),
        helper.make_node("Slice", ["whole", "zero", "one"], ["batch"]),
        helper.make_node("Concat", ["batch", "minus_one"], ["computed_shape"], axis=0),
        helper.make_node("Reshape", ["x", "computed_shape"], ["flat_computed"], allowzero=1),
        helper.make_node("Constant", [], ["k"], value_floats=[0.5, 2.0]),
        helper.make_node("Constant", [], ["step"], value_int=3),
        helper.make_node("ScatterElements", ["x", "indices", "updates"], ["scattered"], axis=1, reduction="none"),
        helper.make_node("Reshape", ["k", "k_col_shape"], ["k_col"]),
        helper.make_node("Mul", ["mean", "k_col"], ["scaled"]),
        helper.make_node("Add", ["step", "step"], ["six"]),
    ]
    inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"), _ints("sizes", [2, 7, 3, 5]),
             _ints("axes_23", [2, 3]), _ints("axes_123", [1, 2, 3]), _ints("axes_1", [1]), _ints("axes_0", [0]), _ints("flat_shape", [2, 7, -1]),
             _ints("minus_one", [-1]), _ints("zero", [0]), _ints("one", [1]), _ints("k_col_shape", [1, 2, 1, 1]),
             _ints("indices", np.zeros((2, 1, 4, 6))), numpy_helper.from_array(np.ones((2, 1, 4, 6), np.float32), "updates")]
    outputs = ["s0", "s1", "s2", "soft_c", "logsoft_last", "soft_default", "up", "sized", "max", "sq", "hw", "tail",
               "flat", "flat_computed", "scaled", "six", "scattered"]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", f, [2, 7, 4, 6])],
                              [helper.make_empty_tensor_value_info(o) for o in outputs], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model, strict_mode=True).graph.value_info}
    for output in model.graph.output:
        output.CopyFrom(inferred[output.name])
    onnx.checker.check_model(model, full_check=True)
    return model


def _run(model, x):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x})))


@pytest.mark.parametrize("target", TARGETS)
def test_every_rewrite_agrees_with_the_opset18_graph_in_onnx_runtime(target):
    model = _opset18_model()
    x = np.random.default_rng(0).standard_normal((2, 7, 4, 6)).astype(np.float32)
    want = _run(model, x)
    converted = downgrade_opset(model, target)
    assert [(i.domain, i.version) for i in converted.opset_import] == [("", target)]
    onnx.checker.check_model(converted, full_check=True)
    got = _run(converted, x)
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-6, err_msg=name)
    assert [w.shape for w in (want["s0"], want["s1"], want["s2"])] == [(2, 3, 4, 6), (2, 3, 4, 6), (2, 1, 4, 6)]


def test_the_model_given_is_left_alone_and_unused_constants_go():
    model = _opset18_model()
    before = model.SerializeToString()
    converted = downgrade_opset(model, 11)
    assert model.SerializeToString() == before
    names = {i.name for i in converted.graph.initializer}
    assert not names & {"axes_23", "axes_0", "axes_1", "axes_123"}, "axes that became attributes stay behind"
    assert {"scales", "sizes", "flat_shape"} <= names


def _one_node_model(node, opset, inputs, inits=()):
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in node.output], initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_ops_missing_at_the_target_fail_unless_they_are_placeholders():
    ln = helper.make_node("LayerNormalization", ["x", "scale"], ["y"], name="ln")
    model = _one_node_model(ln, 18, [("x", [1, 4])], [numpy_helper.from_array(np.ones(4, np.float32), "scale")])
    with pytest.raises(ValueError, match="LayerNormalization does not exist at opset 16"):
        downgrade_opset(model, 16)
    assert downgrade_opset(model, 17).graph.node[0].op_type == "LayerNormalization"
    gs = helper.make_node("GridSample", ["x", "grid"], ["y"], align_corners=1, mode="bilinear")
    model = _one_node_model(gs, 18, [("x", [1, 1, 4, 4]), ("grid", [1, 2, 2, 2])])
    kept = downgrade_opset(model, 13, placeholders=("GridSample",))
    assert kept.graph.node[0] == gs and kept.opset_import[0].version == 13


@pytest.mark.parametrize("node, inputs, inits, message", [
    (helper.make_node("Reshape", ["x", "s"], ["y"], allowzero=1), [("x", [0, 4])], [_ints("s", [0, 4])], "allowzero=1 with a 0"),
    (helper.make_node("Split", ["x"], ["a", "b"], axis=0, num_outputs=2), [("x", ["n", 4])], [], "axis of unknown size"),
    (helper.make_node("Unsqueeze", ["x", "axes"], ["y"]), [("x", [2]), ("axes", [1])], [], "computed in the graph"),
    (helper.make_node("Pad", ["x", "pads", "", "axes"], ["y"]), [("x", [2, 3])], [_ints("pads", [1, 1]), _ints("axes", [1])],
     "no rule to take Pad below its opset-18 version"),
    (helper.make_node("Resize", ["x", "", "scales"], ["y"], antialias=1, mode="linear"), [("x", [1, 1, 4, 4])],
     [numpy_helper.from_array(np.array([1, 1, 0.5, 0.5], np.float32), "scales")], "antialias=1 needs opset 18"),
    (helper.make_node("ReduceSum", ["x"], ["y"], noop_with_empty_axes=1), [("x", [2, 3])], [], "noop_with_empty_axes=1"),
    (helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], reduction="max"), [("x", [2]), ("u", [1])], [_ints("i", [0])],
     "reduction='max' needs opset 18"),
    (helper.make_node("Softmax", ["x"], ["y"], axis=0), [("x", None)], [], "axis=0 on an input of unknown rank"),
])
def test_what_has_no_exact_older_form_fails_naming_the_node(node, inputs, inits, message):
    node.name = "the_node"
    model = _one_node_model(node, 18, inputs, inits)
    with pytest.raises(ValueError, match=message) as error:
        downgrade_opset(model, 12)
    assert "'the_node'" in str(error.value)


def test_only_downward_and_only_flat_graphs():
    model = _one_node_model(helper.make_node("Relu", ["x"], ["y"]), 13, [("x", [2])])
    with pytest.raises(ValueError, match="at opset 13, below the target 17"):
        downgrade_opset(model, 17)
    branch = helper.make_graph([helper.make_node("Relu", ["x"], ["z"])], "b", [], [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])])
    cond = helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)
    graph = helper.make_graph([cond], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, []), helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    with pytest.raises(ValueError, match="subgraphs"):
        downgrade_opset(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), 13)
