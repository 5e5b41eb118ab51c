import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # so `toy_envs:Id` resolves in this process and in workers
    sys.path.insert(0, HERE)
os.environ["PYTHONPATH"] = HERE + os.pathsep + os.environ.get("PYTHONPATH", "")


def pytest_collection_modifyitems(config, items):
    """The learning tests and the integration tests first, the unit tests last: `make test`
    runs two workers that take whole files (pytest-xdist, --dist loadfile), and long files
    started last would leave one worker alone at the end."""
    order = {"learning": 0, "integration": 1}
    items.sort(key=lambda item: order.get(os.path.basename(os.path.dirname(str(item.fspath))), 2))
