"""torchattacks, imported where an attack uses it: `pip install .` leaves it out, since its pin of an
old `requests` conflicts with streamlit (the Makefile installs it with --no-deps)."""

from engine.errors import optional_import

TORCHATTACKS_INSTALL = (
    "pip install --no-deps torchattacks==3.5.1 (without its dependencies: its old requests pin conflicts with "
    "streamlit)"
)


def torchattacks():
    """The torchattacks module; MissingDependency saying how to install it when absent."""
    return optional_import("torchattacks", "this attack", TORCHATTACKS_INSTALL)
