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
- :mod:`conjugacy.experiments.cnn`: LeNet and ResNet-20 over windows of early training (sec. 4.3,
  fig. 4, S5, appendix D).
- :mod:`conjugacy.experiments.spectral_dynamics`: the four findings of Yunis et al. (2024) on the
  singular values and vectors of the weights (arXiv:2408.11804).

Each module's ``__all__`` is what a researcher uses: the config, ``run`` (returning the
:class:`~conjugacy.Results` record) and, for the trained ones, ``make_study``; the figures are in
``conjugacy.plots.<experiment>``. The API reference lists them (``docs/api/experiments.rst``).
"""
