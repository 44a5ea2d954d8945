"""Typed errors. Every CLI turns a UserError into one line on stderr and exit code 2."""


class UserError(Exception):
    """Bad input the user can fix (a file, a flag, a config value). Message is one line."""


class DatasetError(UserError):
    """A dataset directory, its meta.json or one of its arrays is missing or malformed."""


class ConfigError(UserError):
    """A config file or a --set override is invalid."""


class BundleError(UserError):
    """An exported bundle is missing, malformed, or does not match the robot it should drive."""


class SpecMismatch(BundleError):
    """The bundle's observation/action spec does not match the robot or camera."""


class MissingDependency(UserError):
    """An optional package is not installed; the message names the extra or the install step."""


def require(module: str, extra: str | None = None, hint: str | None = None):
    """Import an optional module or raise MissingDependency naming how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        how = hint or (f"pip install 'clamkit[{extra}]'" if extra else f"pip install {module}")
        raise MissingDependency(f"{module} is not installed ({e}); install it with: {how}") from e
