"""Detect objects in images with a dattn detector served by Triton: by default the ensemble this file sits in.

    pip install "tritonclient[http]" grpcio numpy    # grpcio only for --grpc
    python client.py bus.jpg zidane.jpg [--url 127.0.0.1:8000] [--grpc] [--model NAME_ensemble]

Each image is sent as it is on disk (encoded bytes, decoded by the server); the answer is boxes in the image's
pixels (x1, y1, x2, y2), scores and class ids, printed with the class names of the model's config. Written by dattn.
"""

import argparse
import ast
import os
import sys

import numpy as np

# The model folder this file was written into: the ensemble it queries by default.
HERE = os.path.basename(os.path.dirname(os.path.abspath(__file__)))


def class_names(client, model, grpc):
    """{class id: name} from the `names` parameter of the model's config."""
    config = client.get_model_config(model, as_json=True)["config"] if grpc else client.get_model_config(model)
    names = config.get("parameters", {}).get("names", {}).get("string_value", "{}")
    return ast.literal_eval(names)


def detect(client, protocol, model, image_bytes):
    """(boxes (n, 4), scores (n,), class ids (n,)) for one encoded image."""
    data = np.array([[image_bytes]], dtype=object)  # batch of one image
    image = protocol.InferInput("IMAGE_BYTES", list(data.shape), "BYTES")
    image.set_data_from_numpy(data)
    wanted = [protocol.InferRequestedOutput(name) for name in ("BOXES", "SCORES", "CLASSES", "NUM_DETECTIONS")]
    result = client.infer(model, [image], outputs=wanted)
    n = int(result.as_numpy("NUM_DETECTIONS")[0, 0])
    return result.as_numpy("BOXES")[0, :n], result.as_numpy("SCORES")[0, :n], result.as_numpy("CLASSES")[0, :n]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--url", help="host:port (default 127.0.0.1:8000 for HTTP, 127.0.0.1:8001 for gRPC)")
    parser.add_argument("--grpc", action="store_true", help="use gRPC instead of HTTP")
    parser.add_argument("--model", default=HERE, help="the ensemble to query (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.grpc:
        import tritonclient.grpc as protocol
    else:
        import tritonclient.http as protocol
    client = protocol.InferenceServerClient(args.url or ("127.0.0.1:8001" if args.grpc else "127.0.0.1:8000"))
    names = class_names(client, args.model, args.grpc)
    for path in args.images:
        with open(path, "rb") as f:
            boxes, scores, classes = detect(client, protocol, args.model, f.read())
        print("{}: {} detections".format(path, len(scores)))
        for box, score, cls in zip(boxes, scores, classes):
            print("  {:<12} {:.2f}  [{:.1f}, {:.1f}, {:.1f}, {:.1f}]".format(names.get(int(cls), str(cls)), score, *box))
    return 0


if __name__ == "__main__":
    sys.exit(main())
