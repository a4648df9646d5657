"""Which torch device a model runs on when the reader asks for 'auto'."""

from __future__ import annotations


def pick_device(requested: str = "auto") -> str:
    """``auto``: CUDA, else MPS, else CPU. Any other name is returned as given once it is known to
    work here; ValueError, in words, when it is not a device or this machine or torch build lacks it."""
    import torch

    if requested != "auto":
        try:
            device = torch.device(requested)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(
                f"device {requested!r} is not a device name (auto, cpu, cuda, cuda:N, mps)"
            ) from exc
        advice = "use --device auto (CUDA, MPS or CPU, whichever this machine has) or --device cpu"
        if device.type == "cuda":
            built = torch.version.cuda or getattr(torch.version, "hip", None)  # ROCm also says "cuda"
            if not torch.cuda.is_available():
                why = "no CUDA GPU or driver is available on this machine"
                if not built:
                    why = f"this torch build ({torch.__version__}) has no CUDA support"
            elif device.index is not None and device.index >= torch.cuda.device_count():
                why = f"this machine has {torch.cuda.device_count()} CUDA GPU(s)"
            else:
                return requested
            raise ValueError(f"device {requested!r} cannot be used: {why}; {advice}")
        if device.type == "mps" and not (
            getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
        ):
            raise ValueError(f"device {requested!r} cannot be used: MPS needs Apple silicon; {advice}")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def conv_layout(device: str):
    """The memory format a model's weights and inputs take on ``device``: channels-last on CPU and
    CUDA. On the 2-core CPU oneDNN runs this trunk faster so (``bench/bench_inference.py``, beside
    the default layout: forward and a training step about 1.16x); on CUDA it is cuDNN's preferred
    layout, assumed rather than measured here (no GPU). Values agree with the default layout to
    float rounding."""
    import torch

    kind = str(device).split(":")[0]
    return torch.channels_last if kind in ("cpu", "cuda") else torch.preserve_format
