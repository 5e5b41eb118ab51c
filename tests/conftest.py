import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # so `toy_envs:Id` resolves in this process and in workers
    sys.path.insert(0, HERE)
os.environ["PYTHONPATH"] = HERE + os.pathsep + os.environ.get("PYTHONPATH", "")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """`make test` runs two pytest-xdist workers with --dist loadgroup: tests are handed out one
    at a time, except those of a module (or class) with a module- (class-) scoped fixture,
    which go to one worker together (marked here with xdist_group before xdist reads the
    marks), so that a Ray cluster or a trained run folder is made once. xdist hands out the
    groups first (the largest first), then the other tests in this order: the learning tests,
    the integration tests, the unit tests last, so that no long test starts at the end and
    leaves one worker alone."""
    order = {"learning": 0, "integration": 1}
    items.sort(key=lambda item: order.get(os.path.basename(os.path.dirname(str(item.fspath))), 2))
    for item in items:
        group = shared_scope(item)
        if group is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(name=group))


def shared_scope(item) -> str | None:
    """The module's (or the class's) node id when the test uses a module- (class-) scoped
    fixture, else None: the test can run on any worker."""
    info = getattr(item, "_fixtureinfo", None)
    scopes = {d.scope for defs in (info.name2fixturedefs.values() if info else ()) for d in defs}
    module = item.nodeid.split("::")[0]
    if scopes & {"module", "package"}:
        return module
    if "class" in scopes and item.cls is not None:
        return f"{module}::{item.cls.__name__}"
    return None
