"""Converters from other frameworks to ONNX, each imported only when its kind of model arrives.

    from_torch    an nn.Module or ExportedProgram, through torch.onnx.export (dynamo)
    from_pt2      a .pt2 file (torch.export.save), loaded without running code unless trusted
    from_sklearn  a fitted scikit-learn estimator or Pipeline, through skl2onnx
    from_pickle   a scikit-learn model in a .joblib/.pkl file, only when trusted
    check         runs the ONNX model with onnxruntime and compares it with the source model's outputs
    options       ConvertOptions: opset, dynamic batch, names, tolerance, trust

Every converter returns a Source whose options record the exporter, opset, tolerance and measured
difference; they land in the bundle's provenance.
"""

from .options import ConvertOptions

__all__ = ["ConvertOptions"]
