"""The moto release the sandbox's patches were written against.

The sandbox replaces methods of moto's backends (see `core.patching.Patcher`), so a moto release can change
what the patches rely on even within a patch version (5.2.6 stopped reading the `TYPE` attribute of EKS
errors). pyproject.toml pins moto to exactly this version, constraints.txt pins the rest of the test
environment, and tests/sandbox/test_moto_pin.py fails when the installed moto differs: moving to a new
moto is a deliberate change, with its own commit that updates all three and runs the suite.
"""

MOTO_VERSION = "5.2.6"
