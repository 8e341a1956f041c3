"""A local stand-in for the vendor's analytics and monitoring API, with ground truth."""

from archiver.simulator.server import Simulator
from archiver.simulator.traffic import SimConfig, Traffic

__all__ = ["SimConfig", "Simulator", "Traffic"]
