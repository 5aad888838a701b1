"""One module per experiment of Redman et al. (NeurIPS 2024), each with a frozen config and
``run(config) -> results``.

Modules are imported on demand (``from conjugacy.experiments import optimizers``) so that running
one experiment never imports the dependencies of another (torch, for instance).

- :mod:`conjugacy.experiments.optimizers`: online mirror descent, online gradient descent and the
  bisection method (paper sec. 4.1, fig. 2 and S1, appendix A).
"""
