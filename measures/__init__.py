"""Helpers that `compare/` and `benchmarks/` share: peak memory of a call (`memory.py`), tables
for people to read (`tables.py`), where a number was measured (`machine.py`) and how far apart two
gradients are (`errors.py`). They import no other project folder."""
