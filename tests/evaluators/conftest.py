"""The official lvis-api as the reference of the LVIS evaluator tests."""
import logging
import os

import numpy as np
import pytest


@pytest.fixture(scope="module")
def lvis_api():
    """The official ``lvis`` package (0.5.3). It needs the aliases NumPy 2 removed (``np.float``...):
    they are put back while a test module uses it, and removed afterwards. Without the package the tests
    skip, except under continuous integration (environment variable ``CI`` set), where they fail."""
    aliases = {"float": float, "int": int, "bool": bool, "object": object}
    added = [name for name in aliases if name not in np.__dict__]
    for name in added:
        setattr(np, name, aliases[name])
    try:
        import lvis
    except ImportError as err:
        for name in added:
            delattr(np, name)
        message = f"reference package missing ({err}); install it with `pip install --no-deps lvis==0.5.3`"
        if os.environ.get("CI"):  # continuous integration must run the reference comparisons, not skip them
            pytest.fail(message + " (CI is set: the reference tests must run)")
        pytest.skip(message)
    logging.getLogger("lvis").setLevel(logging.ERROR)
    yield lvis
    for name in added:
        delattr(np, name)
