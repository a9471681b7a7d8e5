"""Small test suites that the demo copies into a temporary folder and runs
with pytest: ``conftest.py`` comes from `suite_conftest`, the test modules
from `shared`, `isolated` and `grouped`."""
