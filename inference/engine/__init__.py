"""Attribution engine: pure torch + transformers, no Django. Public API re-exported here."""

from .adapters import ADAPTERS, ModelAdapter, UnsupportedModelError, adapter_for
from .attribution import PHASES, AttributionCancelled, CustomTarget, LogitDiff, attribute
from .corpus import CorpusError, TokenizedCorpus, read_documents
from .dashboard_files import read_layer, write_layer
from .dashboards import DashboardsCancelled, compute_dashboards
from .export import GraphFormatError, graph_to_json, load_raw, save_raw
from .graph import Graph
from .interventions import Intervention, InterventionError, InterventionResult, intervene
from .next_token import NextToken, top_next_tokens
from .pruning import PruneResult, graph_scores, prune
from .replacement import ModelLoadError, ReplacementModel
from .steering import SteeringResult, steer_generate
from .transcoders import TranscoderLoadError, Transcoders, load_transcoders

__all__ = [
    "ADAPTERS",
    "PHASES",
    "AttributionCancelled",
    "CorpusError",
    "CustomTarget",
    "DashboardsCancelled",
    "Graph",
    "GraphFormatError",
    "Intervention",
    "InterventionError",
    "InterventionResult",
    "LogitDiff",
    "ModelAdapter",
    "ModelLoadError",
    "NextToken",
    "PruneResult",
    "ReplacementModel",
    "SteeringResult",
    "TokenizedCorpus",
    "TranscoderLoadError",
    "Transcoders",
    "UnsupportedModelError",
    "adapter_for",
    "attribute",
    "compute_dashboards",
    "graph_scores",
    "graph_to_json",
    "intervene",
    "load_raw",
    "load_transcoders",
    "prune",
    "read_documents",
    "read_layer",
    "save_raw",
    "steer_generate",
    "top_next_tokens",
    "write_layer",
]
