"""``python -m riverguard.detectors > docs/parameters.md``: the parameter tables of every detector."""

from . import REGISTRY, steps_of
from .params import markdown

print(markdown([REGISTRY[name] for name in sorted(REGISTRY)], steps_of), end="")
