"""fleet_tui: the terminal dashboard and command line of Mosaic Fleet.

Importing the package is cheap on purpose: command-line verbs (`ps`, hooks) must start fast,
so nothing here imports Textual, Rich or pydantic.
"""

__version__ = "0.1.0"
