"""The code digester on a real project: files written to disk, imported, changed, imported again.

Each test writes a small package (``shop``) under a project root in ``tmp_path``, imports
it fresh and digests one of its functions. A change is made by rewriting a file and
importing the package again, as a person editing their project between two pipeline runs
would. What matters is which entries the digest names and which of them change: a helper
missed is a stale cache (wrong results), an entry that changes without a code change is a
cache that never hits.
"""

from __future__ import annotations

import importlib
import linecache
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loopml.adapters.code_digest import SourceCodeDigester
from loopml.domain.errors import InvalidInput
from loopml.domain.pipelines import Step

PACKAGES = ("shop", "vendored", "elsewhere")

CONFIG = """\
THRESHOLD = 0.5
UNUSED = 1
COLUMNS = frozenset({"price", "rooms", "area", "year", "garden", "garage"})
"""

FEATURES = """\
import numpy as np

SCALE = 2


def clean(x):
    return [v for v in x if v is not None]


def build(x):
    # turn raw values into features
    return [v * SCALE for v in clean(x)]


def unused_helper(x):
    return x


class Scaler:
    def __init__(self, k):
        self.k = k

    def apply(self, xs):
        return [x * self.k for x in xs]


def make_scaler_fn(k):
    def scaled(xs):
        return [clean([x])[0] * k for x in xs]

    return scaled


def ping(n):
    return 0 if n <= 0 else pong(n - 1)


def pong(n):
    return ping(n - 1)
"""

STEPS = """\
import numpy as np

import shop.features
from loopml.domain.pipelines import step
from shop import config, features
from shop.config import COLUMNS, THRESHOLD
from shop.features import Scaler, make_scaler_fn, ping
from vendored import vendored_helper
from elsewhere import outside_helper

double = make_scaler_fn(2)


@step(outputs="feats")
def featurize(raw):
    return features.build(raw)


def train(feats):
    return Scaler(3).apply(feats)


def thresholded(x):
    return x > THRESHOLD


def shadowing(build, x):
    # 'build' is the parameter here, not shop.features.build
    return build(x)


def with_local(x):
    build = len
    return build(x)


def mean_it(x):
    return np.mean(x) + np.linalg.norm(x)


def module_parameter(features):
    # a parameter named like the imported module `features`
    return features.build(1)


def uses_libraries(x):
    return vendored_helper(x) + outside_helper(x)


def bounce(n):
    return ping(n)


def use_closure(xs):
    return double(xs)


def dotted(raw):
    return shop.features.build(raw)


def attribute_constant(x):
    return x > config.THRESHOLD


def known_columns(name):
    return name in COLUMNS
"""


class Project:
    """A project root on disk whose package is imported afresh on every :meth:`load`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, relative: str, text: str) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.root / relative
        text = path.read_text()
        assert old in text, f"{old!r} is not in {relative}"
        path.write_text(text.replace(old, new))

    def load(self, module: str) -> Any:
        forget_packages()
        importlib.invalidate_caches()
        linecache.clearcache()
        return importlib.import_module(module)

    def digest(self, name: str, module: str = "shop.steps") -> dict[str, str]:
        func = getattr(self.load(module), name)
        return SourceCodeDigester(self.root).digest(func)


def forget_packages() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in PACKAGES:
            del sys.modules[name]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    root = tmp_path / "proj"
    site = root / ".venv" / "lib" / "python3.11" / "site-packages"
    outside = tmp_path / "outside"
    proj = Project(root)
    proj.write("shop/__init__.py", "")
    proj.write("shop/config.py", CONFIG)
    proj.write("shop/features.py", FEATURES)
    proj.write("shop/steps.py", STEPS)
    # a library installed inside the project's own virtual environment, and one outside it
    site.mkdir(parents=True)
    (site / "vendored.py").write_text("def vendored_helper(x):\n    return x\n")
    outside.mkdir()
    (outside / "elsewhere.py").write_text("def outside_helper(x):\n    return x\n")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # each load reads the source
    for path in (outside, site, root):
        monkeypatch.syspath_prepend(str(path))
    yield proj
    forget_packages()


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


# --- what is followed ---------------------------------------------------------------


def test_a_step_names_itself_and_the_project_helpers_it_reaches(project: Project) -> None:
    digest = project.digest("featurize")
    assert set(digest) == {
        "shop/steps.py:featurize",
        "shop/features.py:build",  # through `features.build`
        "shop/features.py:clean",  # called by build
        "shop/features.py:SCALE",  # a module constant build uses
    }
    assert all(len(value) == 32 and int(value, 16) >= 0 for value in digest.values())


def test_a_step_is_unwrapped_to_its_function(project: Project) -> None:
    steps = project.load("shop.steps")
    assert isinstance(steps.featurize, Step)
    digester = SourceCodeDigester(project.root)
    assert digester.digest(steps.featurize) == digester.digest(steps.featurize.func)
    assert "shop/steps.py:featurize" in digester.digest(steps.featurize)


def test_a_class_the_step_instantiates_is_part_of_its_code(project: Project) -> None:
    before = project.digest("train")
    assert set(before) == {"shop/steps.py:train", "shop/features.py:Scaler"}
    project.edit("shop/features.py", "return [x * self.k for x in xs]", "return list(xs)")
    assert changed(before, project.digest("train")) == {"shop/features.py:Scaler"}


def test_a_closure_is_followed_with_the_values_it_closed_over(project: Project) -> None:
    before = project.digest("use_closure")
    assert set(before) == {
        "shop/steps.py:use_closure",
        "shop/features.py:make_scaler_fn.<locals>.scaled",
        "shop/features.py:clean",
        "shop/features.py:k",  # the closed-over factor
    }
    project.edit("shop/steps.py", "double = make_scaler_fn(2)", "double = make_scaler_fn(3)")
    assert changed(before, project.digest("use_closure")) == {"shop/features.py:k"}


def test_mutual_recursion_terminates_and_names_both_functions(project: Project) -> None:
    assert set(project.digest("bounce")) == {
        "shop/steps.py:bounce",
        "shop/features.py:ping",
        "shop/features.py:pong",
    }


def test_a_function_reached_through_a_dotted_module_path_is_followed(project: Project) -> None:
    # `import shop.features` then `shop.features.build(...)`: as common as `features.build`
    before = project.digest("dotted")
    assert "shop/features.py:build" in before
    project.edit("shop/features.py", "return [v * SCALE for v in", "return [v * 3 for v in")
    assert "shop/features.py:build" in changed(before, project.digest("dotted"))


def test_a_constant_read_as_a_module_attribute_is_part_of_the_code(project: Project) -> None:
    before = project.digest("attribute_constant")
    project.edit("shop/config.py", "THRESHOLD = 0.5", "THRESHOLD = 0.7")
    after = project.digest("attribute_constant")
    assert changed(before, after) == {"shop/steps.py:config.THRESHOLD"}


# --- what is not followed -----------------------------------------------------------


def test_a_parameter_named_like_a_project_function_does_not_pull_it_in(
    project: Project,
) -> None:
    assert set(project.digest("shadowing")) == {"shop/steps.py:shadowing"}
    assert set(project.digest("with_local")) == {"shop/steps.py:with_local"}
    assert set(project.digest("module_parameter")) == {"shop/steps.py:module_parameter"}


def test_library_code_is_left_to_the_declared_library_versions(project: Project) -> None:
    # numpy (outside the root), a module in the project's .venv and one outside the root
    assert set(project.digest("mean_it")) == {"shop/steps.py:mean_it"}
    assert set(project.digest("uses_libraries")) == {"shop/steps.py:uses_libraries"}


def test_an_unused_helper_or_constant_changing_changes_nothing(project: Project) -> None:
    before = project.digest("featurize")
    project.edit(
        "shop/features.py",
        "def unused_helper(x):\n    return x",
        "def unused_helper(x):\n    return -x",
    )
    project.edit("shop/config.py", "UNUSED = 1", "UNUSED = 2")
    assert project.digest("featurize") == before


# --- what changes the digest --------------------------------------------------------


def test_a_helper_body_change_changes_exactly_that_helper(project: Project) -> None:
    before = project.digest("featurize")
    project.edit("shop/features.py", "if v is not None]", "if v]")
    assert changed(before, project.digest("featurize")) == {"shop/features.py:clean"}


def test_comments_blank_lines_and_formatting_change_nothing(project: Project) -> None:
    before = project.digest("featurize")
    project.edit(
        "shop/features.py",
        "def build(x):\n    # turn raw values into features\n"
        "    return [v * SCALE for v in clean(x)]",
        "def build(x):  # builds features\n\n\n    # comment rewritten\n    return [\n"
        "        v * SCALE  # scaled\n        for v in clean(x)\n    ]",
    )
    project.edit(
        "shop/steps.py", "    return features.build(raw)", "\n    return features.build(raw)  # why"
    )
    assert project.digest("featurize") == before


def test_a_constant_change_is_detected_and_named(project: Project) -> None:
    before = project.digest("thresholded")
    assert "shop/steps.py:THRESHOLD" in before
    project.edit("shop/config.py", "THRESHOLD = 0.5", "THRESHOLD = 0.7")
    assert changed(before, project.digest("thresholded")) == {"shop/steps.py:THRESHOLD"}


def test_a_frozenset_constant_digests_the_same_in_every_process(project: Project) -> None:
    # the order a frozenset of strings iterates in follows string hashing, which Python
    # salts per process: a digest of its repr would miss the cache on every run
    script = (
        "import sys; from pathlib import Path\n"
        "from loopml.adapters.code_digest import SourceCodeDigester\n"
        "import shop.steps\n"
        "d = SourceCodeDigester(Path(sys.argv[1])).digest(shop.steps.known_columns)\n"
        "print(d['shop/steps.py:COLUMNS'])\n"
    )
    path = os.pathsep.join(p for p in sys.path if p)
    digests = set()
    for seed in ("1", "2", "3"):
        env = {
            **os.environ,
            "PYTHONHASHSEED": seed,
            "PYTHONPATH": path,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        out = subprocess.run(
            [sys.executable, "-c", script, str(project.root)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1, digests


# --- functions without source -------------------------------------------------------

EXEC_SOURCE = """\
def make_features(xs):
    kept = [x for x in xs if x is not None]
    return sorted(kept, key=lambda x: -x)
"""


def exec_function(source: str) -> Callable[..., Any]:
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # as a REPL would: no file to read the source from
    func: Callable[..., Any] = namespace["make_features"]
    return func


def test_a_function_without_source_is_digested_from_its_bytecode(tmp_path: Path) -> None:
    digester = SourceCodeDigester(tmp_path)
    first = digester.digest(exec_function(EXEC_SOURCE))
    [(name, value)] = first.items()
    assert name.endswith(":make_features") and len(value) == 32
    edited = EXEC_SOURCE.replace("-x", "x")
    assert SourceCodeDigester(tmp_path).digest(exec_function(edited)) != first


def test_the_same_code_without_source_gives_the_same_digest_again(tmp_path: Path) -> None:
    # a comprehension and a lambda are nested code objects: their repr holds an address
    first = SourceCodeDigester(tmp_path).digest(exec_function(EXEC_SOURCE))
    again = SourceCodeDigester(tmp_path).digest(exec_function(EXEC_SOURCE))
    assert again == first


# --- library versions ---------------------------------------------------------------


def test_library_version_is_the_installed_distribution_version(tmp_path: Path) -> None:
    import numpy
    import sklearn

    digester = SourceCodeDigester(tmp_path)
    assert digester.library_version("numpy") == numpy.__version__
    assert digester.library_version("scikit-learn") == sklearn.__version__


def test_an_unknown_library_is_refused_with_its_name_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"'no-such-dist-xyz' .* not installed; install it"):
        SourceCodeDigester(tmp_path).library_version("no-such-dist-xyz")
