"""`run.py compare`, the research tool that puts unrolled and implicit hypergradients side by
side: each method's meta-gradient at one θ on one meta-batch against a converged reference
(error, time, peak memory), or short training runs under one budget (`--train`).

`command` holds the flags and `main`; `gradients`, `reference`, `measure` and `methods` compute
the scores; `training` the `--train` runs; `report` the table, JSON and figures. `memory` (peak
memory of a call) and `tables` (plain-text and markdown tables) are shared with `benchmarks/`
and import nothing from the project. Nothing is imported here, so those two load without Betty.
"""
