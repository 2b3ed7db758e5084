"""Count the calls that make the host wait for the device, on the CPU.

On a GPU these calls block the Python thread until every queued kernel has run (``torch.cuda.set_sync_debug_mode``
reports them there); on the CPU they cost nothing, so a regression would go unseen without a count. While a
:class:`HostSyncCounter` is active, it patches the tensor methods that synchronise and records each call with
the first calling line outside torch and this file:

- ``Tensor.item``, ``Tensor.tolist``, ``Tensor.cpu`` (a device -> host copy), ``Tensor.__bool__`` /
  ``__float__`` / ``__int__`` (``if t:``, ``float(t)``), ``Tensor.numpy``;
- ``torch.nonzero`` / ``Tensor.nonzero`` / ``argwhere`` / ``masked_select`` / ``unique``, and indexing with a
  boolean mask (read or write): their output size depends on the values;
- ``repeat_interleave`` with tensor repeats and no ``output_size`` (same reason).

A tensor that came out of a counted ``.cpu()`` (or a view of it) is a host tensor: reading it is free, so
nothing done with it is counted. Other host tensors cannot be told apart on the CPU (an optimizer's step
counters, a clone Lightning makes of a host value): a count over code outside neo includes such reads.
Uploads (host -> device copies) are not counted here: on the CPU they are no-ops. The GPU suite
(``tests/gpu``) counts every kind with ``torch.cuda.set_sync_debug_mode``.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

_TORCH_DIR = str(Path(torch.__file__).parent)
_THIS = __file__


def _has_bool_mask(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


class _BoolMaskIndexMode(TorchFunctionMode):
    """Records indexing with a boolean mask (``t[mask]``, ``t[mask] = v``) for a :class:`HostSyncCounter`.

    A mode, not a patch: setting ``__getitem__`` on ``torch.Tensor`` (even deleting it again afterwards)
    gives the type a sequence slot for good, and ``torch.tensor([h, w])`` of 0-d tensors then tries ``len()``
    on each of them in every later test of the process (an ONNX trace failed that way).
    """

    def __init__(self, counter: HostSyncCounter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func in _MASK_KINDS and len(args) > 1 and _has_bool_mask(args[1]) \
                and not self.counter._came_from_cpu(args[0]):
            self.counter._record(_MASK_KINDS[func])
        # Tensor methods reach a mode by name, so ``func`` may be one of the counter's own wrappers (the call
        # was counted on its way in): run what it wraps.
        return self.counter._originals.get(func, func)(*args, **(kwargs or {}))


_MASK_KINDS = {torch.Tensor.__getitem__: "bool-mask index", torch.Tensor.__setitem__: "bool-mask assign"}


class HostSyncCounter:
    """Context manager: ``calls`` lists (kind, "file:line") of every synchronising call while active."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._saved: list[tuple[Any, str, Any]] = []  # (owner, name, what to put back; None: delete the patch)
        self._originals: dict[Callable, Callable] = {}  # each patch -> what it wraps
        self._from_cpu: dict[int, torch.Tensor] = {}  # by id (tensors compare elementwise), kept alive while active
        self.active = False

    # ------------------------------------------------------------------ results
    @property
    def count(self) -> int:
        return len(self.calls)

    def by_site(self) -> collections.Counter:
        return collections.Counter(f"{kind} at {site}" for kind, site in self.calls)

    def report(self) -> str:
        lines = [f"{self.count} host synchronisations"]
        lines += [f"  {n} x {where}" for where, n in self.by_site().most_common()]
        return "\n".join(lines)

    # ------------------------------------------------------------------ patching
    def _site(self) -> str:
        """"file:line" of the first caller outside torch, with the torch line that made the call when it is
        inside torch (``torch/optim/adamw.py:...``), so a report tells user code from library code."""
        frame = sys._getframe(2)
        while frame is not None and frame.f_code.co_filename == _THIS:
            frame = frame.f_back
        inner = frame
        while frame is not None and frame.f_code.co_filename.startswith(_TORCH_DIR):
            frame = frame.f_back
        if frame is None:
            return "?"
        site = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
        if inner is not frame and inner is not None:
            inside = Path(inner.f_code.co_filename).relative_to(Path(_TORCH_DIR).parent)
            site += f" (in {inside}:{inner.f_lineno})"
        return site

    def _came_from_cpu(self, tensor: torch.Tensor) -> bool:
        return id(tensor) in self._from_cpu or (tensor._base is not None and id(tensor._base) in self._from_cpu)

    def _record(self, kind: str) -> None:
        if self.active:
            self.calls.append((kind, self._site()))

    def _wrap(self, owner: Any, name: str, when: Callable[..., bool] | None = None, kind: str | None = None) -> None:
        original = getattr(owner, name)
        own = name in vars(owner)  # else inherited (Tensor.__getitem__ is TensorBase's): deleted again on exit
        counter = self

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            on_host = bool(args) and isinstance(args[0], torch.Tensor) and counter._came_from_cpu(args[0])
            if not on_host and (when is None or when(*args, **kwargs)):
                counter._record(kind or name)
            return original(*args, **kwargs)

        self._saved.append((owner, name, original if own else None))
        self._originals[wrapper] = original
        setattr(owner, name, wrapper)

    def __enter__(self) -> HostSyncCounter:
        T = torch.Tensor
        counter = self
        for name in ("item", "tolist", "__bool__", "__float__", "__int__", "nonzero", "argwhere", "masked_select",
                     "unique"):
            self._wrap(T, name)
        for name in ("nonzero", "argwhere", "masked_select", "unique"):
            self._wrap(torch, name, kind=f"torch.{name}")
        self._mask_mode = _BoolMaskIndexMode(self)  # indexing is watched through a mode, never patched (see there)
        self._mask_mode.__enter__()
        self._wrap(T, "numpy")

        def no_output_size(*args: Any, **kwargs: Any) -> bool:
            repeats = args[1] if len(args) > 1 else kwargs.get("repeats")
            return isinstance(repeats, torch.Tensor) and repeats.numel() > 1 and kwargs.get("output_size") is None

        self._wrap(T, "repeat_interleave", when=no_output_size)
        self._wrap(torch, "repeat_interleave", when=no_output_size, kind="torch.repeat_interleave")

        original_cpu = T.cpu

        def cpu(self_: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            counter._record("cpu")
            out = original_cpu(self_, *args, **kwargs)
            for t in (out, out._base):  # the copy and, for a view, what it views: slices of it are host tensors
                if t is not None:
                    counter._from_cpu[id(t)] = t
            return out

        self._saved.append((T, "cpu", original_cpu if "cpu" in vars(T) else None))
        self._originals[cpu] = original_cpu
        T.cpu = cpu
        self.active = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.active = False
        self._mask_mode.__exit__(*exc)
        # Put back exactly what was there: an inherited slot method set on torch.Tensor itself would stay as a
        # class attribute and change the type (with __getitem__ defined on it, torch.tensor([t, t]) of 0-d
        # tensors treats each as a sequence and fails in every later test of the process).
        for owner, name, original in reversed(self._saved):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        self._saved.clear()
        self._originals.clear()
        self._from_cpu.clear()
