"""Carrier simulator: fake RingCentral and Twilio HTTP APIs for tests and demos."""

from gateway.carriersim.app import create_sim_app, run_carrier_sim
from gateway.carriersim.state import SIM_STATE, SimCredentials, SimState

__all__ = ["SIM_STATE", "SimCredentials", "SimState", "create_sim_app", "run_carrier_sim"]
