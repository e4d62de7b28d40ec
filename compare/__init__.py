"""`run.py compare`: unrolled and implicit hypergradients side by side, either each method's
meta-gradient at one θ on one meta-batch against a converged reference (error, time, peak
memory), or short training runs under one budget (`--train`).

`command` holds the flags and `main`; `gradients`, `reference`, `measure` and `methods` compute
the scores; `training` the `--train` runs; `report` the table, JSON and figures.
"""
