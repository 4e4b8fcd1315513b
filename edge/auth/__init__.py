"""edge.auth: who may charge where. The decision is a pure function (decide.py)
over the model (model.py); authorizer.py is the shell around it."""

from edge.auth.decide import AuthDecision, decide
from edge.auth.model import AuthModel, ModelError, build_model

__all__ = ["AuthDecision", "AuthModel", "ModelError", "build_model", "decide"]
