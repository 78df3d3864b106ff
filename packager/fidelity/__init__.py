"""The fidelity step: how closely the packaged model follows the original on held-out samples.

kinds.py says which figures each output gets (class, regression, ignore), metrics.py measures them (and times
both models), check.py is the step package() runs and the warnings it draws from the figures. Quantization, the
budget search and pruning all read these; none of them owns them.
"""
