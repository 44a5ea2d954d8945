"""clamkit.export: training run -> bundle (DESIGN §5). `clam-export` is export/cli.py.

    exporter.py     RUN -> BUNDLE: load the DeployPolicy (through the loader it is given), export, parity,
                    atomic write (torch)
    onnx_export.py  torch.onnx (dynamo | legacy), dynamic batch, graph simplification (torch, onnx)
    parity.py       torch vs backend: max abs error and cosine at batch 1 and N (numpy, onnxruntime)
    trt.py          TensorRT >= 10 engine from a bundle, cached per GPU/version/precision (torch-free)

Nothing heavy is imported here: `clam-export BUNDLE --trt` runs on the robot without torch.
"""

OPSET = 18  # ONNX opset: dynamo's native one; TensorRT 10's parser and onnxruntime >= 1.17 take it
