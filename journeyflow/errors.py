"""The few errors journeyflow raises on purpose.

Bad *input events* never raise: they become dead letters (see
:mod:`journeyflow.events`). These errors are for the operator of the job:
a bad setting, a rule that does not compile, state that cannot be read back,
a broker or store that cannot be reached at start-up.
"""

__all__ = [
    "JourneyflowError",
    "ConfigError",
    "RuleError",
    "StateSerializationError",
    "ConnectionFailure",
]


class JourneyflowError(Exception):
    """Root of every error journeyflow raises on purpose."""


class ConfigError(JourneyflowError):
    """A setting is missing, unknown or out of range."""


class RuleError(ConfigError):
    """A segment or trigger rule does not compile or names an unknown field."""


class StateSerializationError(JourneyflowError):
    """Keyed state could not be encoded or decoded."""


class ConnectionFailure(JourneyflowError):
    """Kafka or Redis could not be reached within the start-up deadline."""
