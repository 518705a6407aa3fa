from __future__ import annotations

import subprocess
import sys

import loopml

EXPECTED = {
    "ActiveRun",
    "AlreadyExists",
    "Client",
    "ColumnSpec",
    "DatasetRef",
    "IntegrityError",
    "InvalidInput",
    "InvalidState",
    "LoopmlError",
    "NotFound",
    "PermissionDenied",
    "Pipeline",
    "RunStatus",
    "Signature",
    "Stage",
    "__version__",
    "active_run",
    "flush",
    "get_client",
    "load_model",
    "log_artifact",
    "log_dataset",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "register_model",
    "run_pipeline",
    "search_runs",
    "set_client",
    "set_tags",
    "start_run",
    "step",
    "sweep",
}


def test_public_surface_is_exactly_the_documented_one() -> None:
    assert set(loopml.__all__) == EXPECTED
    for name in loopml.__all__:
        assert getattr(loopml, name) is not None


def test_import_is_lazy() -> None:
    code = (
        "import sys, loopml; heavy = [m for m in ('sqlalchemy', 'pandas', 'sklearn', "
        "'numpy', 'alembic', 'typer', 'optuna') if m in sys.modules]; print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"import loopml pulled in: {done.stdout}"


def test_the_cli_loads_no_storage_or_data_library_before_a_command_needs_it() -> None:
    """``loopml --help`` and every command's parsing stay fast: the command modules import
    the database, Arrow and model libraries inside the commands that use them."""
    code = (
        "import sys, loopml.cli.main; loopml.cli.main.build(); heavy = [m for m in "
        "('sqlalchemy', 'pandas', 'sklearn', 'numpy', 'pyarrow', 'alembic', 'fsspec') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"the CLI's modules pulled in: {done.stdout}"
