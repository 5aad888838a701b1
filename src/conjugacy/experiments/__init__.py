"""One module per experiment of Redman et al. (NeurIPS 2024), each with a frozen config and
``run(config) -> results``.

Modules are imported on demand (``from conjugacy.experiments import optimizers``) so that running
one experiment never imports the dependencies of another (torch, for instance).

- :mod:`conjugacy.experiments.optimizers`: online mirror descent, online gradient descent and the
  bisection method (paper sec. 4.1, fig. 2 and S1, appendix A).
- :mod:`conjugacy.experiments.fcn`: fully connected networks of different widths (sec. 4.2,
  fig. 3, S3, S4, appendix C).
- :mod:`conjugacy.experiments.grokking`: one-layer transformers that do and do not grok (sec. 4.4,
  fig. 5, S6, appendix E).
"""
