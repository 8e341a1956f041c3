"""A local stand-in for the vendor's analytics, monitoring and GraphQL APIs, with ground truth."""

from archiver.simulator.server import Simulator
from archiver.simulator.traffic import SimConfig, Traffic

__all__ = ["SimConfig", "Simulator", "Traffic"]
