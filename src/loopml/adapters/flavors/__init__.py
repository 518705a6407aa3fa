"""Model flavors: how each family of models is saved to one file and loaded back.

Every flavor writes a single file named after its ``file_name`` in a format that cannot run
code when read (skops, XGBoost UBJSON, LightGBM text, ONNX protobuf), except
``python_function``, which stores a cloudpickle and refuses to load it without explicit
trust. :class:`~loopml.adapters.flavors.catalog.DefaultFlavorCatalog` holds them all and
picks one for a model. Heavy libraries are imported inside the methods that use them, so
importing this package stays fast and detecting a model's flavor never imports a library
the model does not come from.
"""
