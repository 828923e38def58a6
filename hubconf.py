"""torch.hub entry points: ``torch.hub.load("<owner>/<repo>", "generator", pretrained=...)`` and ``"face2paint"``.

Same arguments as bryandlee/animegan2-pytorch's hubconf, so a notebook changes only the repository string
(see animegan/hub.py for what differs under it).
"""
dependencies = ["torch", "numpy", "PIL", "filelock", "tqdm"]

from animegan.hub import face2paint, generator  # torch.hub reads `dependencies` before this import

__all__ = ["face2paint", "generator"]
