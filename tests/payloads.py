"""Pickles that run code when loaded: they create a marker file, then return a harmless value, so a test
can tell whether loading a file ran code in it."""

import pathlib


def touch_and_return(marker, value):
    pathlib.Path(marker).touch()
    return value


class RunsCode:
    """Unpickles to `value`, creating `marker` on the way."""

    def __init__(self, marker, value):
        self.marker, self.value = str(marker), value

    def __reduce__(self):
        return touch_and_return, (self.marker, self.value)
