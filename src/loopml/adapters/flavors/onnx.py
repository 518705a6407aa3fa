"""ONNX models, stored as one serialised ``onnx.ModelProto`` and run with onnxruntime.

Loading returns an :class:`OnnxModel` holding an ``onnxruntime.InferenceSession`` on the
CPU. Its ``predict`` feeds the model's first input and returns its first output, which is
the shape of models converted from scikit-learn, XGBoost or LightGBM (skl2onnx,
onnxmltools). The protobuf holds no Python code, so ``trusted`` is ignored on load.
Models whose weights live in external data files are refused when saved: the stored
artifact is a single file, and onnxruntime confines any external data a file references
to the file's own directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopml.domain.errors import InvalidInput

if TYPE_CHECKING:
    from pathlib import Path

    import numpy.typing as npt

# ONNX tensor types of the first input, mapped to the numpy dtype callers' data is cast to.
_INPUT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
}


def _is_model_proto(model: object) -> bool:
    """True for ``onnx.ModelProto`` (checked by module name first: imports nothing else)."""
    module = type(model).__module__
    if module != "onnx" and not module.startswith("onnx."):
        return False
    import onnx

    return isinstance(model, onnx.ModelProto)


class OnnxModel:
    """A loaded ONNX model.

    Attributes:
        session: The ``onnxruntime.InferenceSession`` (CPUExecutionProvider).
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        first_input = session.get_inputs()[0]
        self._input_name: str = first_input.name
        self._input_type: str = first_input.type
        self._output_name: str = session.get_outputs()[0].name

    def predict(self, X: Any) -> npt.NDArray[Any]:  # noqa: N803 - the scikit-learn name
        """Run the model on ``X`` (a numpy array, a pandas DataFrame or nested lists).

        ``X`` is cast to the dtype of the model's first input (float32 for models converted
        from scikit-learn); the first output is returned as it comes, e.g. shape (n, 1) for
        a regressor.
        """
        import numpy as np
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

        dtype = _INPUT_DTYPES.get(self._input_type)
        try:
            if hasattr(X, "to_numpy"):  # pandas DataFrame or Series
                array = X.to_numpy(dtype=dtype)
            else:
                array = np.asarray(X, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"cannot convert the input to {dtype or 'an array'} for ONNX input "
                f"{self._input_name!r} of type {self._input_type}: {exc}"
            ) from exc
        try:
            outputs = self.session.run([self._output_name], {self._input_name: array})
        except (ort_errors.InvalidArgument, ort_errors.Fail) as exc:
            raise InvalidInput(
                f"the ONNX model refused input of shape {array.shape} and dtype "
                f"{array.dtype} for {self._input_name!r}: {exc}"
            ) from exc
        result: npt.NDArray[Any] = outputs[0]
        return result


class OnnxFlavor:
    """Saves ``onnx.ModelProto`` with ``SerializeToString`` and loads it as :class:`OnnxModel`."""

    name = "onnx"
    file_name = "model.onnx"
    load_cache = False

    def accepts(self, model: object) -> bool:
        return _is_model_proto(model)

    def save(self, model: object, path: Path) -> None:
        if not self.accepts(model):
            raise InvalidInput(
                f"the onnx flavor stores onnx.ModelProto objects, got "
                f"{type(model).__module__}.{type(model).__qualname__}; convert the model "
                f"first (e.g. skl2onnx.to_onnx)"
            )
        import onnx

        proto: Any = model
        external = [
            tensor.name
            for tensor in proto.graph.initializer
            if tensor.data_location == onnx.TensorProto.EXTERNAL
        ]
        if external:
            raise InvalidInput(
                f"the ONNX model keeps tensors in external data files ({', '.join(external)}); "
                f"load it with onnx.load(path, load_external_data=True) so it can be stored "
                f"as one file"
            )
        path.write_bytes(proto.SerializeToString())

    def load(self, path: Path, *, trusted: bool) -> OnnxModel:
        import onnxruntime
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

        try:
            # From the path, not bytes: external data then resolves inside its directory.
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except (
            ort_errors.Fail,
            ort_errors.InvalidArgument,
            ort_errors.InvalidGraph,
            ort_errors.InvalidProtobuf,
            ort_errors.NoSuchFile,
        ) as exc:
            raise InvalidInput(f"{path} is not a loadable ONNX model: {exc}") from exc
        except ort_errors.NotImplemented as exc:
            raise InvalidInput(
                f"{path} uses an operator or type onnxruntime {onnxruntime.__version__} "
                f"does not implement: {exc}"
            ) from exc
        return OnnxModel(session)

    def concurrent_predict(self, model: object) -> bool:
        return True  # onnxruntime's InferenceSession.run is thread-safe

    def block_model(self, model: object, columns: tuple[str, ...]) -> object | None:
        """The loaded :class:`OnnxModel` itself: it turns a frame into the same array the
        block already is (its columns in order, cast to the input's dtype)."""
        return model if isinstance(model, OnnxModel) else None

    def describe(self, model: object) -> dict[str, str]:
        import onnx

        proto: Any = model
        opsets = sorted({f"{op.domain or 'ai.onnx'}={op.version}" for op in proto.opset_import})
        info = {
            "onnx": str(onnx.__version__),
            "onnx_ir_version": str(proto.ir_version),
            "onnx_opsets": ",".join(opsets),
        }
        if proto.producer_name:
            info["onnx_producer"] = f"{proto.producer_name} {proto.producer_version}".strip()
        return info
