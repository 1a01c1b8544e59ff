"""Triton python backend: the detector run by ONNX Runtime, for servers that have no onnxruntime backend.

Same inputs and outputs as the onnxruntime_onnx / tensorrt_plan model beside it, read from this model's config.
Requests that the dynamic batcher gathered are stacked and run as one batch when the graph's batch dimension is
dynamic; requests whose inputs cannot be stacked run on their own, so one bad request fails only itself.
Instances of kind GPU use ONNX Runtime's CUDA provider when it is installed. Python 3.6 compatible.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


def session_options(threads):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    # Idle workers sleep instead of spinning: the server's other models (pre- and post-processing) need the cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def providers_for(kind, device_id):
    import onnxruntime

    if kind == "GPU" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return [("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class TritonPythonModel(object):
    def initialize(self, args):
        import onnxruntime

        config = json.loads(args["model_config"])
        threads = int(config.get("parameters", {}).get("intra_op_num_threads", {}).get("string_value", "0"))
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = onnxruntime.InferenceSession(
            path, session_options(threads), providers=providers_for(args["model_instance_kind"], int(args["model_instance_device_id"])))
        self.input_name = config["input"][0]["name"]
        self.output_names = [output["name"] for output in config["output"]]
        self.stack = config["max_batch_size"] > 0

    def execute(self, requests):
        inputs = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
        responses = [None] * len(requests)
        for group in self.groups(inputs):
            batch = inputs[group[0]] if len(group) == 1 else np.concatenate([inputs[i] for i in group])
            try:
                outputs = self.session.run(self.output_names, {self.input_name: batch})
            except Exception as error:  # ONNX Runtime's own message (e.g. a shape the graph refuses)
                for i in group:
                    responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error).splitlines()[0]))
                continue
            start = 0
            for i in group:
                stop = start + len(inputs[i])
                responses[i] = pb_utils.InferenceResponse(
                    [pb_utils.Tensor(name, out[start:stop]) for name, out in zip(self.output_names, outputs)])
                start = stop
        return responses

    def groups(self, inputs):
        """Request indices that run together: all requests of one input shape (when batching), else one each."""
        if not self.stack:
            return [[i] for i in range(len(inputs))]
        by_shape = {}
        for i, array in enumerate(inputs):
            by_shape.setdefault(array.shape[1:], []).append(i)
        return list(by_shape.values())
