import inspect
import os
import sys
import types
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

if not os.environ.get("MOTEKIT_MICROPYTHON32"):
    # `./dev test` exports it; a bare pytest finds the same cached 32-bit unix port (building it once, ~1 min,
    # where the toolchain is there), so the viper32-on-a-32-bit-word tests do not quietly skip
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
    try:
        from motekit.builds import BuildError
        from motekit.emu import unix32
        try:
            os.environ["MOTEKIT_MICROPYTHON32"] = str(unix32())
        except BuildError as e:
            print(f"conftest: no 32-bit MicroPython, its tests skip: {str(e).splitlines()[0]}", file=sys.stderr)
    finally:
        sys.path.pop(0)

import mpy  # noqa: E402

E2E = TESTS / "e2e"
HOST = TESTS / "host"


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: processes talking to each other (a virtual or emulated board, "
                            "mosquitto, the BLE rig, an installed wheel): everything in tests/e2e, and the few "
                            "tests elsewhere that start a board; `pytest -m \"not e2e\"` is the quick loop")


def pytest_collection_modifyitems(config, items):
    """Everything under tests/e2e carries the `e2e` marker (the folder says it; no decorator to forget), and
    nothing under tests/host runs device code (that is what tests/firmware is for)."""
    for item in items:
        where = Path(str(item.path)).resolve().parents
        if E2E in where:
            item.add_marker(pytest.mark.e2e)
        elif HOST in where and ("impl" in getattr(item, "fixturenames", ()) or
                                hasattr(getattr(item, "module", None), "run_mpy")):
            raise pytest.UsageError(f"{item.nodeid} runs firmware code under an interpreter: move it to "
                                    f"tests/firmware (tests/host is the host toolkit under CPython)")


def _reaches(fn, module, names=("run_mpy",), seen=None) -> bool:
    """Whether `fn` (a test or fixture) calls one of `names`, directly or through the module's own helpers."""
    seen = set() if seen is None else seen
    code = getattr(fn, "__code__", None)
    if code is None or code in seen:
        return False
    seen.add(code)
    stack, refs = [code], set()
    while stack:
        c = stack.pop()
        refs.update(c.co_names)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    if refs & set(names):
        return True
    for r in refs:
        obj = getattr(module, r, None)
        home = sys.modules.get(getattr(obj, "__module__", None) or "")
        # the module's own helpers, and helpers imported from other test modules (tests/*/*.py)
        if isinstance(obj, types.FunctionType) and home is not None and home is not mpy and \
                TESTS in Path(getattr(home, "__file__", "") or "/").resolve().parents:
            if _reaches(obj, home, names, seen):
                return True
    return False


def pytest_generate_tests(metafunc):
    """Every test that reaches tests/mpy.py's run_mpy runs under each interpreter (mpy.IMPLS), same assertions."""
    if any(m.name == "parametrize" and "impl" in m.args[0] for m in metafunc.definition.iter_markers()):
        return                                  # the test names its interpreters itself
    if "impl" in metafunc.fixturenames:
        metafunc.parametrize("impl", mpy.IMPLS)
        return
    fn = metafunc.function
    fixtures = [metafunc._arg2fixturedefs.get(n, [None])[-1] for n in metafunc.fixturenames]
    mod = metafunc.module
    # a broader-scoped fixture runs once, before any test's interpreter is chosen: it does not count
    if _reaches(fn, mod) or any(fd is not None and fd.scope == "function" and inspect.getmodule(fd.func) is mod
                                and _reaches(fd.func, mod) for fd in fixtures):
        metafunc.fixturenames.append("impl")
        metafunc.parametrize("impl", mpy.IMPLS)


@pytest.fixture(autouse=True)
def _device_impl(request):
    """Point run_mpy at the test's interpreter (parametrized `impl`), else MicroPython."""
    cs = getattr(request.node, "callspec", None)
    impl = cs.params.get("impl", "micropython") if cs is not None else "micropython"
    mpy.CURRENT = impl
    yield
    mpy.CURRENT = "micropython"
