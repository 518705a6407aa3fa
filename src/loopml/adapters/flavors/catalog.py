"""The catalog of model flavors: look one up by name, or detect the one a model needs.

Detection tries the most specific flavors first: XGBoost and LightGBM scikit-learn
estimators are also scikit-learn estimators, and must be stored in their native formats.
It never picks ``python_function``: storing a pickle is always an explicit, trusted choice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml.adapters.flavors.lightgbm import LightGBMFlavor
from loopml.adapters.flavors.onnx import OnnxFlavor
from loopml.adapters.flavors.pyfunc import PythonFunctionFlavor
from loopml.adapters.flavors.sklearn import SklearnFlavor
from loopml.adapters.flavors.xgboost import XGBoostFlavor
from loopml.domain.errors import InvalidInput

if TYPE_CHECKING:
    from loopml.ports import ModelFlavor


class DefaultFlavorCatalog:
    """The five built-in flavors: sklearn, xgboost, lightgbm, onnx and python_function."""

    def __init__(self) -> None:
        sklearn = SklearnFlavor()
        xgboost = XGBoostFlavor()
        lightgbm = LightGBMFlavor()
        onnx = OnnxFlavor()
        pyfunc = PythonFunctionFlavor()
        self._by_name: dict[str, ModelFlavor] = {
            flavor.name: flavor for flavor in (sklearn, xgboost, lightgbm, onnx, pyfunc)
        }
        self._detection_order: tuple[ModelFlavor, ...] = (xgboost, lightgbm, onnx, sklearn)

    def get(self, name: str) -> ModelFlavor:
        try:
            return self._by_name[name]
        except KeyError as exc:
            raise InvalidInput(
                f"unknown model flavor {name!r}; known flavors: {', '.join(self.names())}"
            ) from exc

    def detect(self, model: object) -> ModelFlavor:
        for flavor in self._detection_order:
            if flavor.accepts(model):
                return flavor
        detectable = ", ".join(flavor.name for flavor in self._detection_order)
        raise InvalidInput(
            f"no model flavor accepts a {type(model).__module__}.{type(model).__qualname__}; "
            f"detected flavors are {detectable}. To store an arbitrary Python object, pass "
            f'flavor="python_function" with trusted=True: it is saved with cloudpickle, and '
            f"loading it runs code from the file, so only load files you produced or audited"
        )

    def names(self) -> list[str]:
        return list(self._by_name)
