"""Layer implementations, one module per family; each registers its types.

Every module in this package is imported on first use of the registry, so adding
a layer family needs no edit here.
"""
import importlib
import pkgutil

_loaded = False


def load_all():
    global _loaded
    if _loaded:
        return
    _loaded = True
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
