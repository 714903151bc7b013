"""BatchNorm folding: a backbone's inference copy with each BatchNorm folded into its conv.

In eval mode a ``BatchNorm2d`` is a per-channel affine map, so a ``Conv2d`` whose only
consumer is that BatchNorm can absorb it (Jacob et al., "Quantization and Training of Neural
Networks for Efficient Integer-Arithmetic-Only Inference", CVPR 2018, eq. 8; what ONNX
Runtime, TensorRT and ``torch.fx.experimental.optimization.fuse`` do)::

    s = gamma / sqrt(running_var + eps)
    W' = W * s[:, None, None, None]
    b' = (b - running_mean) * s + beta

The conv then computes what conv + BatchNorm computed, up to float rounding (about 1e-7
relative in float32), in one pass over the activations instead of two: on a 2-core CPU the
zoo's CNNs on one batch run 1.1-2x faster, and a study's forward passes take about 11 % less
time (``bench/study_overhead.py``).

:class:`BatchNormFolding` finds the pairs by data flow (a ``torch.fx`` trace of the
backbone), never by the order modules were registered in, and leaves the backbone itself
untouched: it traces only into the modules that hold a BatchNorm, its inference copy shares
every other module with it and recomputes the folded weights from the pair's current
tensors on each :meth:`~BatchNormFolding.refresh`, so a weight changed in place (even
through ``.data``) is never served stale. A backbone that cannot be traced, or that has
hooks (which the copy would not call), is not folded.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

__all__ = ["BatchNormFolding"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _FoldedPair:
    conv: nn.Conv2d  # the backbone's own modules, read on every refresh
    bn: nn.BatchNorm2d
    folded: nn.Conv2d  # the copy's conv, whose weights refresh() rewrites


def _has_hooks(module: nn.Module) -> bool:
    return any(
        getattr(module, name, None)
        for name in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
        )
    )


def _foldable(bn: nn.Module) -> bool:
    # exact types: a subclass (timm's BatchNormAct2d, a padding-aware conv) computes more
    # than the affine map folded here
    return (
        type(bn) is nn.BatchNorm2d
        and not bn.training
        and bn.track_running_stats
        and bn.running_mean is not None
        and bn.running_var is not None
    )


class _Tracer(fx.Tracer):
    """Traces only into modules that hold a foldable BatchNorm: every other module runs as
    it is (a call in the graph), whatever its forward does besides tensor operations."""

    def __init__(self, root: nn.Module) -> None:
        super().__init__()
        self._holders = {id(m) for m in root.modules() if any(map(_foldable, m.modules()))}
        #: the modules whose forward the trace read (instead of calling them), the root first
        self.traced: list[nn.Module] = [root]

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        leaf = id(m) not in self._holders or super().is_leaf_module(m, module_qualified_name)
        if not leaf and all(t is not m for t in self.traced):
            self.traced.append(m)
        return leaf


#: the registries :func:`_state` compares entry by entry (parameters, buffers) or walks
#: apart (children, compared as the tuple of every submodule)
_NOT_STATE = frozenset({"_modules", "_parameters", "_buffers"})


def _state(module: nn.Module) -> tuple:
    """What a trace of ``module``'s forward kept besides the tensors' values: its class and
    forward, each attribute, parameter and buffer object (compared by identity, so that a
    flag set to another value or a parameter replaced by another shows)."""
    return (
        type(module),
        type(module).forward,
        tuple((k, v) for k, v in vars(module).items() if k not in _NOT_STATE),
        tuple(module._parameters.items()),
        tuple(module._buffers.items()),
    )


def _same_objects(a: tuple, b: tuple) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, tuple) and isinstance(y, tuple):
            if not _same_objects(x, y):
                return False
        elif x is not y:
            return False
    return True


class BatchNormFolding:
    """An inference copy of ``backbone`` in which every eval-mode ``BatchNorm2d`` whose input
    is a ``Conv2d`` used by nothing else is folded into that conv.

    Build one with :meth:`of` (``None`` when there is nothing to fold or the backbone cannot
    be traced); before each use, check :meth:`matches` against the backbone and call
    :meth:`refresh`, which returns the module to run.
    """

    def __init__(
        self,
        backbone: nn.Module,
        module: fx.GraphModule,
        pairs: list[_FoldedPair],
        traced: list[nn.Module],
    ) -> None:
        self._module = module
        self._pairs = pairs
        # the objects themselves, not their ids (an id may be reused once its object is
        # gone); all but the backbone, which callers key their foldings by and so must not
        # be kept alive by one
        self._traced = [m for m in traced if m is not backbone]
        # each folded conv's copy took its stride, padding and groups when it was made
        self._traced += [p.conv for p in pairs]
        self._snapshot = self._snapshot_of(backbone)

    def _snapshot_of(self, backbone: nn.Module) -> tuple:
        submodules = tuple(backbone.modules())[1:]
        return (submodules, (_state(backbone), *(_state(m) for m in self._traced)))

    @classmethod
    def of(cls, backbone: nn.Module) -> BatchNormFolding | None:
        """Trace ``backbone`` and fold its conv-BatchNorm pairs; ``None`` when it has none,
        has hooks, or cannot be traced (it then runs as it is)."""
        if not any(_foldable(m) for m in backbone.modules()):
            return None
        if any(_has_hooks(m) for m in backbone.modules()):
            return None
        try:
            tracer = _Tracer(backbone)
            graph = tracer.trace(backbone)
            traced = fx.GraphModule(tracer.root, graph, "BatchNormFolded")
        except Exception as err:  # fx raises many kinds of error; each means: run it as it is
            log.debug("not folding BatchNorm of %s: cannot trace it (%s)", type(backbone), err)
            return None
        modules = dict(traced.named_modules())
        pairs: list[_FoldedPair] = []
        for node in list(traced.graph.nodes):
            if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
                continue
            bn = modules[node.target]
            source = node.args[0]
            if not (_foldable(bn) and isinstance(source, fx.Node)):
                continue
            if source.op != "call_module" or len(source.users) != 1:
                continue
            conv = modules[source.target]
            if type(conv) is not nn.Conv2d or conv.out_channels != bn.num_features:
                continue
            folded = copy.deepcopy(conv)  # a new module for the copy; the backbone keeps its own
            name = f"folded_{len(pairs)}"
            traced.add_submodule(name, folded)
            source.target = name
            node.replace_all_uses_with(source)
            traced.graph.erase_node(node)
            pairs.append(_FoldedPair(conv, bn, folded))
        if not pairs:
            return None
        traced.graph.lint()
        traced.recompile()
        traced.delete_all_unused_submodules()
        return cls(backbone, traced, pairs, tracer.traced)

    def matches(self, backbone: nn.Module) -> bool:
        """Whether the copy still computes what ``backbone`` does: the same module objects;
        in each module the trace read and each folded conv, the same class, forward,
        attribute, parameter and buffer objects; no hook added; every folded BatchNorm
        still in eval mode. (The tensors' values may have changed: :meth:`refresh` reads
        them. What a forward reads from outside its modules, a global, is not seen here: the
        engine compares the copy's outputs with the backbone's on the first batch after each
        trace.)"""
        return (
            _same_objects(self._snapshot_of(backbone), self._snapshot)
            and not any(_has_hooks(m) for m in backbone.modules())
            and all(_foldable(p.bn) for p in self._pairs)
        )

    @torch.no_grad()
    def refresh(self) -> nn.Module:
        """Recompute every folded weight from its conv's and BatchNorm's current tensors and
        return the module to run in place of the backbone."""
        for p in self._pairs:
            p.folded.weight, p.folded.bias = fuse_conv_bn_weights(
                p.conv.weight,
                p.conv.bias,
                p.bn.running_mean,
                p.bn.running_var,
                p.bn.eps,
                p.bn.weight,
                p.bn.bias,
            )
        return self._module

    @property
    def folded_pairs(self) -> int:
        """How many conv-BatchNorm pairs the copy runs as one conv."""
        return len(self._pairs)
