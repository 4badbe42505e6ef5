"""ONNX files damaged in ways only a protobuf writer makes: an initializer
that claims 2^40 values and holds 4, and one of type double. They are rows
of the bad-input matrix (tests/cli/bad_input_test.cpp, docs/bad-input.md).

    /usr/bin/python3 tests/golden/make_bad_inputs.py
"""
import os

import onnx
from onnx import TensorProto, helper

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad")


def model(weight):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "bad", [x], [y], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def main():
    os.makedirs(HERE, exist_ok=True)
    huge = helper.make_tensor("w", TensorProto.FLOAT, [4], [0.0] * 4)
    huge.dims[:] = [1 << 20, 1 << 20]  # the claim, past make_tensor's check
    onnx.save(model(huge), os.path.join(HERE, "huge_initializer.onnx"))
    double = helper.make_tensor("w", TensorProto.DOUBLE, [4], [1.0, 2.0, 3.0, 4.0])
    onnx.save(model(double), os.path.join(HERE, "double_initializer.onnx"))


if __name__ == "__main__":
    main()
