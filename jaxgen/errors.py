"""The one exception type for mistakes a user can fix; the CLI prints it without a traceback."""


class UserError(Exception):
    """A problem caused by the user's input (config, data, workdir); the message says what to do."""


class UnknownVariant(KeyError):
    """A config file's get_config(variant) was asked for a variant it does not have."""


class Interrupted(Exception):
    """The run was stopped by SIGTERM/SIGINT after saving a checkpoint; rerun to resume."""
