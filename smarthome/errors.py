"""The one exception every stage turns into a one-line message instead of a traceback."""


class UserError(Exception):
    """An expected failure (missing broker, dataset, folder, model set, bad flag value).

    The message is shown as one line, without a traceback, and should say what to do.
    """
