"""costmodel: what training a large language model takes and costs, from first principles.

The public API, re-exported::

    import costmodel
    costmodel.gpu("H800-SXM").peak("fp8")             # dense peak, a Quantity
    costmodel.models.get("deepseek-v3").params_total  # exact count
    cfg = costmodel.presets.get("deepseek-v3")        # a TrainingConfig
    cfg.replace(**{"cluster.gpu": "H100-SXM"})
    costmodel.sweep(cfg, {"parallelism.pp": [8, 16], "cluster.gpu": ["H100-SXM", "H800-SXM"]})
    costmodel.search(cfg, objective="time", top=20)   # every layout, the best timed exactly
    costmodel.whatif(cfg, {"cluster.gpu": "H100-SXM"}, reoptimize=True)  # a counterfactual, deltas
    costmodel.estimate_program(costmodel.programs.get("deepseek-v3"))  # the whole bill
"""

from . import models, pipeline, presets, prices, programs
from .config import TrainingConfig
from .errors import EstimateOutOfRange, InfeasibleConfig, UnknownName, UnknownPeak, UnsupportedPrecision
from .estimate import Estimate, estimate, pipeline_of
from .hardware import GPU, gpu, gpus
from .layouts import search
from .program import Program, ProgramEstimate, estimate_program
from .sweeps import Sweep, sweep
from .uncertainty import Uncertainty, uncertainty
from .units import Q_, ureg
from .whatif import WhatIf, whatif
from .workload import Architecture, FlopsPerToken

__version__ = "0.1.0"

__all__ = [
    "Q_",
    "ureg",
    "GPU",
    "gpu",
    "gpus",
    "models",
    "presets",
    "Architecture",
    "FlopsPerToken",
    "TrainingConfig",
    "estimate",
    "Estimate",
    "pipeline_of",
    "sweep",
    "uncertainty",
    "Uncertainty",
    "search",
    "whatif",
    "WhatIf",
    "Program",
    "ProgramEstimate",
    "estimate_program",
    "programs",
    "prices",
    "Sweep",
    "InfeasibleConfig",
    "EstimateOutOfRange",
    "pipeline",
    "UnknownName",
    "UnknownPeak",
    "UnsupportedPrecision",
    "__version__",
]
