"""The CNNs of the paper's early-phase study (Redman et al., NeurIPS 2024, sec. 4.3, appendix D),
and the one-layer transformer of its grokking study (:class:`OneLayerTransformer`, sec. 4.4).

The paper trains "LeNet" on MNIST and ResNet-20 on CIFAR-10 with the ShrinkBench framework
(JJGO/shrinkbench) and observes the weights of the last hidden -> output layer. "LeNet" is ambiguous
there (SPEC section 5C):

- :class:`MnistNet` (``"lenet"``, the default): the network ShrinkBench's model registry exports
  for MNIST -- conv 20@5x5, 2x2 max-pool, conv 50@5x5, 2x2 max-pool, fc 800 -> 500 -> 10, ReLU,
  log-softmax output (the Caffe "LeNet" of the MNIST tutorials). 431,080 parameters; observed
  ``fc2.weight`` (10 x 500 = 5,000 weights). Chosen because it is the only LeNet a ShrinkBench user
  can instantiate by name, so it is what the paper's configuration resolves to.
- :class:`LeNet5` (``"lenet5"``): the unexported ``LeNet`` class of the same ShrinkBench file --
  conv 6@3x3, pool, conv 16@3x3, pool, fc 400 -> 120 -> 84 -> 10. 60,074 parameters; observed
  ``fc3.weight`` (10 x 84).
- :class:`LeNet300100` (``"lenet300"``): the fully connected LeNet-300-100 (784 -> 300 -> 100 -> 10)
  of Frankle & Carbin, whence the Adam 1.2e-3 / batch 60 setting comes. 266,610 parameters;
  observed ``fc3.weight`` (10 x 100).
- :class:`ResNet20` (``"resnet20"``): He et al. (2016) ResNet-20 for CIFAR as in ShrinkBench's
  ``cifar10_resnet`` (after Y. Idelbayev): conv 16@3x3, three stages of three basic blocks (16, 32,
  64 channels, stride 2 at stages 2 and 3), batch norm, option-A shortcuts (parameter-free: stride-2
  subsampling and zero-padded channels), global average pool, ``linear`` 64 -> 10;
  Kaiming-normal init of conv and linear weights. 269,722 parameters; observed ``linear.weight``
  (640 weights).

Every constructor draws its initial weights from an optional ``torch.Generator`` (CPU), and
:func:`build_model` leaves the global random state as it was; the distributions are PyTorch's defaults
(``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and biases of ``nn.Linear`` / ``nn.Conv2d``)
and, for ResNet-20, ``kaiming_normal_`` (fan-in, gain sqrt(2)) for weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_choice, check_int, check_seed

__all__ = [
    "ARCHITECTURES",
    "FCN",
    "INPUT_SHAPES",
    "OBSERVED_LAYERS",
    "LeNet5",
    "LeNet300100",
    "MnistNet",
    "OneLayerTransformer",
    "ResNet20",
    "build_model",
    "count_parameters",
]


def _uniform_(t: torch.Tensor, bound: float, generator: torch.Generator | None) -> None:
    draw = torch.rand(t.shape, generator=generator, dtype=torch.float32)
    t.copy_((2 * draw - 1) * bound)


def _default_init(module: nn.Module, generator: torch.Generator | None) -> None:
    """PyTorch's default init of every Linear/Conv2d, drawn from ``generator``.

    ``kaiming_uniform_(a=sqrt(5))`` on weights is ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``; biases
    use the same bound.
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                _uniform_(m.weight, bound, generator)
                if m.bias is not None:
                    _uniform_(m.bias, bound, generator)


class MnistNet(nn.Module):
    """ShrinkBench's ``MnistNet``: conv 20@5x5, pool, conv 50@5x5, pool, fc 800-500-10.

    Input ``(batch, 1, 28, 28)``; output log-probabilities ``(batch, 10)`` (use ``nll_loss``).

    Examples
    --------
    >>> model = MnistNet(generator=torch.Generator().manual_seed(0))
    >>> model(torch.zeros(2, 1, 28, 28)).shape, count_parameters(model)
    (torch.Size([2, 10]), 431080)
    """

    def __init__(self, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5, 1)
        self.conv2 = nn.Conv2d(20, 50, 5, 1)
        self.fc1 = nn.Linear(4 * 4 * 50, 500)
        self.fc2 = nn.Linear(500, 10)
        _default_init(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return F.log_softmax(self.fc2(x), dim=1)


class LeNet5(nn.Module):
    """ShrinkBench's unexported ``LeNet``: conv 6@3x3, pool, conv 16@3x3, pool, fc 400-120-84-10.

    Input ``(batch, 1, 28, 28)``; output log-probabilities ``(batch, 10)`` (log-softmax added so
    that every LeNet here is trained with the same loss; the argmax and gradients are those of
    cross-entropy on its logits).

    Examples
    --------
    >>> model = LeNet5(generator=torch.Generator().manual_seed(0))
    >>> model(torch.zeros(2, 1, 28, 28)).shape, count_parameters(model)
    (torch.Size([2, 10]), 60074)
    """

    def __init__(self, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3)
        self.conv2 = nn.Conv2d(6, 16, 3)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)
        _default_init(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return F.log_softmax(self.fc3(x), dim=1)


class LeNet300100(nn.Module):
    """LeNet-300-100 (fully connected 784-300-100-10, ReLU; Frankle & Carbin 2019).

    Input ``(batch, 1, 28, 28)`` or ``(batch, 784)``; output log-probabilities ``(batch, 10)``.

    Examples
    --------
    >>> model = LeNet300100(generator=torch.Generator().manual_seed(0))
    >>> model(torch.zeros(2, 784)).shape, count_parameters(model)
    (torch.Size([2, 10]), 266610)
    """

    def __init__(self, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, 10)
        _default_init(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return F.log_softmax(self.fc3(x), dim=1)


class _ShortcutA(nn.Module):
    """Option-A shortcut: subsample by 2 and zero-pad ``pad`` channels on each side (no parameters)."""

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0.0)


class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = _ShortcutA(planes // 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """ResNet-20 for 32x32 colour images with option-A shortcuts (He et al. 2016, sec. 4.2).

    Input ``(batch, 3, 32, 32)``; output logits ``(batch, 10)`` (use ``cross_entropy``).

    Examples
    --------
    >>> model = ResNet20(generator=torch.Generator().manual_seed(0))
    >>> model(torch.zeros(2, 3, 32, 32)).shape, count_parameters(model)
    (torch.Size([2, 10]), 269722)
    """

    def __init__(self, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages = ((16, 16, 1), (16, 32, 2), (32, 64, 2))  # in, out channels; first block's stride
        self.layer1, self.layer2, self.layer3 = (
            nn.Sequential(_BasicBlock(c_in, c, s), _BasicBlock(c, c, 1), _BasicBlock(c, c, 1))
            for c_in, c, s in stages)
        self.linear = nn.Linear(64, 10)
        _default_init(self, generator)  # the linear bias keeps PyTorch's default
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d)):
                    fan_in = m.weight[0].numel()
                    std = math.sqrt(2.0 / fan_in)  # kaiming_normal_, fan_in, gain sqrt(2)
                    draw = torch.randn(m.weight.shape, generator=generator, dtype=torch.float32)
                    m.weight.copy_(draw * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


#: Architecture name -> class.
ARCHITECTURES: dict[str, type[nn.Module]] = {
    "lenet": MnistNet,
    "lenet5": LeNet5,
    "lenet300": LeNet300100,
    "resnet20": ResNet20,
}
#: Architecture name -> the observed parameter (last hidden -> output weights).
OBSERVED_LAYERS: dict[str, str] = {
    "lenet": "fc2.weight",
    "lenet5": "fc3.weight",
    "lenet300": "fc3.weight",
    "resnet20": "linear.weight",
}
#: Architecture name -> shape of one input image (channels, height, width).
INPUT_SHAPES: dict[str, tuple[int, int, int]] = {
    "lenet": (1, 28, 28),
    "lenet5": (1, 28, 28),
    "lenet300": (1, 28, 28),
    "resnet20": (3, 32, 32),
}


def build_model(arch: str, *, seed: int | None = None) -> nn.Module:
    """Build ``arch`` (``"lenet"``, ``"lenet5"``, ``"lenet300"`` or ``"resnet20"``).

    Parameters
    ----------
    arch : str
        See :data:`ARCHITECTURES`.
    seed : int, optional
        Seed of the CPU generator that draws the initial weights (deterministic); None uses a
        generator seeded from the global one.

    Returns
    -------
    nn.Module
        :class:`MnistNet`, :class:`LeNet5`, :class:`LeNet300100` or :class:`ResNet20`.

    Raises
    ------
    ValueError
        For an unknown ``arch`` or a negative ``seed``.

    Examples
    --------
    >>> model = build_model("lenet300", seed=0)
    >>> type(model).__name__, torch.equal(model.fc1.weight, build_model("lenet300", seed=0).fc1.weight)
    ('LeNet300100', True)
    """
    check_choice(arch, "arch", tuple(ARCHITECTURES))
    generator = None if seed is None else torch.Generator().manual_seed(check_seed(seed))
    # nn.Linear / nn.Conv2d draw a default init from the global generator before ours replaces
    # it: fork the global state so building a model leaves it as it was.
    with torch.random.fork_rng(devices=[]):
        return ARCHITECTURES[arch](generator=generator)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (buffers such as batch-norm statistics excluded).

    Examples
    --------
    >>> count_parameters(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)))  # 12 + 4 + 4 + 4
    24
    """
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


# ----- the transformer of the grokking study (sec. 4.4, appendix E) ----------------------------
class _Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_head: int) -> None:
        super().__init__()
        self.W_K = nn.Parameter(torch.empty(n_heads, d_head, d_model))
        self.W_Q = nn.Parameter(torch.empty(n_heads, d_head, d_model))
        self.W_V = nn.Parameter(torch.empty(n_heads, d_head, d_model))
        self.W_O = nn.Parameter(torch.empty(d_model, n_heads * d_head))
        self.d_head = d_head


class _MLP(nn.Module):
    def __init__(self, d_model: int, d_mlp: int) -> None:
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(d_mlp, d_model))
        self.b_in = nn.Parameter(torch.empty(d_mlp))
        self.W_out = nn.Parameter(torch.empty(d_model, d_mlp))
        self.b_out = nn.Parameter(torch.empty(d_model))


class OneLayerTransformer(nn.Module):
    """The one-layer, LayerNorm-free transformer of Nanda et al. (2023) used in the paper.

    Token embedding ``embed.W_E`` (d_model, d_vocab), learned position embedding
    ``pos_embed.W_pos`` (n_ctx, d_model), one block of causal multi-head attention
    (``attn.W_Q``, ``attn.W_K``, ``attn.W_V``: (n_heads, d_head, d_model); ``attn.W_O``:
    (d_model, n_heads * d_head); scores scaled by 1/sqrt(d_head)) and a ReLU MLP
    (``mlp.W_in`` (d_mlp, d_model), ``mlp.b_in``, ``mlp.W_out`` (d_model, d_mlp), ``mlp.b_out``),
    both added to the residual stream, and an unembedding ``unembed.W_U`` (d_model, d_vocab).
    No LayerNorm, no bias in attention.

    Initialization (as in the reference): every weight matrix ~ N(0, 1) / sqrt(d_model), the
    unembedding ~ N(0, 1) / sqrt(d_vocab), biases zero. With the paper's sizes (d_vocab 114,
    d_model 128, 4 heads of 32, d_mlp 512, n_ctx 3) the model has 226,816 parameters.

    Parameters
    ----------
    d_vocab, d_model, n_heads, d_head, d_mlp, n_ctx : int
        Sizes.
    generator : torch.Generator, optional
        Source of the initial weights (a CPU generator; the weights are drawn on the CPU in
        float64 and then moved, so the same seed gives the same model on any device).
    dtype, device
        Of the parameters (float64 in the paper).

    Notes
    -----
    :meth:`forward` returns the logits at the **last** position only, which is where the label is
    read. Positions 0 and 1 influence the last position only through the attention keys and
    values, which are computed from the residual stream *before* the MLP, so skipping the MLP and
    unembedding at earlier positions gives the same logits and gradients as the reference model
    at a third of the MLP cost; the causal mask is then a no-op (the last query sees every
    position). Keys, values and queries are linear in the (token, position) embedding, so they
    are computed once per (position, token) pair and gathered. Both are exact rewrites of the
    reference computation (a test compares against the all-positions masked forward).

    Examples
    --------
    A tiny model for ``a + b mod 6`` (tokens 0..5 and "=" = 6):

    >>> model = OneLayerTransformer(d_vocab=7, d_model=8, n_heads=2, d_head=4, d_mlp=16, n_ctx=3,
    ...                             generator=torch.Generator().manual_seed(0))
    >>> model(torch.tensor([[1, 2, 6], [3, 4, 6]])).shape, count_parameters(model)
    (torch.Size([2, 7]), 672)
    """

    def __init__(
        self,
        d_vocab: int = 114,
        d_model: int = 128,
        n_heads: int = 4,
        d_head: int = 32,
        d_mlp: int = 512,
        n_ctx: int = 3,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        for name, value in [("d_vocab", d_vocab), ("d_model", d_model), ("n_heads", n_heads),
                            ("d_head", d_head), ("d_mlp", d_mlp), ("n_ctx", n_ctx)]:
            check_int(value, name, minimum=1)
        self.embed = nn.Module()
        self.embed.W_E = nn.Parameter(torch.empty(d_model, d_vocab))
        self.pos_embed = nn.Module()
        self.pos_embed.W_pos = nn.Parameter(torch.empty(n_ctx, d_model))
        self.attn = _Attention(d_model, n_heads, d_head)
        self.mlp = _MLP(d_model, d_mlp)
        self.unembed = nn.Module()
        self.unembed.W_U = nn.Parameter(torch.empty(d_model, d_vocab))
        self.d_vocab, self.d_model, self.n_ctx = d_vocab, d_model, n_ctx
        self.reset_parameters(generator)
        self.to(device=device, dtype=dtype)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw the reference initialization (in a fixed parameter order) from ``generator``."""
        for name, param in self.named_parameters():
            if name.endswith(("b_in", "b_out")):
                param.zero_()
                continue
            scale = self.d_vocab if name == "unembed.W_U" else self.d_model
            draw = torch.randn(param.shape, generator=generator, dtype=torch.float64)
            param.copy_(draw / math.sqrt(scale))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits at the last position.

        Parameters
        ----------
        tokens : LongTensor (batch, n_ctx)
            Token ids in ``[0, d_vocab)``.

        Returns
        -------
        Tensor (batch, d_vocab)
        """
        if tokens.ndim != 2 or tokens.shape[1] > self.n_ctx:
            raise ValueError(
                f"tokens must have shape (batch, n_ctx <= {self.n_ctx}), got {tuple(tokens.shape)}"
            )
        attn, mlp = self.attn, self.mlp
        n_pos = tokens.shape[1]
        # Attention inputs depend on (position, token) only: compute keys, values and queries
        # for the whole (n_pos, d_vocab) table and gather, instead of once per example.
        table = self.embed.W_E.T[None] + self.pos_embed.W_pos[:n_pos, None]  # p v d
        key_tab = torch.einsum("ihd,pvd->pvih", attn.W_K, table)
        value_tab = torch.einsum("ihd,pvd->pvih", attn.W_V, table)
        query_tab = torch.einsum("ihd,vd->vih", attn.W_Q, table[-1])
        pos = torch.arange(n_pos, device=tokens.device)
        keys, values = key_tab[pos, tokens], value_tab[pos, tokens]  # b p i h
        query = query_tab[tokens[:, -1]]  # b i h
        scores = torch.einsum("bpih,bih->bip", keys, query) / math.sqrt(attn.d_head)
        z = torch.einsum("bpih,bip->bih", values, F.softmax(scores, dim=-1))
        last = table[-1][tokens[:, -1]] + z.flatten(1) @ attn.W_O.T
        hidden = F.relu(last @ mlp.W_in.T + mlp.b_in)
        last = last + hidden @ mlp.W_out.T + mlp.b_out
        return last @ self.unembed.W_U


# ----- the fully connected network of the width study (sec. 4.2, appendix C) --------------------
class FCN(nn.Module):
    """One-hidden-layer fully connected network without biases: ``n_in -> h -> n_out``.

    ``fc1.weight`` (h, n_in) and ``fc2.weight`` (n_out, h) are drawn from PyTorch's default
    ``nn.Linear`` initialization, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from ``generator`` (so the
    global random state is neither used nor changed).

    Parameters
    ----------
    n_in, width, n_out : int
        Input size (784 for MNIST, 64 for the digits), hidden width ``h``, number of classes.
    activation : {"relu", "gelu"}
    generator : torch.Generator, optional
        Source of the initial weights (a CPU generator; weights are drawn on the CPU, then moved).

    Raises
    ------
    ValueError
        If a size is not a positive integer or ``activation`` is unknown.

    Examples
    --------
    >>> model = FCN(64, 5, 10, generator=torch.Generator().manual_seed(0))
    >>> [name for name, _ in model.named_parameters()], model(torch.zeros(3, 64)).shape
    (['fc1.weight', 'fc2.weight'], torch.Size([3, 10]))
    """

    def __init__(
        self,
        n_in: int,
        width: int,
        n_out: int = 10,
        activation: str = "relu",
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("n_in", n_in), ("width", width), ("n_out", n_out)):
            check_int(value, name, minimum=1)
        check_choice(activation, "activation", ("relu", "gelu"))
        self.fc1 = nn.Linear(n_in, width, bias=False)
        self.fc2 = nn.Linear(width, n_out, bias=False)
        self.activation = activation
        _default_init(self, generator)  # fc1.weight, then fc2.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (batch, n_out) for inputs (batch, n_in)."""
        hidden = self.fc1(x)
        hidden = F.relu(hidden) if self.activation == "relu" else F.gelu(hidden)
        return self.fc2(hidden)
