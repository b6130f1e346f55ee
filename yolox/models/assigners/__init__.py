from .atss import ATSSAssigner
from .simota import SimOTAAssigner, SimOTAResult

__all__ = ["ATSSAssigner", "SimOTAAssigner", "SimOTAResult"]
